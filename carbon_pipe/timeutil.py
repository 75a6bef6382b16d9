"""Parsing and formatting of durations and instants. Instants are float seconds since the UNIX epoch (UTC)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

LAST_EPOCH_SECOND = 253402300800.0  # 10000-01-01T00:00Z: later UNIX seconds are another unit, not a date
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str | int | float) -> float:
    """'1h30min', '90s', '2.5h', or a bare number of seconds -> seconds. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        compact = text.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", compact):
            seconds = float(compact)
        else:
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
                raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 30min, 4h, 1h30min)")
            seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
    if not math.isfinite(seconds):  # YAML's .nan and .inf: a NaN compares false everywhere and would mean "no wait"
        raise ValueError(f"duration {text!r} is not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"duration {text!r} is negative")
    return seconds


def parse_instant(text: str | datetime) -> float:
    """ISO-8601 with an explicit offset or Z -> epoch seconds. Naive times are refused: whose 18:00?"""
    if isinstance(text, datetime):
        moment = text
    elif not isinstance(text, str):  # a number or a list where a recorded time belongs: ValueError, as for bad text
        raise ValueError(f"invalid time {text!r} (use ISO-8601, e.g. 2025-01-15T18:00:00+00:00)")
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"invalid time {text!r} (use ISO-8601, e.g. 2025-01-15T18:00:00+00:00)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {text!s} has no time zone (add Z or an offset like +01:00)")
    return moment.timestamp()


def iso(seconds: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with 'Z', to the microsecond (what an epoch float resolves)."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def format_duration(seconds: float) -> str:
    """Human-readable, e.g. 9h30min, 45s."""
    delta = timedelta(seconds=round(seconds))
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}min" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
