from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.intensity.sources import get_source


def local(hour: int, zone: str = "Europe/London", day: int = 15) -> float:
    return datetime(2025, 1, day, hour, tzinfo=ZoneInfo(zone)).timestamp()


def test_mock_curve_peaks_at_18_and_bottoms_at_03_local():
    source = get_source(CarbonParams())
    assert source.value_at(local(18)) == pytest.approx(450)
    assert source.value_at(local(3)) == pytest.approx(200)
    hourly = [source.value_at(local(0) + h * 3600) for h in range(24)]
    assert int(np.argmax(hourly)) == 18 and int(np.argmin(hourly)) == 3


def test_mock_curve_is_continuous_and_follows_the_zone():
    source = get_source(CarbonParams())
    minutes = local(0) + 60.0 * np.arange(48 * 60)
    values = np.array([source.value_at(t) for t in minutes])
    assert np.abs(np.diff(values)).max() < 1.0  # no jumps, including across midnight
    tokyo = get_source(CarbonParams(mock={"timezone": "Asia/Tokyo"}))
    assert tokyo.value_at(local(18, "Asia/Tokyo")) == pytest.approx(450)


def test_mock_series_is_utc_aligned_and_covers_the_request():
    source = get_source(CarbonParams(mock={"resolution": 900}))
    start = local(18) + 100
    series = source.series(start, start + 6 * 3600)
    assert series.start <= start and series.end >= start + 6 * 3600
    assert np.all(np.diff(series.boundaries) == 900) and series.start % 900 == 0
    assert series.source == "mock" and "synthetic" in series.notes[0]
