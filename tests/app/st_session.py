"""A minimal Streamlit session over the websocket, for browser-free tests of a real ``streamlit run`` server.

``Session(url).open(page, query)`` runs a page as a browser tab would; ``click(key)`` presses the button
whose key is ``key``. Enough to start a job from a page of a real server (SIGTERM / SIGKILL tests and
bench/app.py), without Chromium. Speaks the app's protobuf messages (``streamlit.proto``).
"""

from __future__ import annotations

import time
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

#: Seconds one script run may take before ``run`` gives up.
RUN_TIMEOUT_S = 120.0


class Session:
    """One websocket session of a Streamlit server at ``url`` (http://host:port)."""

    def __init__(self, url: str):
        self._conn = connect(
            url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"], max_size=None, open_timeout=30
        )
        self.ws = self._conn.__enter__()
        self.page_hash = ""
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.buttons: dict[str, str] = {}  # widget key (user key) -> widget id
        self.texts: list[str] = []  # markdown / progress / alert texts of the last run
        self.query = ""

    def close(self) -> None:
        self._conn.__exit__(None, None, None)

    def _send_rerun(self, widget: str | None = None, page_name: str = "") -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = self.page_hash
        state.page_name = page_name
        if widget is not None:
            w = state.widget_states.widgets.add()
            w.id = widget
            w.trigger_value = True
        self.ws.send(msg.SerializeToString())

    def _collect(self, timeout: float) -> None:
        """Read messages until the script run finishes."""
        self.buttons, self.texts = {}, []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the script run did not finish")
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=left))
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = fwd.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in fwd.navigation.app_pages}
                self.page_hash = fwd.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                self._element(fwd.delta.new_element)
            elif kind == "script_finished":
                return

    def _element(self, el: Any) -> None:
        kind = el.WhichOneof("type")
        if kind == "button":
            key = el.button.id.rsplit("-", 1)[-1]
            self.buttons[key] = el.button.id
        elif kind in ("markdown", "alert", "progress"):
            self.texts.append(getattr(getattr(el, kind), "body", "") or getattr(getattr(el, kind), "text", ""))

    def open(self, page: str = "", query: str = "", timeout: float = RUN_TIMEOUT_S) -> Session:
        """Run page ``page`` (url path, '' = the default page) with ``query`` (e.g. 'ws=demo')."""
        self.query = query
        if page in self.pages:  # a page of a known app: ask for it by its hash at once
            self.page_hash = self.pages[page]
        self._send_rerun(page_name=page)
        self._collect(timeout)
        if page and page in self.pages and self.pages[page] != self.page_hash:  # the first run routes to the default
            self.page_hash = self.pages[page]
            self._send_rerun(page_name=page)
            self._collect(timeout)
        return self

    def click(self, key: str, timeout: float = RUN_TIMEOUT_S) -> Session:
        """Press the button with key ``key`` on the current page and wait for the run it triggers."""
        if key not in self.buttons:
            raise KeyError(f"no button '{key}' on the page (buttons: {sorted(self.buttons)}; texts: {self.texts})")
        self._send_rerun(widget=self.buttons[key])
        self._collect(timeout)
        return self
