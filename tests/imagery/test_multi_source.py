"""Several local files of one sensor in one workspace: append, resume, refusals, old layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gen_data import s2_scene, write_raster

from clay_explore.cli.main import cli
from clay_explore.core.errors import CancelledError, ImageryError, NoScenesError, StageMissingError, WorkspaceError
from clay_explore.core.workspace import CHIPS_ZARR, Workspace
from clay_explore.imagery.chipping import PENDING, ChipSettings, read_progress
from clay_explore.imagery.geotiff import ingest_geotiff, ingest_geotiffs
from clay_explore.research.metrics import primary_labels

S2 = "sentinel-2-l2a"
BIGEARTHNET = (
    "s2l2a_bigearthnet_austria_20170613_87_48_10band.tif",
    "s2l2a_bigearthnet_finland_20170924_69_24_10band.tif",
    "s2l2a_bigearthnet_ireland_20170617_36_85_10band.tif",
)
#: Generated stand-ins for the BigEarthNet samples: 120 x 120 px, one scene label set each, three UTM zones.
GEN_LABELS = (
    ["Non-irrigated arable land", "Pastures"],
    ["Coniferous forest", "Mixed forest"],
    ["Non-irrigated arable land"],
)


def _labelled_files(folder: Path) -> list[Path]:
    return [
        write_raster(
            folder / f"gen_{i}_2021070{i + 1}.tif",
            s2_scene((120, 120), seed=10 + i),
            epsg=32633 + i,
            origin=(400_000.0 + 5_000 * i, 5_300_000.0),
            tags={"LABELS": json.dumps(labels)},
        )
        for i, labels in enumerate(GEN_LABELS)
    ]


def _ingest_cli(files: list[Path], ws: Path, chip: int = 64) -> dict:
    res = CliRunner().invoke(
        cli, ["ingest", *map(str, files), "--sensor", S2, "--chip-size", str(chip), "--workspace", str(ws), "--json"]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _check_three_files(files: list[Path], ws_dir: Path, per_file: int) -> None:
    """Counts, unique ids, per-source rows, labels for a probe, and `info --json` listing every source."""
    out = _ingest_cli(files, ws_dir)
    n = per_file * len(files)
    assert out["chips"] == n and out["n_sources"] == 3 and out["added"] == n
    assert [r["chips"] for r in out["files"]] == [per_file] * 3 and [r["index"] for r in out["files"]] == [0, 1, 2]
    ws = Workspace.open(ws_dir)
    table = ws.chip_table()
    assert len(table) == ws.n_chips() == n and table["chip_id"].is_unique
    assert list(table["source_index"]) == [i for i in range(3) for _ in range(per_file)]
    assert list(dict.fromkeys(table["source"])) == [f.name for f in files]
    assert len({tuple(v) for v in table["labels"]}) >= 2  # distinct label sets
    assert len({x for x in primary_labels(table["labels"]) if x}) >= 2  # >= 2 classes for the probe
    assert table["valid_fraction"].min() < 1.0  # 120 px: padded edge chips
    rec = ws.stage("chips")
    assert rec["status"] == "complete" and rec["revision"] == 3 and rec["chips"] == n
    assert [s["rows"] for s in rec["sources"]] == [[i * per_file, (i + 1) * per_file] for i in range(3)]
    # the last file's chips are the same pixels as in a workspace of its own
    alone = ingest_geotiff(files[2], ws_dir.parent / "alone", sensor=S2, chips=ChipSettings(64))
    np.testing.assert_array_equal(
        ws.read_chips(slice(2 * per_file, n)), Workspace.open(ws_dir.parent / "alone").read_chips(slice(None))
    )
    assert alone["chips"] == per_file
    info = CliRunner().invoke(cli, ["info", "--workspace", str(ws_dir), "--json"])
    summary = json.loads(info.stdout)
    assert summary["chips"] == n and len(summary["crs"]) == 3
    assert [s["path"] for s in summary["sources"]] == [str(f.resolve()) for f in files]
    again = _ingest_cli(files, ws_dir)  # every file already stored
    assert again["added"] == 0 and all(r["resumed"] for r in again["files"])
    assert Workspace.open(ws_dir).stage("chips")["revision"] == 3


def test_three_bigearthnet_samples_in_one_workspace(samples_dir, tmp_path):
    files = [samples_dir / "sentinel2" / name for name in BIGEARTHNET]
    _check_three_files(files, tmp_path / "ws", per_file=4)  # 120 x 120 px at 64 px: 2 x 2 chips each


def test_three_generated_labelled_files_in_one_workspace(tmp_path):
    _check_three_files(_labelled_files(tmp_path / "in"), tmp_path / "ws", per_file=4)


def test_interrupted_second_file_keeps_the_first_and_resumes(tmp_path):
    a, b, c = _labelled_files(tmp_path / "in")
    ingest_geotiffs([a, b, c], tmp_path / "clean", sensor=S2, chips=ChipSettings(32))
    ws_dir = tmp_path / "ws"
    ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(32))
    before = Workspace.open(ws_dir)
    table0, pixels0 = before.chip_table(), before.read_chips(slice(None))
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(32), cancel=cancel)
    ws = Workspace.open(ws_dir)  # the finished file stays complete and readable meanwhile
    assert ws.stage("chips")["status"] == "complete" and ws.stage("chips")["appending"]["base_row"] == 16
    assert ws.n_chips() == 16 and ws.chip_table().equals(table0)
    np.testing.assert_array_equal(ws.read_chips(slice(None)), pixels0)
    state = read_progress(ws)
    assert len(state["windows"]) == 5 and state["base_row"] == 16
    with pytest.raises(WorkspaceError, match="unfinished chips of gen_1"):
        ingest_geotiff(c, ws_dir, sensor=S2, chips=ChipSettings(32))
    seen: list[int] = []
    rec = ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(32), progress=lambda d, t, info: seen.append(d))
    assert seen[0] == 5 and seen[-1] == 16
    assert rec["chips"] == 16 and rec["total_chips"] == 32 and rec["rows"] == [16, 32] and rec["n_sources"] == 2
    ingest_geotiff(c, ws_dir, sensor=S2, chips=ChipSettings(32))
    ws, clean = Workspace.open(ws_dir), Workspace.open(tmp_path / "clean")
    np.testing.assert_array_equal(ws.read_chips(slice(None)), clean.read_chips(slice(None)))
    assert list(ws.chip_table()["chip_id"]) == list(clean.chip_table()["chip_id"])
    assert "appending" not in ws.stage("chips")
    with pytest.raises(StageMissingError):
        ws.open_array(CHIPS_ZARR, PENDING)  # the staging array is gone once the file is in


def test_crash_while_moving_appended_chips_is_finished_by_a_rerun(tmp_path, monkeypatch):
    a, b, _ = _labelled_files(tmp_path / "in")
    ingest_geotiffs([a, b], tmp_path / "clean", sensor=S2, chips=ChipSettings(64))
    ws_dir = tmp_path / "ws"
    ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64))
    ws = Workspace.open(ws_dir)
    ws.manifest["stages"]["embed"] = {"status": "complete", "n_chips": 4}  # a later stage made from the first
    ws.save()  # file's chips (recorded directly: it has no embeddings)

    def crash(self, name, gdf):
        raise KeyboardInterrupt

    monkeypatch.setattr(Workspace, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(64))
    monkeypatch.undo()
    ws = Workspace.open(ws_dir)
    assert ws.stage("chips")["status"] == "partial"  # pixels grew but the table did not: not valid yet
    assert ws.stage("embed")["status"] == "partial" and "chips were added" in ws.stage("embed")["stale"]
    with pytest.raises(StageMissingError, match="embed"):
        ws.require_stage("embed", "`clay-explore embed`")
    rec = ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(64))
    assert rec["total_chips"] == 8
    ws, clean = Workspace.open(ws_dir), Workspace.open(tmp_path / "clean")
    assert ws.stage("chips")["status"] == "complete" and ws.stage("chips")["revision"] == 2
    np.testing.assert_array_equal(ws.read_chips(slice(None)), clean.read_chips(slice(None)))
    assert list(ws.chip_table()["chip_id"]) == list(clean.chip_table()["chip_id"])
    assert len(ws.sources) == 2


def test_incompatible_files_are_refused_and_nothing_changes(tmp_path):
    a, b, _ = _labelled_files(tmp_path / "in")
    ws_dir = tmp_path / "ws"
    ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64))
    manifest = (ws_dir / "manifest.json").read_text()
    naip = write_raster(tmp_path / "in" / "naip.tif", (s2_scene((64, 64))[:4] // 40).astype(np.uint8), epsg=26914)
    with pytest.raises(WorkspaceError, match="cannot also take"):
        ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(32))  # other chip size
    with pytest.raises(WorkspaceError, match="cannot also take"):
        ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(64), bands=["red", "nir"])  # other bands
    with pytest.raises(WorkspaceError, match="cannot also take"):
        ingest_geotiff(naip, ws_dir, sensor="naip", chips=ChipSettings(64))  # other sensor
    with pytest.raises(WorkspaceError, match="cut with other settings"):
        ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64, min_valid=0.9))  # same file, other settings
    seven = write_raster(tmp_path / "in" / "seven.tif", s2_scene((64, 64))[:7])
    with pytest.raises(ImageryError, match="7 bands"):  # checked before anything is written
        ingest_geotiffs([b, seven], ws_dir, sensor=S2, chips=ChipSettings(64))
    assert (ws_dir / "manifest.json").read_text() == manifest
    assert Workspace.open(ws_dir).n_chips() == 4


def test_appended_file_with_no_valid_chip_leaves_the_workspace_as_it_was(tmp_path):
    a, b, _ = _labelled_files(tmp_path / "in")
    empty = write_raster(tmp_path / "in" / "empty.tif", np.zeros((10, 120, 120), np.uint16))
    ws_dir = tmp_path / "ws"
    ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64))
    table = Workspace.open(ws_dir).chip_table()
    with pytest.raises(NoScenesError, match="Nothing of empty.tif was added"):
        ingest_geotiff(empty, ws_dir, sensor=S2, chips=ChipSettings(64))
    ws = Workspace.open(ws_dir)
    assert ws.stage("chips")["status"] == "complete" and ws.chip_table().equals(table) and len(ws.sources) == 1
    assert ingest_geotiff(b, ws_dir, sensor=S2, chips=ChipSettings(64))["total_chips"] == 8


def test_workspace_written_before_multi_source_opens_and_takes_more_files(tmp_path):
    """The old layout: one manifest source, no `sources`/`revision`, no source_index column."""
    a, _, _ = _labelled_files(tmp_path / "in")
    plain = write_raster(tmp_path / "in" / "plain_20210801.tif", s2_scene((120, 120), seed=99))  # no labels
    ws_dir = tmp_path / "ws"
    ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64))
    ws = Workspace.open(ws_dir)
    old_rec = {k: v for k, v in ws.stage("chips").items() if k not in ("sources", "revision", "updated", "status")}
    del ws.manifest["sources"]
    ws.set_stage("chips", status="complete", **old_rec)
    ws.write_table("chips.parquet", ws.chip_table().drop(columns=["source_index"]))

    ws = Workspace.open(ws_dir)
    assert ws.sources == [{"kind": "file", "path": str(a.resolve())}]
    assert ws.summary()["sources"] == ws.sources
    assert ingest_geotiff(a, ws_dir, sensor=S2, chips=ChipSettings(64))["resumed"] is True
    rec = ingest_geotiff(plain, ws_dir, sensor=S2, chips=ChipSettings(64))
    assert rec["rows"] == [4, 8] and rec["total_chips"] == 8 and rec["n_sources"] == 2
    ws = Workspace.open(ws_dir)
    table = ws.chip_table()
    assert list(table["chip_id"][:5]) == [
        "r000000_c000000",
        "r000000_c000064",
        "r000064_c000000",
        "r000064_c000064",
        "s1_r000000_c000000",
    ]
    assert list(table["source_index"]) == [0] * 4 + [1] * 4
    assert list(table["labels"][0]) == GEN_LABELS[0] and table["labels"][4:].isna().all()
    assert ws.stage("chips")["revision"] == 2 and [s["rows"] for s in ws.stage("chips")["sources"]] == [[0, 4], [4, 8]]
    assert [Path(s["path"]).name for s in ws.sources] == [a.name, plain.name]


def test_empty_file_in_a_batch_is_skipped_even_when_first(tmp_path):
    a, b, _ = _labelled_files(tmp_path / "in")
    empty = write_raster(tmp_path / "in" / "empty.tif", np.zeros((10, 120, 120), np.uint16))
    out = ingest_geotiffs([empty, a, b], tmp_path / "ws", sensor=S2, chips=ChipSettings(64))
    assert "Every chip was dropped" in out["files"][0]["skipped"]
    assert out["chips"] == 8 and out["n_sources"] == 2 and out["added"] == 8
    ws = Workspace.open(tmp_path / "ws")
    assert ws.manifest["source"]["path"] == str(a.resolve()) and len(ws.sources) == 2
    assert list(ws.chip_table()["chip_id"])[0] == "r000000_c000000"
    with pytest.raises(NoScenesError, match="No file gave a chip"):
        ingest_geotiffs(
            [empty, write_raster(tmp_path / "in" / "empty2.tif", np.zeros((10, 64, 64), np.uint16))],
            tmp_path / "ws2",
            sensor=S2,
            chips=ChipSettings(64),
        )


def test_embed_after_append_encodes_only_the_new_chips(tmp_path, tiny_checkpoint):
    """Appending a file marks embeddings stale; embed then grows the arrays and keeps earlier tokens."""
    from clay_explore.core.workspace import EMBEDDINGS_ZARR
    from clay_explore.research.embed import embed_workspace

    files = _labelled_files(tmp_path)
    ws_dir = tmp_path / "ws"
    ingest_geotiffs(files[:2], ws_dir, sensor=S2, chips=ChipSettings(64))
    first = embed_workspace(ws_dir, checkpoint=tiny_checkpoint, show_progress=False)
    ws = Workspace.open(ws_dir)
    n_old = ws.n_chips()
    before = np.asarray(ws.open_array(EMBEDDINGS_ZARR, "cls")[:])
    ingest_geotiff(files[2], ws_dir, sensor=S2, chips=ChipSettings(64))
    ws = Workspace.open(ws_dir)
    assert ws.stage("embed")["status"] == "partial"  # stale until re-embedded
    seen = []
    embed_workspace(
        ws_dir,
        checkpoint=tiny_checkpoint,
        show_progress=False,
        progress=lambda done, total, info=None: seen.append((done, total)),
    )
    ws = Workspace.open(ws_dir)
    after = np.asarray(ws.open_array(EMBEDDINGS_ZARR, "cls")[:])
    assert after.shape[0] == ws.n_chips() > n_old
    assert np.array_equal(after[:n_old], before)  # earlier chips were not re-encoded or lost
    assert np.isfinite(after).all() and ws.stage("embed")["status"] == "complete"
    assert seen and seen[0][0] >= n_old  # progress started from the chips already done
    assert first["n_chips"] == n_old
