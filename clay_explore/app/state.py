"""Every Streamlit session-state key of the app in one place, and where session workspaces live.

Pages read and write ``st.session_state[KEY]`` only through these names, so the state that flows
between pages (current workspace, selected chips, the last projection) is easy to follow and test.
No Streamlit import here: tests and the CLI can use the helpers too.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

#: Folder holding one workspace per session (and shared ones such as ``demo``).
WORKSPACES_ENV = "CLAY_EXPLORE_WORKSPACES"
DEFAULT_WORKSPACES = "workspaces"
DEMO_NAME = "demo"
#: Query parameter that opens a shared workspace by name: ``?ws=demo``.
QUERY_WORKSPACE = "ws"

# ---- session-state keys ------------------------------------------------------------------------------------
SESSION_ID = "ce_session_id"          # str: short random id of this browser session
WORKSPACE = "ce_workspace"            # str: path of the workspace this session works in
SELECTED_CHIPS = "ce_selected_chips"  # list[int]: chip rows selected on a plot or map
FOCUS_CHIP = "ce_focus_chip"          # int | None: the chip shown on Similar / Reconstructions
BBOX = "ce_bbox"                      # tuple[float, float, float, float] | None: W, S, E, N
SCENES = "ce_scenes"                  # list[dict]: the last STAC search result
RUNNING = "ce_running"                # dict[str, float]: long stages started in this session (for cancel notices)
MESSAGES = "ce_messages"              # list[tuple[str, str]]: (kind, text) to show after a rerun
FAST = "ce_fast"                      # bool: bf16 inference
JOBS_SEEN = "ce_jobs_seen"            # set[tuple]: background jobs whose outcome this session has shown

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def workspaces_root() -> Path:
    """Root folder of the session workspaces (``$CLAY_EXPLORE_WORKSPACES`` or ./workspaces)."""
    return Path(os.environ.get(WORKSPACES_ENV, DEFAULT_WORKSPACES)).expanduser().resolve()


def new_session_id() -> str:
    """A short random session id."""
    return uuid.uuid4().hex[:12]


def session_workspace(session_id: str) -> Path:
    """The private workspace folder of a session."""
    return workspaces_root() / f"session-{session_id}"


def named_workspace(name: str) -> Path:
    """A shared workspace under the root by name; refuses names that could leave the root."""
    from clay_explore.core.errors import WorkspaceError

    if not _SAFE_NAME.match(name or ""):
        raise WorkspaceError(
            f"'{name}' is not a valid workspace name: use letters, digits, '-', '_' or '.' (no folders)."
        )
    return workspaces_root() / name


def list_workspaces() -> list[Path]:
    """Workspaces (folders with a manifest) under the root, shared ones first."""
    root = workspaces_root()
    if not root.exists():
        return []
    found = [p for p in root.iterdir() if (p / "manifest.json").exists()]
    return sorted(found, key=lambda p: (p.name.startswith("session-"), p.name))
