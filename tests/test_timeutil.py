"""Durations and instants: units, the forms refused, a zone required, ISO round trips."""

import pytest

from carbon_pipe.timeutil import format_duration, iso, parse_duration, parse_instant


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("30min", 1800),
        ("4h", 14400),
        ("1h30min", 5400),
        ("2.5h", 9000),
        ("1d", 86400),
        (120, 120),
        ("45", 45),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "4 hours", "h", "-3h", "1h30", ""])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_instants_need_a_zone_and_round_trip():
    moment = parse_instant("2025-01-15T18:00:00+01:00")
    assert iso(moment) == "2025-01-15T17:00:00.000000Z"
    assert parse_instant(iso(moment + 0.25)) == moment + 0.25
    with pytest.raises(ValueError, match="no time zone"):
        parse_instant("2025-01-15T18:00:00")
    assert format_duration(9 * 3600 + 30 * 60) == "9h30min"
