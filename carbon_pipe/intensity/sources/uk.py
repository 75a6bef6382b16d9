"""UK Carbon Intensity API (NESO, api.carbonintensity.org.uk; no key): national or regional, half-hourly.

National slots carry a forecast and, once measured, an actual; where the actual is null (the future, or not yet
published) the forecast is used and the point is marked as a forecast. Regional data are forecasts only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .base import HttpSource, register
from .http import expect, intensity_value, parse_time, shape_error

FORECAST_SPAN = 48 * 3600.0  # what `/fw48h` returns; longer requests use `/{from}/{to}`


def uk_time(moment: float) -> str:
    """The API's path format, YYYY-MM-DDThh:mmZ (to the minute, rounded down)."""
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


@register("uk")
class UkSource(HttpSource):
    def series(self, start: float, end: float):
        window = "fw48h" if end - start <= FORECAST_SPAN else uk_time(end)
        region = self.settings.region
        if region == "national":
            slots = expect(self.payload_data(f"intensity/{uk_time(start)}/{window}"), list, self.name, "data")
            notes: list[str] = []
        else:
            kind = "regionid" if region.isdigit() else "postcode"
            slots, name = self.regional_slots(
                self.payload_data(f"regional/intensity/{uk_time(start)}/{window}/{kind}/{region}")
            )
            notes = [
                f"UK region {region} ({name}): regional figures are forecasts only "
                "(the API publishes no regional actuals)"
            ]
        times, ends, values, forecast = [], [], [], []
        for i, slot in enumerate(slots):
            slot = expect(slot, dict, self.name, f"data[{i}]")
            begins = parse_time(slot.get("from"), self.name, f"data[{i}].from")
            intensity = expect(slot.get("intensity"), dict, self.name, f"data[{i}].intensity")
            actual = intensity.get("actual")
            value = actual if actual is not None else intensity.get("forecast")
            times.append(begins)
            ends.append(parse_time(slot.get("to"), self.name, f"data[{i}].to"))
            values.append(
                intensity_value(
                    value, self.name, f"data[{i}].intensity.{'actual' if actual is not None else 'forecast'}"
                )
            )
            forecast.append(actual is None)
        if region == "national" and any(forecast):
            notes.append(f"{sum(forecast)} of {len(slots)} half-hours have no actual yet: their forecast is used")
        steps = [after - before for before, after in zip(times, ends)]
        if any(step <= 0 for step in steps):
            raise shape_error(self.name, "a slot ends before it starts")
        return self.assemble(times, values, forecast, steps, start, end, tuple(notes))

    def payload_data(self, path: str) -> Any:
        payload = expect(self.http.get(path), dict, self.name, "the response")
        if "data" not in payload:
            raise shape_error(self.name, f"no 'data' in the response (keys: {', '.join(payload) or 'none'})")
        return payload["data"]

    def regional_slots(self, data: Any) -> tuple[list, str]:
        """Slots of the configured region. `data` is one region object, a list holding one, or (the all-regions
        shape) a list of slots each listing every region."""
        if isinstance(data, list) and data and isinstance(data[0], dict) and "regions" in data[0]:
            return self.pick_from_all_regions(data)
        if isinstance(data, list):
            if not data:
                return [], self.settings.region
            data = data[0]
        region = expect(data, dict, self.name, "data")
        return expect(region.get("data"), list, self.name, "data.data"), str(
            region.get("shortname", self.settings.region)
        )

    def pick_from_all_regions(self, slots: list) -> tuple[list, str]:
        wanted = self.settings.region
        picked, name = [], wanted
        for i, slot in enumerate(slots):
            regions = expect(
                expect(slot, dict, self.name, f"data[{i}]").get("regions"), list, self.name, f"data[{i}].regions"
            )
            match = [r for r in regions if isinstance(r, dict) and str(r.get("regionid")) == wanted]
            if not match and len(regions) == 1 and not wanted.isdigit():
                match = regions  # a postcode query answers with its one region
            if not match:
                raise shape_error(self.name, f"region {wanted} is not in data[{i}].regions")
            name = str(match[0].get("shortname", wanted))
            picked.append({"from": slot.get("from"), "to": slot.get("to"), "intensity": match[0].get("intensity")})
        return picked, name
