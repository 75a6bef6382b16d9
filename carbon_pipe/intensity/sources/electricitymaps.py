"""Electricity Maps v3 (api.electricitymap.org): the forecast ahead, history / past-range / latest behind.

Auth is the `auth-token` header, from $ELECTRICITYMAPS_API_TOKEN only. Points are hourly (`resolution`).
"""

from __future__ import annotations

from typing import Any

from ...errors import SourceError
from ...timeutil import iso
from .base import HttpSource, register
from .http import expect, intensity_value, parse_time

TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"
HISTORY_SPAN = 24 * 3600.0  # what `/history` returns; anything older comes from `/past-range`


@register("electricitymaps")
class ElectricityMapsSource(HttpSource):
    def headers(self) -> dict[str, str]:
        token = self.credential(TOKEN_ENV)
        if not token:
            raise SourceError(f"{self.name}: ${TOKEN_ENV} is not set (the API needs a token)")
        return {"auth-token": token}

    def series(self, start: float, end: float):
        zone = {"zone": self.settings.zone}
        ahead = self.entries(self.http.get("carbon-intensity/forecast", params=zone), "forecast")
        behind: list[dict] = []
        behind_key = "history"
        first_ahead = min(
            (parse_time(e.get("datetime"), self.name, "forecast[].datetime") for e in ahead), default=None
        )
        if first_ahead is None or first_ahead > start:
            # Actuals for the part before the forecast; listed first, so they win where both have an hour.
            until = min(end, first_ahead) if first_ahead is not None else end
            if first_ahead is not None and first_ahead - start <= HISTORY_SPAN:
                behind = self.entries(self.http.get("carbon-intensity/history", params=zone), "history")
                behind.append(expect(self.http.get("carbon-intensity/latest", params=zone), dict, self.name, "latest"))
            else:
                window = {**zone, "start": iso(start - self.settings.resolution), "end": iso(until)}
                behind, behind_key = (
                    self.entries(self.http.get("carbon-intensity/past-range", params=window), "data"),
                    "data",
                )
        times, values, forecast = [], [], []
        for is_forecast, entries, key in ((False, behind, behind_key), (True, ahead, "forecast")):
            for i, entry in enumerate(entries):
                times.append(parse_time(entry.get("datetime"), self.name, f"{key}[{i}].datetime"))
                values.append(intensity_value(entry.get("carbonIntensity"), self.name, f"{key}[{i}].carbonIntensity"))
                forecast.append(is_forecast)
        estimated = sum(1 for entry in behind if entry.get("isEstimated"))
        notes = (f"{estimated} past hours are Electricity Maps estimates",) if estimated else ()
        return self.assemble(times, values, forecast, self.settings.resolution, start, end, notes)

    def entries(self, payload: Any, key: str) -> list[dict]:
        body = expect(payload, dict, self.name, "the response")
        entries = expect(body.get(key), list, self.name, key)
        return [expect(entry, dict, self.name, f"{key}[{i}]") for i, entry in enumerate(entries)]
