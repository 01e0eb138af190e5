"""The real huggingface_hub download code against a local hub on 127.0.0.1 (tests/hub/hub_server.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants

from clay_explore.core.errors import CancelledError, CheckpointError
from clay_explore.model import hub as clay_hub
from clay_explore.model.hub import (
    HF_FILENAME,
    HF_REPO_ID,
    cached_checkpoint,
    checkpoint_status,
    download_checkpoint,
    file_sha256,
    resolve_checkpoint,
)

RESOLVE_PATH = f"/{HF_REPO_ID}/resolve/main/{HF_FILENAME}"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sequence(server) -> list[tuple[str, str, str, int]]:
    return [(r.server, r.method, r.path.split("?")[0], r.status) for r in server.requests]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the download itself -----------------------------------------------------------------------------------


def test_download_lfs_redirect_sequence(hub, generated_checkpoint, hf_env):
    """HEAD /resolve -> 302 to the CDN origin, then one GET of the bytes; the blob is named by its sha256."""
    seen: list[tuple[int, int | None]] = []
    path = download_checkpoint(progress_callback=lambda done, total: seen.append((done, total)))

    sha = _sha256(generated_checkpoint)
    assert path.read_bytes() == generated_checkpoint.read_bytes()
    assert path.is_relative_to(hf_env / "hub" / "models--made-with-clay--Clay" / "snapshots" / hub.commit)
    assert path.resolve().name == sha  # huggingface_hub names the blob by X-Linked-Etag
    assert _sequence(hub) == [
        ("hub", "HEAD", RESOLVE_PATH, 302),
        ("cdn", "GET", f"/lfs/{sha}", 200),
    ]
    head, get = hub.requests
    assert head.headers["accept-encoding"] == "identity"
    assert head.headers["user-agent"].startswith("clay-explore/")
    assert "range" not in get.headers
    assert not head.has_authorization and not get.has_authorization
    size = generated_checkpoint.stat().st_size
    assert seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_download_direct_200(make_hub, generated_checkpoint):
    """A hub answering the resolve URL with 200 (small non-LFS file style) works too: HEAD then GET there."""
    server = make_hub(generated_checkpoint, direct=True)
    path = download_checkpoint(progress=False)
    assert path.read_bytes() == generated_checkpoint.read_bytes()
    assert _sequence(server) == [("hub", "HEAD", RESOLVE_PATH, 200), ("hub", "GET", RESOLVE_PATH, 200)]


def test_tiny_parity_checkpoint_through_hub(make_hub, tiny_checkpoint):
    """The shared tiny Clay checkpoint arrives byte-identical and loads with weights_only=True."""
    make_hub(tiny_checkpoint)
    path = resolve_checkpoint()
    assert _sha256(path) == _sha256(tiny_checkpoint)
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    assert ckpt["hyper_parameters"]["model_size"] == "custom"
    assert any(k.startswith("model.encoder.") for k in ckpt["state_dict"])
    if importlib.util.find_spec("clay_explore.model") is not None:
        try:
            from clay_explore.model import ClayModel
        except ImportError:
            return  # the model engine is not there yet; the bytes are checked above
        model = ClayModel.from_checkpoint(path)
        assert model.config.dim == ckpt["hyper_parameters"]["dim"]


def test_interrupted_download_resumes_with_range(make_hub, big_checkpoint):
    """A body cut short after the first 10 MiB chunk is resumed with a Range request; the result is intact.

    huggingface_hub writes whole DOWNLOAD_CHUNK_SIZE chunks, so it resumes from the last full one.
    """
    server = make_hub(big_checkpoint)
    chunk = hf_constants.DOWNLOAD_CHUNK_SIZE
    server.truncate_next_gets, server.truncate_at = 1, chunk + chunk // 8
    path = download_checkpoint(progress=False)
    assert _sha256(path) == _sha256(big_checkpoint)
    gets = [r for r in server.requests if r.method == "GET"]
    assert [(g.status, g.headers.get("range")) for g in gets] == [(200, None), (206, f"bytes={chunk}-")]


def test_cancel_from_progress_callback_leaves_no_partial_file(hub, hf_env):
    def cancel(done: int, total: int | None) -> None:
        if done > 0:
            raise CancelledError("stopped by the user")

    with pytest.raises(CancelledError):
        download_checkpoint(progress_callback=cancel)
    assert cached_checkpoint() is None
    assert not [p for p in hf_env.rglob("*") if p.name.endswith(".incomplete")]


# --- cache and offline ----------------------------------------------------------------------------------------


def test_cache_hit_makes_no_file_request(hub):
    first = resolve_checkpoint(progress=False)
    assert hub.count("GET") == 1
    hub.clear()

    assert resolve_checkpoint() == first  # cached: no network at all
    assert cached_checkpoint() == first
    assert hub.requests == []

    assert download_checkpoint() == first  # re-validates with one HEAD, does not fetch the file
    assert _sequence(hub) == [("hub", "HEAD", RESOLVE_PATH, 302)]

    hub.clear()
    assert download_checkpoint(force=True) == first
    assert hub.count("GET", "cdn") == 1


def test_offline_without_cache_says_how_to_fix(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="offline") as err:
        resolve_checkpoint()
    assert "HF_HUB_OFFLINE" in str(err.value) and "CLAY_CHECKPOINT" in str(err.value)
    assert "clay-explore model download" in str(err.value)
    with pytest.raises(CheckpointError, match="offline"):
        download_checkpoint()
    assert hub.requests == []


def test_offline_with_cache_uses_it(hub, monkeypatch):
    path = download_checkpoint(progress=False)
    hub.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint() == path
    assert download_checkpoint() == path
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        download_checkpoint(force=True)
    assert hub.requests == []


def test_no_download_when_not_allowed(hub):
    with pytest.raises(CheckpointError, match="not downloaded yet"):
        resolve_checkpoint(download=False)
    assert hub.requests == []


# --- failures of the hub ----------------------------------------------------------------------------------------


def test_repo_not_found(make_hub, generated_checkpoint):
    server = make_hub(generated_checkpoint, repo_id="someone/other-model")
    with pytest.raises(CheckpointError, match=f"no repository {HF_REPO_ID}") as err:
        download_checkpoint()
    assert server.endpoint in str(err.value) and "HTTP 401" in str(err.value)


def test_file_not_found(make_hub, generated_checkpoint):
    server = make_hub(generated_checkpoint, filename="v1/clay-v1-base.ckpt")
    with pytest.raises(CheckpointError, match=f"no file {HF_FILENAME}") as err:
        resolve_checkpoint()
    assert server.endpoint in str(err.value) and "HTTP 404" in str(err.value)
    assert _sequence(server) == [("hub", "HEAD", RESOLVE_PATH, 404)]


@pytest.mark.parametrize("status", [404, 500, 503])
def test_hub_http_errors(hub, status, no_backoff_sleep):
    hub.fail_status = status
    with pytest.raises(CheckpointError, match=f"answered HTTP {status}") as err:
        download_checkpoint()
    message = str(err.value)
    assert hub.endpoint in message and "CLAY_CHECKPOINT" in message
    assert ("try again later" in message) == (status >= 500)
    assert hub.count("GET") == 0
    if status >= 500:  # huggingface_hub retries 5xx with back-off before giving up
        assert hub.count("HEAD") > 1 and no_backoff_sleep


def test_connection_refused(hf_env, monkeypatch, no_backoff_sleep):
    endpoint = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(CheckpointError, match="could not be reached") as err:
        download_checkpoint()
    assert endpoint in str(err.value) and "CLAY_CHECKPOINT" in str(err.value)


# --- explicit paths and CLAY_CHECKPOINT ------------------------------------------------------------------------------


def test_explicit_path_and_env_override(hub, generated_checkpoint, tmp_path, monkeypatch):
    other = tmp_path / "other.ckpt"
    other.write_bytes(b"x")
    monkeypatch.setenv("CLAY_CHECKPOINT", str(generated_checkpoint))
    assert resolve_checkpoint() == generated_checkpoint
    assert resolve_checkpoint(other) == other  # the argument wins over the environment
    assert hub.requests == []

    missing = tmp_path / "nope.ckpt"
    with pytest.raises(CheckpointError, match="given explicitly") as err:
        resolve_checkpoint(missing)
    assert str(missing) in str(err.value)
    monkeypatch.setenv("CLAY_CHECKPOINT", str(missing))
    with pytest.raises(CheckpointError, match=r"\$CLAY_CHECKPOINT") as err:
        resolve_checkpoint()
    assert str(missing) in str(err.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        resolve_checkpoint(tmp_path)


def test_checkpoint_status(hub, generated_checkpoint, tmp_path, monkeypatch):
    status = checkpoint_status()
    assert status["source"] == "download" and not status["available"] and status["problem"] is None
    assert status["endpoint"] == hub.endpoint and status["url"] == hub.endpoint + RESOLVE_PATH

    path = download_checkpoint(progress=False)
    status = checkpoint_status()
    assert status["source"] == "cache" and status["available"]
    assert status["path"] == str(path) and status["size_bytes"] == generated_checkpoint.stat().st_size

    monkeypatch.setenv("CLAY_CHECKPOINT", str(tmp_path / "missing.ckpt"))
    status = checkpoint_status()
    assert status["source"] == "env" and not status["available"] and "missing.ckpt" in status["problem"]

    monkeypatch.delenv("CLAY_CHECKPOINT")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = checkpoint_status()
    assert status["offline"] and not status["available"] and "offline" in status["problem"]
    assert hub.count("GET") == 1  # only the one download above


# --- sha256 sidecar -----------------------------------------------------------------------------------------------


def test_file_sha256_is_cached_by_path_size_mtime(hf_env, generated_checkpoint, tmp_path):
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(generated_checkpoint.read_bytes())
    real = _sha256(copy)
    assert file_sha256(copy, chunk=4096) == real

    cache = clay_hub.sha256_cache_path()
    assert cache.is_relative_to(Path(os.environ["CLAY_EXPLORE_CACHE"]))
    entries = json.loads(cache.read_text())
    assert entries[str(copy.resolve())]["sha256"] == real

    entries[str(copy.resolve())]["sha256"] = "remembered"  # prove the second call reads the sidecar
    cache.write_text(json.dumps(entries))
    assert file_sha256(copy) == "remembered"
    assert file_sha256(copy, use_cache=False) == real

    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a changed file is hashed again
    assert file_sha256(copy) == real
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        file_sha256(tmp_path / "missing.ckpt")


# --- a fresh process honours HF_ENDPOINT / HF_HOME from its environment ----------------------------------------------


def _child_env(hub, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "CLAY_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), NO_PROXY="127.0.0.1")
    return env


def test_subprocess_download_honours_environment(hub, generated_checkpoint, tmp_path):
    home = tmp_path / "child_home"
    code = "from clay_explore.model.hub import download_checkpoint; print(download_checkpoint(progress=False))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_child_env(hub, home),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_relative_to(home / "hub")
    assert _sha256(path) == _sha256(generated_checkpoint)
    # a fresh huggingface_hub (telemetry on, empty HF_HOME) first fetches its agent registry from HF_ENDPOINT
    assert _sequence(hub) == [
        ("hub", "GET", "/api/agent-harnesses", 200),
        ("hub", "HEAD", RESOLVE_PATH, 302),
        ("cdn", "GET", f"/lfs/{_sha256(generated_checkpoint)}", 200),
    ], [str(r) for r in hub.requests]


def test_cli_model_download(hub, generated_checkpoint, tmp_path):
    """`clay-explore model download` in a fresh process (once the lead's model command exists)."""
    if importlib.util.find_spec("clay_explore.cli.model_cmd") is None:
        pytest.skip("clay_explore.cli.model_cmd (clay-explore model ...) is not written yet")
    home = tmp_path / "cli_home"
    out = subprocess.run(
        [sys.executable, "-m", "clay_explore.cli.main", "model", "download"],
        env=_child_env(hub, home),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert hub.count("GET", "cdn") == 1
    blobs = list((home / "hub" / "models--made-with-clay--Clay" / "blobs").iterdir())
    assert [b.name for b in blobs] == [_sha256(generated_checkpoint)]


def test_cli_download_error_is_one_clear_line(make_hub, generated_checkpoint, tmp_path):
    """A hub without the repo: `clay-explore model download` prints `Error: ...` and exits 2, no traceback."""
    if importlib.util.find_spec("clay_explore.cli.model_cmd") is None:
        pytest.skip("clay_explore.cli.model_cmd (clay-explore model ...) is not written yet")
    server = make_hub(generated_checkpoint, repo_id="someone/other-model")
    out = subprocess.run(
        [sys.executable, "-m", "clay_explore.cli.main", "model", "download"],
        env=_child_env(server, tmp_path / "cli_home"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: ") and "Traceback" not in out.stderr
    assert f"no repository {HF_REPO_ID}" in out.stderr and server.endpoint in out.stderr
