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
#: Query parameter that opens presenter mode: ``?present=1``.
QUERY_PRESENT = "present"

# ---- session-state keys ------------------------------------------------------------------------------------
SESSION_ID = "ce_session_id"  # str: short random id of this browser session
WORKSPACE = "ce_workspace"  # str: path of the workspace this session works in
SELECTED_CHIPS = "ce_selected_chips"  # list[int]: chip rows selected on a plot or map
FOCUS_CHIP = "ce_focus_chip"  # int | None: the chip shown on Similar / Reconstructions
BBOX = "ce_bbox"  # tuple[float, float, float, float] | None: W, S, E, N
SCENES = "ce_scenes"  # list[dict]: the last STAC search result
RUNNING = "ce_running"  # dict[str, float]: long stages started in this session (for cancel notices)
MESSAGES = "ce_messages"  # list[tuple[str, str]]: (kind, text) to show after a rerun
FAST = "ce_fast"  # bool: fast inference (the precision model.fastpath picks for the device)
DEVICE = "ce_device"  # str: torch device for the model: auto, cpu, cuda:N or mps
BATCH_SIZE = "ce_batch_size"  # int | str: chips per forward pass of an embed job ('auto' or a number)
# Widgets that set the settings above. Streamlit drops a widget's key when its page is not shown, so the
# settings (FAST, DEVICE, BATCH_SIZE) live in the plain keys above and these widget keys copy into them.
FAST_WIDGET = "ce_fast_toggle"
DEVICE_WIDGET = "ce_device_select"
BATCH_WIDGET = "embed_batch"
JOBS_SEEN = "ce_jobs_seen"  # set[tuple]: background jobs whose outcome this session has shown
PRESENT = "ce_present"  # bool: presenter mode (large type, the story in order, no panels)
PRESENT_TOGGLE = "ce_present_toggle"  # bool: the sidebar toggle that enters presenter mode

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

    if not _SAFE_NAME.fullmatch(name or ""):  # fullmatch: "demo\n" must not pass as "demo"
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


def unused_workspace(stem: str) -> Path:
    """A new folder under the root named after ``stem`` (made safe; '-2', '-3'... when taken)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:48] or "packed"
    if not base[0].isalnum():
        base = f"ws-{base}"
    path, n = workspaces_root() / base, 1
    while path.exists():
        n += 1
        path = workspaces_root() / f"{base}-{n}"
    return path
