"""The clocks a wait runs on: the wall clock, or a simulated one whose "now" is a param and whose sleeps are instant."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from ..config.params import Params


class Clock(Protocol):
    simulated: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    simulated = False

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class SimulatedClock:
    """'Now' is a param; sleeping only moves the hands."""

    current: float
    simulated = True

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += seconds


def make_clock(params: Params) -> Clock:
    if params.scheduler.clock == "simulated":
        assert params.scheduler.now is not None  # guaranteed by parse_params
        return SimulatedClock(params.scheduler.now)
    return RealClock()
