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
from .http import HttpStatusError, expect, intensity_value, parse_time, shape_error

USERNAME_ENV, PASSWORD_ENV = "WATTTIME_USERNAME", "WATTTIME_PASSWORD"
TOKEN_RENEW_AFTER = 25 * 60.0  # tokens last about 30 min; renew with a margin
MAX_FORECAST_HOURS = 72
UNIT_SCALE = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH}


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
        scale, step = self.unit_scale(meta), float(meta.get("data_point_period_seconds") or 300)
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
        notes += [f"WattTime warning: {w.get('message')}" for w in meta.get("warnings") or [] if isinstance(w, dict)]
        return self.assemble(times, values, forecast, step, start, end, tuple(notes))

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
            return {
                "signal_index_percentile": float(expect(point.get("value"), (int, float), self.name, "data[0].value")),
                "signal_index_time": point.get("point_time"),
            }
        except (SourceError, IndexError) as exc:
            return {"signal_index_error": str(exc) or "empty data"}
