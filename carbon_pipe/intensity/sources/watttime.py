"""WattTime v3 (api.watttime.org): the marginal emissions rate (MOER) forecast, historical data behind it.

Login is HTTP Basic with $WATTTIME_USERNAME / $WATTTIME_PASSWORD to get a bearer token, which lasts about 30
minutes: it is renewed before then and whenever the API answers 401. Values come in lbs CO2/MWh and are
converted to g/kWh.
"""

from __future__ import annotations

import base64
import math
import time
from datetime import datetime, timezone
from typing import Any, Optional

from ...errors import SourceError
from ...secrets import remember
from ..traces import LBS_PER_MWH_TO_G_PER_KWH
from .base import HttpSource, register
from .http import HttpStatusError, as_number, expect, intensity_value, parse_time, shape_error, shown

USERNAME_ENV, PASSWORD_ENV = "WATTTIME_USERNAME", "WATTTIME_PASSWORD"
TOKEN_RENEW_AFTER = 25 * 60.0  # tokens last about 30 min; renew with a margin
MAX_FORECAST_HOURS = 72
UNIT_SCALE = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH}
DEFAULT_PERIOD, MAX_PERIOD = 300.0, 86400.0  # seconds a point holds: the API's 5 min; more than a day is garbage


def watttime_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat()


@register("watttime")
class WattTimeSource(HttpSource):
    def __init__(self, params, **options: Any) -> None:
        super().__init__(params, **options)
        username, password = self.credential(USERNAME_ENV), self.credential(PASSWORD_ENV)
        if not username or not password:
            raise SourceError(f"{self.name}: ${USERNAME_ENV} and ${PASSWORD_ENV} must both be set")
        pair = f"{username}:{password}"
        basic = base64.b64encode(pair.encode("ascii")).decode("ascii")
        remember(pair, basic)  # a server may echo either back, not just the two halves
        self.login_header = {"Authorization": f"Basic {basic}"}
        self.token: Optional[str] = None
        self.token_at = 0.0

    def login(self) -> str:
        body = expect(self.http.get("login", headers=self.login_header), dict, self.name, "the login response")
        self.token = expect(body.get("token"), str, self.name, "login token")
        remember(self.token)
        if not (self.token.isascii() and self.token.isprintable()):
            raise shape_error(self.name, "the login token holds characters no HTTP header can carry")
        self.token_at = time.monotonic()
        return self.token

    def authorized(self, path: str, query: dict[str, Any]) -> Any:
        """GET with the bearer token: log in first if it is missing or old, and once more if it was refused."""
        if self.token is None or time.monotonic() - self.token_at > TOKEN_RENEW_AFTER:
            self.login()
        try:
            return self.http.get(path, params=query, headers={"Authorization": f"Bearer {self.token}"})
        except HttpStatusError as exc:
            if exc.status != 401:
                raise
        return self.http.get(path, params=query, headers={"Authorization": f"Bearer {self.login()}"})

    def signal(self, path: str, query: dict[str, Any]) -> tuple[list[dict], dict]:
        body = expect(
            self.authorized(path, {"region": self.settings.region, "signal_type": self.settings.signal_type, **query}),
            dict,
            self.name,
            "the response",
        )
        data = expect(body.get("data"), list, self.name, "data")
        meta = expect(body.get("meta"), dict, self.name, "meta")
        return [expect(point, dict, self.name, f"data[{i}]") for i, point in enumerate(data)], meta

    def series(self, start: float, end: float):
        hours = min(MAX_FORECAST_HOURS, max(0, math.ceil((end - start) / 3600)))
        ahead, meta = self.signal("v3/forecast", {"horizon_hours": hours})
        scale, step = self.unit_scale(meta), self.period(meta)
        points: list[tuple[bool, float, dict]] = []
        first_ahead = min(
            (parse_time(p.get("point_time"), self.name, "data[].point_time") for p in ahead), default=None
        )
        if first_ahead is None or first_ahead > start:
            until = end if first_ahead is None else min(end, first_ahead)
            behind, behind_meta = self.signal(
                "v3/historical", {"start": watttime_time(start - step), "end": watttime_time(until)}
            )
            points = [(False, self.unit_scale(behind_meta), p) for p in behind]
        points += [(True, scale, p) for p in ahead]
        times, values, forecast = [], [], []
        for i, (is_forecast, factor, point) in enumerate(points):
            times.append(parse_time(point.get("point_time"), self.name, f"data[{i}].point_time"))
            values.append(intensity_value(point.get("value"), self.name, f"data[{i}].value", factor))
            forecast.append(is_forecast)
        notes = [
            f"WattTime {self.settings.signal_type}: the marginal emissions rate of the next kWh, not the grid average"
        ]
        warnings = expect(meta.get("warnings") or [], list, self.name, "meta.warnings")
        notes += [f"WattTime warning: {w.get('message')}" for w in warnings if isinstance(w, dict)]
        return self.assemble(times, values, forecast, step, start, end, tuple(notes))

    def period(self, meta: dict) -> float:
        """Seconds each point holds (the API's default 300 when it does not say)."""
        given = meta.get("data_point_period_seconds")
        seconds = DEFAULT_PERIOD if given is None else as_number(given)
        if seconds is None or not 0 < seconds <= MAX_PERIOD:
            raise shape_error(
                self.name,
                f"meta.data_point_period_seconds is {shown(given)}, "
                f"not a period in seconds (over 0, up to {MAX_PERIOD:g})",
            )
        return seconds

    def unit_scale(self, meta: dict) -> float:
        units = meta.get("units")
        if units not in UNIT_SCALE:
            raise shape_error(self.name, f"meta.units is {units!r}, expected one of {', '.join(UNIT_SCALE)}")
        return UNIT_SCALE[units]

    def details(self) -> dict[str, Any]:
        """WattTime's signal index: where the current rate sits among recent ones, as a percentile (0-100)."""
        try:
            data, _ = self.signal("v3/signal-index", {})
            point = data[0]
            percentile = as_number(point.get("value"))
            if percentile is None or not 0 <= percentile <= 100:
                raise shape_error(
                    self.name, f"data[0].value is {shown(point.get('value'))}, not a percentile (0 to 100)"
                )
            return {"signal_index_percentile": percentile, "signal_index_time": point.get("point_time")}
        except (SourceError, IndexError) as exc:
            return {"signal_index_error": str(exc) or "empty data"}
