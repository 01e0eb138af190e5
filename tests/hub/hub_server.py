"""A small, honest stand-in for the Hugging Face Hub on 127.0.0.1, for `hf_hub_download(repo_id, filename)`.

It answers what huggingface_hub asks (read from its file_download.py / utils/_http.py) the way the real
Hub does for a git-LFS file:

* ``HEAD /{repo}/resolve/{rev}/{file}`` -> ``302`` with ``X-Repo-Commit`` (40-hex commit), ``ETag`` (git
  oid of the LFS pointer), ``X-Linked-Etag`` (sha256 of the content), ``X-Linked-Size`` and ``Location``
  on a second origin (the "CDN", another port: huggingface_hub does not follow a redirect off the Hub
  origin, it downloads from ``Location``). No ``X-Xet-*`` headers, so the client uses plain HTTP.
* ``GET {cdn}/lfs/{sha256}`` -> the bytes, ``Range: bytes=a-[b]`` honoured with ``206`` /
  ``Content-Range`` (``416`` when unsatisfiable).
* Errors as the Hub sends them: unknown repo -> ``401`` + ``X-Error-Code: RepoNotFound``; unknown
  revision -> ``404`` + ``RevisionNotFound``; unknown file -> ``404`` + ``EntryNotFound`` + ``X-Repo-Commit``.
* ``GET /api/models/{repo}[/revision/{rev}]`` -> ``{"id", "sha", "siblings"}`` (not used by hf_hub_download).
* ``GET /api/agent-harnesses`` -> an empty registry (huggingface_hub 2.x asks once a day when building its
  User-Agent, unless HF_HUB_DISABLE_TELEMETRY is set).

``direct=True`` serves the file from the resolve URL itself with ``200`` (how the Hub serves small
non-LFS files: ``ETag`` = git blob oid, ``Content-Length``). Failure injection: ``fail_status`` makes the
resolve endpoint answer that status; ``truncate_next_gets``/``truncate_at`` drop file GETs mid-body.
Every request is logged in ``server.requests``.

Stand-alone: ``python tests/hub/hub_server.py --port 8765 --file clay.ckpt`` then
``HF_ENDPOINT=http://127.0.0.1:8765 clay-explore model download``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO_ID = "made-with-clay/Clay"
FILENAME = "v1.5/clay-v1.5.ckpt"
SEND_CHUNK = 256 * 1024
SHUTDOWN_POLL_S = 0.05  # how often serve_forever checks for stop(); keeps test teardown quick
RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
API_RE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
LFS_RE = re.compile(r"^/lfs/(?P<sha>[0-9a-f]{64})$")
RANGE_RE = re.compile(r"^bytes=(?P<start>\d+)-(?P<end>\d*)$")
#: What huggingface_hub >= 2 fetches once a day (telemetry on) to tag its User-Agent; served empty.
EMPTY_AGENT_REGISTRY = b'{"standardEnvVars": [], "harnesses": {}}'
#: Request headers worth keeping in the log.
LOGGED_HEADERS = ("user-agent", "range", "accept-encoding", "x-hf-download-counter", "x-amzn-trace-id")


@dataclass(frozen=True)
class HostedFile:
    """One file of the repo: where its bytes are and the hashes the Hub advertises for it."""

    path: Path
    size: int
    sha256: str
    git_oid: str  # sha1 of the git blob (the LFS pointer for LFS files, the content for direct ones)

    @classmethod
    def from_path(cls, path: Path, *, lfs: bool) -> HostedFile:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
        sha = digest.hexdigest()
        if lfs:
            blob = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()
        else:
            blob = path.read_bytes()
        oid = hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()
        return cls(path=path, size=size, sha256=sha, git_oid=oid)


@dataclass
class LoggedRequest:
    """What one request asked and what it got."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    has_authorization: bool = False

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v!r}" for k, v in self.headers.items() if k != "user-agent")
        return f"[{self.server}] {self.method} {self.path} -> {self.status} {extra}".rstrip()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing ------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        """Silenced: HubServer.record logs each request once, with the headers that matter."""

    def _log(self, status: int) -> None:
        headers = {k: self.headers[k] for k in LOGGED_HEADERS if self.headers.get(k) is not None}
        self.server.hub.record(
            LoggedRequest(
                server=self.server.role,
                method=self.command,
                path=self.path,
                status=status,
                headers=headers,
                has_authorization="authorization" in {k.lower() for k in self.headers},
            )
        )

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self._log(status)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._reply(status, headers, json.dumps({"error": message}).encode())

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib name)
        self._route()

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._route()

    def _route(self) -> None:
        path = urlsplit(self.path).path
        hub = self.server.hub
        if self.server.role == "cdn":
            match = LFS_RE.match(path)
            entry = hub.by_sha.get(match["sha"]) if match else None
            if entry is None:
                return self._error(404, None, "no such object")
            return self._send_file(entry, {"ETag": f'"{entry.sha256}"'})
        if match := RESOLVE_RE.match(path):
            return self._resolve(unquote(match["repo"]), unquote(match["rev"]), unquote(match["file"]))
        if path == "/api/agent-harnesses" and self.command == "GET":
            return self._reply(200, {"Content-Type": "application/json"}, EMPTY_AGENT_REGISTRY)
        if (match := API_RE.match(path)) and self.command == "GET":
            return self._api(unquote(match["repo"]), unquote(match["rev"] or "main"))
        self._error(404, None, "Not Found")

    # -- endpoints ------------------------------------------------------------------------------------------
    def _resolve(self, repo: str, rev: str, filename: str) -> None:
        hub = self.server.hub
        if hub.fail_status is not None:
            return self._error(hub.fail_status, None, f"injected failure {hub.fail_status}")
        if repo != hub.repo_id:
            return self._error(401, "RepoNotFound", "Repository not found")
        if rev not in ("main", hub.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        entry = hub.files.get(filename)
        if entry is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": hub.commit})
        common = {"X-Repo-Commit": hub.commit, "Accept-Ranges": "bytes", "Vary": "Origin, Accept"}
        if hub.direct:
            return self._send_file(entry, {**common, "ETag": f'"{entry.git_oid}"'})
        location = f"{hub.cdn_endpoint}/lfs/{entry.sha256}"
        body = f"Found. Redirecting to {location}".encode()
        self._reply(
            302,
            {
                **common,
                "Location": location,
                "ETag": f'"{entry.git_oid}"',
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": str(entry.size),
                "Content-Type": "text/plain; charset=utf-8",
            },
            body,
        )

    def _api(self, repo: str, rev: str) -> None:
        hub = self.server.hub
        if repo != hub.repo_id:
            return self._error(401, "RepoNotFound", "Repository not found")
        info = {
            "id": hub.repo_id,
            "modelId": hub.repo_id,
            "sha": hub.commit,
            "private": False,
            "siblings": [{"rfilename": name} for name in sorted(hub.files)],
        }
        self._reply(200, {"Content-Type": "application/json"}, json.dumps(info).encode())

    def _send_file(self, entry: HostedFile, headers: dict[str, str]) -> None:
        start, end = 0, entry.size - 1
        status = 200
        spec = self.headers.get("Range")
        if spec:
            match = RANGE_RE.match(spec.strip())
            if match is None or int(match["start"]) >= entry.size:
                return self._error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{entry.size}"})
            start = int(match["start"])
            end = min(int(match["end"]), entry.size - 1) if match["end"] else entry.size - 1
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{entry.size}"}
        length = end - start + 1
        name = entry.path.name
        headers = {
            **headers,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}; filename=\"{name}\";",
            "Content-Length": str(length),
        }
        cut = self.server.hub.take_truncation() if self.command == "GET" else None
        self._log(status)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length if cut is None else min(cut, length)
        with entry.path.open("rb") as f:
            f.seek(start)
            sent = 0
            while sent < limit:
                block = f.read(min(SEND_CHUNK, limit - sent))
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True  # drop the rest: the client sees a short body


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: HubServer, role: str) -> None:
        super().__init__(address, _Handler)
        self.hub = hub
        self.role = role


class HubServer:
    """The hub origin and its CDN origin, both on 127.0.0.1, serving ``files`` under ``repo_id``."""

    def __init__(
        self,
        files: dict[str, Path],
        *,
        repo_id: str = REPO_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        direct: bool = False,
        verbose: bool = False,
    ) -> None:
        self.repo_id = repo_id
        self.direct = direct
        self.verbose = verbose
        self.files = {name: HostedFile.from_path(Path(p), lfs=not direct) for name, p in files.items()}
        self.by_sha = {f.sha256: f for f in self.files.values()}
        seed = repo_id + "".join(f"{n}:{f.sha256}" for n, f in sorted(self.files.items()))
        self.commit = hashlib.sha1(seed.encode()).hexdigest()
        self.fail_status: int | None = None
        self.truncate_next_gets = 0
        self.truncate_at = 0
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._hub = _Server((host, port), self, "hub")
        self._cdn = _Server((host, cdn_port), self, "cdn")
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        host, port = self._hub.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_endpoint(self) -> str:
        host, port = self._cdn.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)
        if self.verbose:
            print(request, file=sys.stderr, flush=True)

    def take_truncation(self) -> int | None:
        """Bytes to send before dropping this GET, or None to send it whole."""
        with self._lock:
            if self.truncate_next_gets <= 0:
                return None
            self.truncate_next_gets -= 1
            return self.truncate_at

    def count(self, method: str, server: str | None = None) -> int:
        """How many requests of ``method`` (on ``server`` "hub"/"cdn" if given) were received."""
        with self._lock:
            return sum(r.method == method and (server is None or r.server == server) for r in self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> HubServer:
        for srv in (self._hub, self._cdn):
            thread = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S}, name=f"hub-{srv.role}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for srv in (self._hub, self._cdn):
            srv.shutdown()
            srv.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve one checkpoint as made-with-clay/Clay v1.5/clay-v1.5.ckpt until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path, help="checkpoint to serve")
    parser.add_argument("--port", type=int, default=8765, help="hub port (HF_ENDPOINT)")
    parser.add_argument("--cdn-port", type=int, default=0, help="port of the file origin (0: any free one)")
    parser.add_argument("--repo", default=REPO_ID)
    parser.add_argument("--filename", default=FILENAME)
    parser.add_argument("--direct", action="store_true", help="serve from /resolve with 200 instead of a 302")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"--file {args.file} does not exist")
    server = HubServer(
        {args.filename: args.file},
        repo_id=args.repo,
        port=args.port,
        cdn_port=args.cdn_port,
        direct=args.direct,
        verbose=not args.quiet,
    )
    with server:
        print(f"HF_ENDPOINT={server.endpoint}  (files from {server.cdn_endpoint})", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
