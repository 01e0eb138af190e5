"""The schema of ``manifest.json`` (pydantic): checked whenever a workspace is opened.

A manifest edited by hand, truncated by another tool or written by something else must fail with
one clear WorkspaceError naming the file, the field and the fix, never a KeyError later on. Types
are strict (``"64"`` is not a chip size); fields this schema does not name are kept as they are,
so later versions can add facts without breaking older readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from clay_explore.core.errors import WorkspaceError

STATUSES = ("complete", "partial")
#: Stages that describe the chips: they cannot be complete while the chips are not.
CHIPS_STAGE = "chips"
FIX = (
    "Restore manifest.json from a backup or a copy of the workspace, or start a new workspace "
    "(run the same fetch/ingest/demo command with a new --workspace folder)."
)


class StageRecord(BaseModel):
    """One stage's record: its status and whatever facts the stage keeps."""

    model_config = ConfigDict(extra="allow")
    status: Literal["complete", "partial"]
    updated: StrictStr | None = None


class Manifest(BaseModel):
    """The fields every reader relies on."""

    model_config = ConfigDict(extra="allow")
    schema_version: StrictInt = Field(ge=1)
    created: StrictStr | None = None
    sensor: StrictStr = Field(min_length=1)
    bands: list[StrictStr] = Field(min_length=1)
    chip_size: StrictInt = Field(gt=0)
    source: dict[str, Any] = Field(default_factory=dict)
    sources: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _stages_agree(self) -> Manifest:
        chips = self.stages.get(CHIPS_STAGE)
        if chips is not None and chips.status != "complete":
            done = [n for n, r in self.stages.items() if n != CHIPS_STAGE and r.status == "complete"]
            if done:
                raise ValueError(
                    f"stage '{done[0]}' is marked complete while stage 'chips' is not; the chips it describes "
                    "are unfinished"
                )
        return self


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validate_manifest(data: Any, path: Path) -> dict[str, Any]:
    """``data`` itself when it fits the schema; else one WorkspaceError naming ``path``, the field and the fix."""
    if not isinstance(data, dict):
        raise WorkspaceError(f"{path} holds a JSON {type(data).__name__}, not an object of fields. {FIX}")
    try:
        Manifest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = _where(first.get("loc", ()))
        kind = first.get("type", "")
        if kind == "missing":
            what = f"lacks the field '{field}'"
        elif kind == "value_error":
            what = f"is inconsistent: {str(first.get('msg', '')).removeprefix('Value error, ')}"
        else:
            got = first.get("input")
            shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
            what = f"has a wrong value in field '{field}': {first.get('msg', 'invalid')} (got {shown[:80]})"
        more = f" ({err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
        raise WorkspaceError(f"{path} {what}{more}. {FIX}") from None
    return data
