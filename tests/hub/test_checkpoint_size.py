"""One true checkpoint size: the hub's metadata when online and nothing is local, else the local file;
offline with nothing local, 'unknown' without any request."""

from __future__ import annotations

from clay_explore.model.hub import checkpoint_size, download_checkpoint, format_size


def test_size_from_hub_metadata_then_from_the_local_file(hub, generated_checkpoint):
    size, origin = checkpoint_size()
    assert (size, origin) == (generated_checkpoint.stat().st_size, "hub metadata")
    assert hub.count("HEAD") >= 1 and hub.count("GET", "cdn") == 0  # metadata only, no download
    download_checkpoint(progress=False)
    assert checkpoint_size() == (generated_checkpoint.stat().st_size, "local file")


def test_size_offline_is_unknown_without_requests(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = hub.count("HEAD")
    assert checkpoint_size() == (None, "unknown offline")
    assert hub.count("HEAD") == before


def test_format_size():
    assert format_size(4_912_345_678) == "4.9 GB" and format_size(1_300_000) == "1.3 MB"
    assert format_size(None) == "size unknown"
