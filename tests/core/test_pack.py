"""Packed workspaces: a round trip restores every file exactly; unsafe, corrupted or newer packs are refused."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from clay_explore.core.pack import PACK_MANIFEST, PACK_PREFIX, PackError, pack_workspace, unpack_workspace
from clay_explore.core.workspace import CHIPS_ZARR, EMBEDDINGS_ZARR, SCHEMA_VERSION, VECTORS_ZARR, Workspace


def _make(root: Path, n: int = 3) -> Workspace:
    """A small workspace with every kind of stage output (chips, tokens, vectors, a method, evaluation, UMAP)."""
    ws = Workspace.create(
        root, sensor="sentinel-2-l2a", bands=["red", "green", "blue"], chip_size=16, source={"kind": "synthetic"}
    )
    rng = np.random.default_rng(0)
    ws.create_array(CHIPS_ZARR, "pixels", shape=(n, 3, 16, 16), dtype="float32")[:] = rng.random((n, 3, 16, 16))
    ws.mark_done(CHIPS_ZARR, "pixels", range(n))
    ws.create_array(EMBEDDINGS_ZARR, "patches", shape=(n, 2, 2, 8), dtype="float16")[:] = rng.random((n, 2, 2, 8))
    ws.create_array(EMBEDDINGS_ZARR, "cls", shape=(n, 8), dtype="float16")[:] = rng.random((n, 8))
    ws.mark_done(EMBEDDINGS_ZARR, "patches", range(n))
    ws.mark_done(EMBEDDINGS_ZARR, "cls", range(n))
    ws.create_array(VECTORS_ZARR, "mean", shape=(n, 8), dtype="float32")[:] = rng.random((n, 8))
    (root / "methods" / "linear").mkdir(parents=True)
    (root / "methods" / "linear" / "weights.safetensors").write_bytes(rng.bytes(256))
    ws.write_json("methods/linear/config.json", {"method": "linear"})
    ws.write_json("evaluation.json", {"verdict": "Mean keeps most.", "methods": {}})
    ws.write_json("projections/abc.json", {"key": "abc"})
    ws.set_stage("embed", count=n)
    return ws


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_round_trip_restores_every_file(tmp_path):
    src = tmp_path / "ws"
    _make(src)
    (src / "exports").mkdir()
    (src / "exports" / "image_embeddings.parquet").write_bytes(b"derived")  # exports are not carried
    (src / "methods" / "linear" / "resume.pt").write_bytes(b"pickle")  # nor a torch resume state
    expected = {k: v for k, v in _tree(src).items() if not k.startswith("exports/") and not k.endswith("resume.pt")}
    out = tmp_path / "ws.clay.zip"
    manifest = pack_workspace(src, out)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["left_out"] == []
    assert {f["path"] for f in manifest["files"]} == set(expected)
    ws = unpack_workspace(out, tmp_path / "copy")
    assert _tree(tmp_path / "copy") == expected
    assert ws.n_chips() == 3 and ws.stage("embed")["count"] == 3
    np.testing.assert_array_equal(ws.read_chips(slice(None)), Workspace.open(src).read_chips(slice(None)))
    assert not list(tmp_path.glob(".copy.unpack-*"))  # the temporary folder is gone


def test_leave_out_patches_and_chips(tmp_path):
    _make(tmp_path / "ws")
    manifest = pack_workspace(tmp_path / "ws", tmp_path / "small.zip", patches=False, chips=False)
    paths = {f["path"] for f in manifest["files"]}
    assert manifest["left_out"] == ["patches", "chips"]
    assert not any(p.startswith((f"{EMBEDDINGS_ZARR}/patches/", f"{CHIPS_ZARR}/pixels/")) for p in paths)
    assert any(p.startswith(f"{EMBEDDINGS_ZARR}/cls/") for p in paths) and "chips.zarr.pixels.done.json" not in paths
    ws = unpack_workspace(tmp_path / "small.zip", tmp_path / "copy")
    np.testing.assert_array_equal(
        ws.open_array(EMBEDDINGS_ZARR, "cls")[:], Workspace.open(tmp_path / "ws").open_array(EMBEDDINGS_ZARR, "cls")[:]
    )


def _rewrite(src: Path, dst: Path, manifest_edit=None, extra: dict[str, bytes] | None = None, replace=None) -> None:
    """Copy a pack, optionally editing its manifest, replacing a member's bytes or adding members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == PACK_MANIFEST and manifest_edit is not None:
                m = json.loads(data)
                manifest_edit(m)
                data = json.dumps(m).encode()
            if replace and info.filename in replace:
                data = replace[info.filename]
            zout.writestr(info, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)


@pytest.fixture
def packed(tmp_path) -> Path:
    _make(tmp_path / "ws")
    out = tmp_path / "ws.clay.zip"
    pack_workspace(tmp_path / "ws", out)
    return out


def test_corrupted_file_is_refused(packed, tmp_path):
    bad = tmp_path / "bad.zip"
    _rewrite(packed, bad, replace={PACK_PREFIX + "evaluation.json": b'{"verdict": "altered"}'})
    with pytest.raises(PackError, match="checksum"):
        unpack_workspace(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "workspace/../../evil.txt"])
def test_path_traversal_is_refused(packed, tmp_path, name):
    bad = tmp_path / "bad.zip"

    def add_listed(m):
        m["files"].append({"path": name.removeprefix(PACK_PREFIX), "size": 4, "sha256": "0" * 64})

    _rewrite(packed, bad, manifest_edit=add_listed, extra={name: b"evil"})
    with pytest.raises(PackError, match="outside|refusing"):
        unpack_workspace(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_symlink_entry_is_refused(packed, tmp_path):
    import stat

    bad = tmp_path / "bad.zip"
    _rewrite(packed, bad)
    with zipfile.ZipFile(bad, "a") as zf:
        info = zipfile.ZipInfo(PACK_PREFIX + "link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(PackError, match="symbolic link"):
        unpack_workspace(bad, tmp_path / "out")


def test_symlink_in_workspace_is_not_packed(tmp_path):
    _make(tmp_path / "ws")
    (tmp_path / "ws" / "link.json").symlink_to(tmp_path / "ws" / "evaluation.json")
    with pytest.raises(PackError, match="symbolic link"):
        pack_workspace(tmp_path / "ws", tmp_path / "ws.zip")


@pytest.mark.parametrize("key", ["schema_version", "pack_format"])
def test_newer_schema_is_refused(packed, tmp_path, key):
    bad = tmp_path / "newer.zip"
    _rewrite(packed, bad, manifest_edit=lambda m: m.update({key: m[key] + 1}))
    with pytest.raises(PackError, match="newer.*Upgrade clay-explore"):
        unpack_workspace(bad, tmp_path / "out")


def test_unlisted_or_missing_members_and_non_packs(packed, tmp_path):
    extra = tmp_path / "extra.zip"
    _rewrite(packed, extra, extra={PACK_PREFIX + "smuggled.txt": b"x"})
    with pytest.raises(PackError, match="not in the pack's file list"):
        unpack_workspace(extra, tmp_path / "out")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.txt", "a")
    with pytest.raises(PackError, match="not a clay-explore pack"):
        unpack_workspace(plain, tmp_path / "out")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PackError, match="not a readable zip"):
        unpack_workspace(tmp_path / "junk.zip", tmp_path / "out")


def test_target_must_be_new_or_empty(packed, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(PackError, match="not an empty folder"):
        unpack_workspace(packed, tmp_path / "full")
    (tmp_path / "empty").mkdir()
    assert unpack_workspace(packed, tmp_path / "empty").n_chips() == 3


def test_cli_pack_unpack(packed, tmp_path):
    from click.testing import CliRunner

    from clay_explore.cli.main import cli

    runner = CliRunner()
    res = runner.invoke(
        cli, ["pack", "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "p.zip"), "--no-patches"]
    )
    assert res.exit_code == 0, res.output
    assert "left out: patches" in res.output
    res = runner.invoke(cli, ["unpack", str(tmp_path / "p.zip"), "--workspace", str(tmp_path / "ws2")])
    assert res.exit_code == 0, res.output
    assert "Unpacked" in res.output and (tmp_path / "ws2" / "manifest.json").exists()
    bad = tmp_path / "newer.zip"
    _rewrite(packed, bad, manifest_edit=lambda m: m.update({"schema_version": 99}))
    res = runner.invoke(cli, ["unpack", str(bad), "--workspace", str(tmp_path / "ws3")])
    assert res.exit_code == 2 and "Error:" in res.output and "Traceback" not in res.output
