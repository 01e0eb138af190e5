"""manifest.json is validated on open: one clear error naming the file, the field and the fix."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from clay_explore.cli.main import cli
from clay_explore.core.errors import WorkspaceError
from clay_explore.core.workspace import MANIFEST, Workspace


@pytest.fixture
def ws_root(tmp_path):
    ws = Workspace.create(
        tmp_path / "ws", sensor="sentinel-2-l2a", bands=["blue", "red"], chip_size=64, source={"kind": "test"}
    )
    return ws.root


def _edit(root, change) -> None:
    data = json.loads((root / MANIFEST).read_text())
    change(data)
    (root / MANIFEST).write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, field, detail",
    [
        (lambda m: m.pop("sensor"), "sensor", "lacks the field"),
        (lambda m: m.pop("bands"), "bands", "lacks the field"),
        (lambda m: m.update(chip_size="64"), "chip_size", "'64'"),
        (lambda m: m.update(bands="blue"), "bands", "wrong value"),
        (lambda m: m.update(stages=[]), "stages", "wrong value"),
        (lambda m: m.update(stages={"embed": {"status": "done"}}), "stages.embed.status", "'done'"),
        (lambda m: m.update(stages={"embed": {}}), "stages.embed.status", "lacks the field"),
        (
            lambda m: m.update(stages={"chips": {"status": "partial"}, "embed": {"status": "complete"}}),
            "'embed' is marked complete while stage 'chips' is not",
            "inconsistent",
        ),
    ],
)
def test_bad_manifest_is_one_clear_error(ws_root, change, field, detail):
    _edit(ws_root, change)
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(ws_root)
    text = str(err.value)
    assert str(ws_root / MANIFEST) in text and field in text and detail in text
    assert "Restore manifest.json" in text  # the fix


def test_manifest_that_is_not_an_object(ws_root):
    (ws_root / MANIFEST).write_text("[1, 2]")
    with pytest.raises(WorkspaceError, match="not an object"):
        Workspace.open(ws_root)


def test_unknown_fields_are_kept(ws_root):
    _edit(ws_root, lambda m: m.update(future_field={"x": 1}))
    assert Workspace.open(ws_root).manifest["future_field"] == {"x": 1}


def test_cli_prints_one_error_line(ws_root):
    _edit(ws_root, lambda m: m.pop("sensor"))
    for args in (["info", "-w", str(ws_root)], ["embed", "-w", str(ws_root)]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:") and "'sensor'" in lines[0]
        assert "Traceback" not in res.output
