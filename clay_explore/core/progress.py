"""One progress / cancel protocol for every long stage (imagery and research alike).

A stage takes ``progress(done, total, info)`` and ``cancel`` (an Event or a callable returning True) and
reports through ``Progress``; the CLI shows tqdm, the app a bar, a worker process a JSON job file.

``done`` counts finished (stored) items only, so a bar and a "done" metric read the same number;
``info["position"]`` adds the fraction of the batch in flight (``Progress.within``), so the bar moves
inside a long batch. The rate is measured over a sliding window (``RATE_WINDOW_S``) of positions, and
``info["eta_s"]`` is the one ETA every surface shows (None until something moved).
"""

from __future__ import annotations

import threading
import time as _time
from collections import deque
from collections.abc import Callable
from typing import Any

#: ``progress(done, total, info)``; info holds ``stage``, ``label``, ``unit``, ``position`` (done plus the
#: finished part of the batch in flight), ``rate`` (= ``chips_per_s``, items/s over a sliding window),
#: ``eta_s`` and ``elapsed_s``.
ProgressFn = Callable[[int, int, dict[str, Any]], None]
#: A threading.Event or a no-argument callable that returns True to stop.
Cancel = threading.Event | Callable[[], bool] | None

#: Seconds of history the rate is measured over (older samples are dropped, keeping one anchor before).
RATE_WINDOW_S = 60.0
#: Below this rate (items/s) a rate reads better as seconds per item ("12.5 s/chip").
SLOW_RATE = 1.0
_SECONDS_PER_MINUTE, _SECONDS_PER_HOUR = 60, 3600


def is_cancelled(cancel: Cancel) -> bool:
    """True when ``cancel`` (Event or callable) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def format_rate(rate: float | None, unit: str = "chip") -> str:
    """'3.2 chips/s', or '12.5 s/chip' below one item per second; '' when unknown."""
    if not rate or rate <= 0:
        return ""
    unit = unit.rstrip("s") or "item"
    if rate < SLOW_RATE:
        return f"{1.0 / rate:.1f} s/{unit}"
    return f"{rate:.1f} {unit}s/s"


def format_eta(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'; '…' when unknown."""
    if seconds is None:
        return "…"
    s = max(int(round(seconds)), 0)
    if s >= _SECONDS_PER_HOUR:
        return f"{s // _SECONDS_PER_HOUR} h {(s % _SECONDS_PER_HOUR) // _SECONDS_PER_MINUTE:02d} min"
    if s >= _SECONDS_PER_MINUTE:
        return f"{s // _SECONDS_PER_MINUTE} min {s % _SECONDS_PER_MINUTE:02d} s"
    return f"{s} s"


class RateWindow:
    """Items per second over the last ``window_s`` seconds of (time, position) samples."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = float(window_s)
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, position: float) -> None:
        self._samples.append((t, float(position)))
        # keep one anchor at or before the window start, so a slow batch still spans the window
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """None until two samples differ in time and position."""
        if len(self._samples) < 2:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or p1 <= p0:
            return None
        return (p1 - p0) / (t1 - t0)


class Progress:
    """Counts finished items, shows a tqdm bar and calls ``callback(done, total, info)``.

    The callback fires once at construction (the total is known from the first second), after each
    ``update`` (finished items), on each ``within`` (part of the batch in flight) and on ``set_label``.
    """

    def __init__(
        self,
        total: int,
        *,
        stage: str,
        unit: str = "chip",
        callback: ProgressFn | None = None,
        show: bool = True,
        done: int = 0,
        label: str | None = None,
        window_s: float = RATE_WINDOW_S,
    ):
        from tqdm.auto import tqdm

        self.total, self.done, self.stage, self.callback = int(total), int(done), stage, callback
        self.unit, self.label, self.partial = unit, label or stage, 0.0
        self._start = _time.perf_counter()
        self._window = RateWindow(window_s)
        self._window.add(self._start, self.done)
        self._bar = tqdm(total=total, initial=done, desc=stage, unit=unit, disable=not show, leave=False)
        self._emit({})

    @property
    def position(self) -> float:
        """Finished items plus the finished fraction of the batch in flight."""
        return min(self.done + self.partial, float(self.total)) if self.total else float(self.done)

    def info(self, **extra: Any) -> dict[str, Any]:
        """The info dict the callback gets: stage, label, unit, position, rate, ETA, elapsed."""
        rate = self._window.rate()
        remaining = max(self.total - self.position, 0.0)
        return {
            "stage": self.stage,
            "label": self.label,
            "unit": self.unit,
            "position": self.position,
            "rate": rate,
            "chips_per_s": rate,
            "eta_s": remaining / rate if rate else None,
            "elapsed_s": _time.perf_counter() - self._start,
            **extra,
        }

    def _emit(self, extra: dict[str, Any]) -> dict[str, Any]:
        info = self.info(**extra)
        if self.callback is not None:
            self.callback(self.done, self.total, info)
        return info

    def update(self, n: int, **extra: Any) -> dict[str, Any]:
        """Add ``n`` finished items (the batch in flight is done); returns the info passed to the callback."""
        self.done += int(n)
        self.partial = 0.0
        self._window.add(_time.perf_counter(), self.position)
        self._bar.update(n)
        if extra:
            self._bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in extra.items()})
        return self._emit(extra)

    def within(self, fraction: float, items: int) -> dict[str, Any]:
        """The batch in flight (``items`` items) is ``fraction`` (0..1) done: the bar moves, ``done`` does not."""
        self.partial = min(max(float(fraction), 0.0), 1.0) * int(items)
        self._window.add(_time.perf_counter(), self.position)
        return self._emit({})

    def set_label(self, label: str) -> None:
        """Say what the stage is doing now (e.g. 'Loading the model…'), at once."""
        self.label = label
        self._emit({})

    def close(self) -> None:
        self._bar.close()
