"""One progress / cancel protocol for every long stage (imagery and research alike).

A stage takes ``progress(done, total, info)`` and ``cancel`` (an Event or a callable returning True) and
reports through ``Progress``; the CLI shows tqdm, the app a bar, a worker process a JSON line.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Any, Callable

#: ``progress(done, total, info)``; info holds ``chips_per_s``, ``eta_s`` and a ``stage`` name.
ProgressFn = Callable[[int, int, dict[str, Any]], None]
#: A threading.Event or a no-argument callable that returns True to stop.
Cancel = threading.Event | Callable[[], bool] | None


def is_cancelled(cancel: Cancel) -> bool:
    """True when ``cancel`` (Event or callable) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Progress:
    """Counts finished items, shows a tqdm bar and calls ``callback(done, total, info)``."""

    def __init__(
        self,
        total: int,
        *,
        stage: str,
        unit: str = "chip",
        callback: ProgressFn | None = None,
        show: bool = True,
        done: int = 0,
    ):
        from tqdm.auto import tqdm

        self.total, self.done, self.stage, self.callback = int(total), int(done), stage, callback
        self._start, self._start_done = _time.perf_counter(), int(done)
        self._bar = tqdm(total=total, initial=done, desc=stage, unit=unit, disable=not show, leave=False)

    def update(self, n: int, **extra: Any) -> dict[str, Any]:
        """Add ``n`` finished items; returns the info passed to the callback."""
        self.done += int(n)
        self._bar.update(n)
        elapsed = max(_time.perf_counter() - self._start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        remaining = self.total - self.done
        info = {
            "stage": self.stage,
            "chips_per_s": rate,
            "eta_s": remaining / rate if rate > 0 else None,
            "elapsed_s": elapsed,
            **extra,
        }
        self._bar.set_postfix({k: (round(v, 4) if isinstance(v, float) else v) for k, v in extra.items()})
        if self.callback is not None:
            self.callback(self.done, self.total, info)
        return info

    def close(self) -> None:
        self._bar.close()


