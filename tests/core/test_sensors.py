"""Sensor registry and Clay's metadata encodings."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from clay_explore.core.errors import SensorError
from clay_explore.core.sensors import (
    denormalize,
    encode_latlon,
    encode_time,
    get_sensor,
    normalize,
    sensor_names,
)

REQUIRED = [
    "sentinel-2-l2a",
    "landsat-c2l1",
    "landsat-c2l2-sr",
    "naip",
    "linz",
    "sentinel-1-rtc",
    "modis",
    "planetscope-sr",
]


def test_registry_has_every_sensor_with_complete_bands():
    assert set(REQUIRED) <= set(sensor_names())
    for name in REQUIRED:
        s = get_sensor(name)
        assert s.gsd > 0 and s.bands
        for b in s.bands:
            assert b.std > 0 and 0 < b.wavelength < 10, (name, b)
        assert s.rgb_names() is not None or name == "sentinel-1-rtc"


def test_s2_values_match_clay_facts():
    s2 = get_sensor("sentinel-2-l2a")
    assert s2.band_names == [
        "blue",
        "green",
        "red",
        "rededge1",
        "rededge2",
        "rededge3",
        "nir",
        "nir08",
        "swir16",
        "swir22",
    ]
    mean, std, waves = s2.stats(["red", "nir"])
    assert mean.tolist() == [1552, 2743] and std.tolist() == [1888, 1742]
    assert np.allclose(waves, [0.665, 0.842])
    assert s2.gsd == 10


def test_aliases_and_errors():
    s2 = get_sensor("sentinel-2-l2a")
    assert [b.name for b in s2.resolve_bands(["B04", "b8a"])] == ["red", "nir08"]
    with pytest.raises(SensorError, match="no band 'B13'"):
        s2.resolve_bands(["B13"])
    with pytest.raises(SensorError, match="twice"):
        s2.resolve_bands(["red", "B04"])
    with pytest.raises(SensorError, match="Unknown sensor 'worldview'.*sentinel-2-l2a"):
        get_sensor("worldview")


def test_normalize_roundtrip_and_s1_db():
    s2 = get_sensor("sentinel-2-l2a")
    raw = np.random.default_rng(0).uniform(0, 8000, (2, 3, 4, 4)).astype(np.float32)
    z = normalize(raw, s2, ["blue", "green", "red"])
    assert np.allclose(z[:, 0], (raw[:, 0] - 1105) / 1809, atol=1e-5)
    assert np.allclose(denormalize(z, s2, ["blue", "green", "red"]), raw, rtol=1e-5, atol=1e-2)
    s1 = get_sensor("sentinel-1-rtc")
    z = normalize(np.array([[[[0.1]], [[0.0]]]], dtype=np.float32), s1)
    assert np.isclose(z[0, 0, 0, 0], (-10 - -12.113) / 8.314, atol=1e-5)
    assert np.isfinite(z).all()  # values <= 0 are clamped before the log


def test_encode_time_definition():
    when = datetime(2018, 7, 8, 11, 21, 59, tzinfo=UTC)
    week = when.isocalendar()[1]
    expected = [
        math.sin(week * 2 * math.pi / 52),
        math.cos(week * 2 * math.pi / 52),
        math.sin(11 * 2 * math.pi / 24),
        math.cos(11 * 2 * math.pi / 24),
    ]
    assert np.allclose(encode_time(when), expected, atol=1e-7)
    # other time zones are converted to UTC first; minutes are ignored
    local = when.astimezone(timezone(timedelta(hours=2)))
    assert np.allclose(encode_time(local), expected, atol=1e-7)
    assert np.allclose(encode_time("2018-07-08T11:59:00Z"), expected, atol=1e-7)
    # a date only counts as hour 0
    assert np.allclose(encode_time(date(2018, 7, 8))[2:], [0.0, 1.0])
    assert encode_time(None).tolist() == [0, 0, 0, 0]


def test_encode_latlon_definition_and_unknown():
    v = encode_latlon(37.30939, -8.57207)
    assert np.allclose(
        v,
        [
            math.sin(math.radians(37.30939)),
            math.cos(math.radians(37.30939)),
            math.sin(math.radians(-8.57207)),
            math.cos(math.radians(-8.57207)),
        ],
    )
    assert encode_latlon(None, 3.0).tolist() == [0, 0, 0, 0]
    assert encode_latlon(float("nan"), 3.0).tolist() == [0, 0, 0, 0]
    with pytest.raises(SensorError, match="out of range"):
        encode_latlon(95.0, 10.0)
