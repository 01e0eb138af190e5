"""One writer per workspace for embed: concurrent CLI runs, refusals, disk full, and verified stage records."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from clay_explore.cli.main import cli
from clay_explore.core.errors import StageMissingError, WorkspaceError
from clay_explore.core.lock import workspace_writer
from clay_explore.core.workspace import EMBEDDINGS_ZARR, Workspace

TIMEOUT_S = 600  # bound on a subprocess, never a timing assertion
BATCH = "2"


def _tokens(root) -> tuple[np.ndarray, np.ndarray]:
    ws = Workspace.open(root)
    return (
        np.asarray(ws.open_array(EMBEDDINGS_ZARR, "cls")[:]),
        np.asarray(ws.open_array(EMBEDDINGS_ZARR, "patches")[:]),
    )


def _assert_same_tokens(a, b) -> None:
    for x, y in zip(_tokens(a), _tokens(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bitwise


def _cli(root, ckpt, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "clay_explore.cli.main",
        "embed",
        "-w",
        str(root),
        "--checkpoint",
        str(ckpt),
        "--batch-size",
        BATCH,
        "--device",
        "cpu",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CLAY_EXPLORE_WAIT", "CLAY_EXPLORE_LOCK_TOKEN")}


@pytest.fixture(scope="module")
def clean(generated_template, tmp_path_factory, tiny_checkpoint):
    """A clean single CLI run on a copy of the generated chips."""
    import shutil

    root = tmp_path_factory.mktemp("clean") / "ws"
    shutil.copytree(generated_template, root)
    out = subprocess.run(_cli(root, tiny_checkpoint), env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    return root


@pytest.mark.slow
def test_two_concurrent_cli_embeds_equal_one_clean_run(generated_template, copy_ws, tiny_checkpoint, clean):
    root = copy_ws(generated_template)
    procs = [
        subprocess.Popen(
            _cli(root, tiny_checkpoint, "--wait"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "complete"
    assert ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).all()
    _assert_same_tokens(root, clean)


@pytest.mark.slow
def test_second_embed_refuses_or_waits_while_another_writes(generated_template, copy_ws, tiny_checkpoint, clean):
    root = copy_ws(generated_template)
    with workspace_writer(root, "ingest") as holder:  # another writer (here: this test) holds the workspace
        out = subprocess.run(_cli(root, tiny_checkpoint), env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
        assert out.returncode == 2
        errors = [ln for ln in re.split(r"[\r\n]", out.stderr) if "Error: " in ln]
        assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"'ingest' (pid {holder.pid}" in errors[0] and "--wait" in errors[0]
        assert not (root / EMBEDDINGS_ZARR).exists()  # refused before writing anything

        waiting = subprocess.Popen(
            _cli(root, tiny_checkpoint, "--wait"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        heard = ""
        for line in waiting.stderr:  # it says whom it waits for, then waits
            heard += line
            if "Waiting for workspace" in line:
                break
        assert f"'ingest' (pid {holder.pid}" in heard, heard
    _, err = waiting.communicate(timeout=TIMEOUT_S)  # released: it runs
    assert waiting.returncode == 0, err
    _assert_same_tokens(root, clean)


def test_disk_full_mid_embed_keeps_finished_batches_and_resumes_bitwise(
    generated_template, copy_ws, tiny_checkpoint, monkeypatch, tmp_path
):
    import shutil

    from clay_explore.research import embed

    clean = tmp_path / "clean_inproc"
    shutil.copytree(generated_template, clean)
    args = ["--checkpoint", str(tiny_checkpoint), "--batch-size", BATCH, "--device", "cpu"]
    assert CliRunner().invoke(cli, ["embed", "-w", str(clean), *args]).exit_code == 0
    root = copy_ws(generated_template)
    real, calls = embed.write_rows, []

    def fills_up(arr, rows, data):
        calls.append(rows)
        if len(calls) > 2:  # the second batch's CLS is written, its patches hit a full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(root / EMBEDDINGS_ZARR))
        real(arr, rows, data)

    monkeypatch.setattr(embed, "write_rows", fills_up)
    res = CliRunner().invoke(cli, ["embed", "-w", str(root), *args])
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [ln for ln in re.split(r"[\r\n]", res.output) if "Error: " in ln]
    assert len(errors) == 1 and "No space left on the disk" in errors[0], res.output
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert int(ws.done_mask(EMBEDDINGS_ZARR, "cls", ws.n_chips()).sum()) == int(BATCH)  # only the finished batch
    monkeypatch.undo()
    assert CliRunner().invoke(cli, ["embed", "-w", str(root), *args]).exit_code == 0
    assert Workspace.open(root).stage("embed")["status"] == "complete"
    _assert_same_tokens(root, clean)


def test_embed_is_not_marked_complete_over_missing_tokens(generated_embedded, copy_ws, tiny_model):
    from clay_explore.research.embed import embed_workspace

    root = copy_ws(generated_embedded)
    ws = Workspace.open(root)
    rec = {k: v for k, v in ws.stage("embed").items() if k not in ("status", "updated")}
    ws.open_array(EMBEDDINGS_ZARR, "cls", mode="r+")[3] = np.nan  # a row lost although marked done
    with pytest.raises(WorkspaceError, match="1 of 10 chips have no tokens"):
        ws.set_stage("embed", status="complete", **rec)
    ws = Workspace.open(root)
    assert ws.stage("embed")["status"] == "partial"
    assert not ws.done_mask(EMBEDDINGS_ZARR, "cls", 10)[3]  # taken off the done-list: the next run redoes it
    embed_workspace(root, model=tiny_model, batch_size=4, show_progress=False)
    assert Workspace.open(root).stage("embed")["status"] == "complete"
    _assert_same_tokens(root, generated_embedded)


def test_projecting_tokens_of_an_unfinished_embed_is_refused(generated_embedded, copy_ws):
    from clay_explore.research import projection as P

    root = copy_ws(generated_embedded)
    ws = Workspace.open(root)
    rec = {k: v for k, v in ws.stage("embed").items() if k not in ("status", "updated")}
    ws.set_stage("embed", status="partial", **{**rec, "done": 4})
    with pytest.raises(StageMissingError, match=r"unfinished \(4 of 10 chips\).*embed"):
        P.project_workspace(Workspace.open(root), ["cls"])
    res = CliRunner().invoke(cli, ["project", "-w", str(root), "-s", "cls"])
    assert res.exit_code == 2 and "unfinished" in res.output


def test_deleted_embeddings_read_as_unfinished_and_embed_rebuilds_them(generated_embedded, copy_ws, tiny_model):
    import shutil

    from clay_explore.research.embed import embed_workspace

    root = copy_ws(generated_embedded)
    shutil.rmtree(root / EMBEDDINGS_ZARR)
    rec = Workspace.open(root).stage("embed")
    assert rec["status"] == "partial" and rec["missing"] == [EMBEDDINGS_ZARR]
    res = CliRunner().invoke(cli, ["info", "-w", str(root)])
    assert "stage embed: partial" in res.output and "missing" in res.output
    out = embed_workspace(root, model=tiny_model, batch_size=4, show_progress=False)
    assert not out.get("already_complete") and Workspace.open(root).stage("embed")["status"] == "complete"
    _assert_same_tokens(root, generated_embedded)
