"""core.progress: the total from the first call, movement within a batch, a sliding-window rate with
sensible units, one ETA, and counters that never run ahead of what is stored."""

from __future__ import annotations

import pytest

from clay_explore.core.progress import Progress, RateWindow, format_eta, format_rate


def test_rate_reads_in_chips_per_second_or_seconds_per_chip():
    assert format_rate(2.5, "chips") == "2.5 chips/s"
    assert format_rate(0.08, "chips") == "12.5 s/chip"  # slower than one chip a second: seconds per chip
    assert format_rate(0.08, "chip") == "12.5 s/chip"
    assert format_rate(None, "chips") == "" and format_rate(0.0, "chips") == ""


def test_eta_wording():
    assert format_eta(None) == "…"
    assert format_eta(42.4) == "42 s"
    assert format_eta(185) == "3 min 05 s"
    assert format_eta(3720) == "1 h 02 min"


def test_rate_window_forgets_old_samples_but_keeps_one_anchor():
    w = RateWindow(window_s=10)
    assert w.rate() is None
    w.add(0.0, 0)
    w.add(5.0, 50)  # 10 items/s at first
    w.add(100.0, 60)  # then a slow stretch: the window keeps (5, 50) as its anchor
    assert w.rate() == pytest.approx(10 / 95)
    w.add(105.0, 65)
    w.add(110.0, 70)  # the anchor moves to (100, 60): only the last 10 s count
    assert w.rate() == pytest.approx(1.0)


def test_progress_announces_the_total_and_moves_within_a_batch():
    calls = []
    bar = Progress(10, stage="embed", show=False, done=4, callback=lambda d, t, i: calls.append((d, t, dict(i))))
    assert calls[0][:2] == (4, 10) and calls[0][2]["eta_s"] is None  # the total from the start, no ETA guessed
    bar.within(0.5, 4)  # half of a 4-chip batch encoded
    done, total, info = calls[-1]
    assert (done, total) == (4, 10) and info["position"] == pytest.approx(6.0)  # stored count unchanged
    assert info["rate"] > 0 and info["eta_s"] == pytest.approx((10 - 6) / info["rate"])
    bar.update(4)
    assert calls[-1][0] == 8 and calls[-1][2]["position"] == pytest.approx(8.0)
    bar.set_label("Saving")
    assert calls[-1][2]["label"] == "Saving"
    bar.close()
