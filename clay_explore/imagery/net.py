"""Network policy: bounded retries with exponential backoff, timeouts, Planetary Computer signing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlparse

from clay_explore.core.defaults import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from clay_explore.core.errors import ClayExploreError, ImageryError, NetworkError

T = TypeVar("T")

DEFAULT_BACKOFF_S = 0.5
RETRY_STATUS = (429, 500, 502, 503, 504)
PC_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}"
PC_BLOB_SUFFIX = ".blob.core.windows.net"


@dataclass(frozen=True)
class NetPolicy:
    """How hard to try: per-request timeout (s), retries after the first try, backoff base (s)."""

    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF_S

    def delays(self) -> list[float]:
        """Sleep before each retry: backoff, 2*backoff, 4*backoff, ..."""
        return [self.backoff * (2**i) for i in range(self.retries)]


#: Error texts (GDAL/curl/urllib) that no retry can fix, and what they mean for the user.
PERMANENT_ERRORS = (
    ("HTTP response code: 404", "the file does not exist at its URL"),
    ("HTTP response code: 403", "access was refused (the file is not public, or its signed URL expired)"),
    ("HTTP response code: 401", "access needs credentials"),
    ("HTTP Error 404", "the address does not exist"),
    ("HTTP Error 403", "access was refused"),
    ("HTTP Error 401", "access needs credentials"),
    (
        "not recognized as being in a supported file format",
        "the file is not a readable raster (corrupt, or not a GeoTIFF)",
    ),
    ("TIFFReadDirectory", "the file is a corrupt TIFF"),
)
BAD_DATA_FIX = (
    "The catalogue points at a file that cannot be used: pick other dates or a lower cloud limit so "
    "other scenes are used, or report the item to the catalogue's maintainers."
)


def permanent_reason(err: BaseException) -> str | None:
    """What a failure means when retrying cannot help (missing/forbidden/corrupt file), else None."""
    text = f"{err} {err.__cause__ or ''}"
    return next((why for pattern, why in PERMANENT_ERRORS if pattern in text), None)


def with_retries(fn: Callable[[], T], policy: NetPolicy, what: str, fix: str) -> T:
    """Call ``fn``; on failure retry with backoff, then raise NetworkError naming ``what`` and ``fix``.

    ClayExploreErrors and KeyboardInterrupt pass through at once (they are not transient). A missing,
    forbidden or corrupt file is not retried and is not a network problem: ImageryError with ``BAD_DATA_FIX``.
    """
    last: BaseException | None = None
    for delay in [0.0, *policy.delays()]:
        if delay:
            time.sleep(delay)
        try:
            return fn()
        except ClayExploreError:
            raise
        except Exception as err:  # transient network/GDAL errors of many types
            why = permanent_reason(err)
            if why:
                raise ImageryError(
                    f"{what} failed: {why} ({type(err).__name__}: {str(err)[:300]}). {BAD_DATA_FIX}"
                ) from err
            last = err
    raise NetworkError(
        f"{what} failed after {policy.retries + 1} tries ({type(last).__name__}: {str(last)[:300]}). {fix}"
    ) from last


@dataclass
class PlanetarySigner:
    """Appends a Planetary-Computer-style SAS token to asset URLs on the blob hosts (cached per collection)."""

    token_url: str = PC_TOKEN_URL
    hosts: tuple[str, ...] = (PC_BLOB_SUFFIX,)
    policy: NetPolicy = field(default_factory=NetPolicy)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, collection: str) -> str:
        if collection not in self._tokens:
            url = self.token_url.format(collection=collection)

            def get() -> str:
                with urllib.request.urlopen(url, timeout=self.policy.timeout) as resp:
                    return json.loads(resp.read())["token"]

            self._tokens[collection] = with_retries(
                get,
                self.policy,
                f"Getting a Planetary Computer access token from {url}",
                "Check your connection, or try again later.",
            )
        return self._tokens[collection]

    def needs(self, href: str) -> bool:
        host = urlparse(href).hostname or ""
        return any(host == h or host.endswith(h) for h in self.hosts) and "sig=" not in href

    def sign(self, href: str, collection: str) -> str:
        """``href`` with the collection's token appended when it points at a signed host."""
        if not self.needs(href):
            return href
        return f"{href}{'&' if '?' in href else '?'}{self.token(collection)}"

    def sign_items(self, items: list) -> None:
        """Sign every asset of each pystac Item in place."""
        for item in items:
            for asset in item.assets.values():
                asset.href = self.sign(asset.href, item.collection_id or "")


def is_planetary(url: str) -> bool:
    """True for Microsoft Planetary Computer STAC URLs."""
    return "planetarycomputer" in (urlparse(url).hostname or "")


#: URL schemes a STAC endpoint may use; anything else (a local path, file://, ftp://) is refused.
WEB_SCHEMES = ("http", "https")


def check_web_url(url: str, what: str = "STAC API URL") -> str:
    """``url`` when it is an http(s) URL with a host; else ImageryError, before any request is made.

    A STAC client opens anything else as a local file, which on a shared app server would read
    the server's files.
    """
    text = str(url or "").strip()
    parsed = urlparse(text)
    if parsed.scheme.lower() not in WEB_SCHEMES or not parsed.netloc or any(c in text for c in "\r\n\t "):
        raise ImageryError(
            f"The {what} {text[:120]!r} is not a web address. Give an http:// or https:// URL "
            "(e.g. https://earth-search.aws.element84.com/v1)."
        )
    return text
