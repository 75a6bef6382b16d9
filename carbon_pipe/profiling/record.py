"""The profile a training run carries: the paired energy profile, where it sat on the run's clock, and what it chose.

One writer (the train-optimized stage: in the run's resume folder while the run is unfinished, so a resumed run
does not profile again, then `stages/train-optimized/profile.json`) and one reader (`RunProfile.read`), which
compare uses too. The figures are rebuilt from the burst table on reading (`EnergyProfile.from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..artifacts import read_json, write_json
from ..errors import ArtifactError
from ..timeutil import iso, parse_instant
from . import statistics
from .result import EnergyProfile, Interval, describe

BASELINE = "baseline"


@dataclass(frozen=True)
class RunProfile:
    segment: int  # the run's segment that measured it (its energy is that segment's, phase `profile`)
    clock_start: float
    clock_end: float
    trained: str  # the profiled configuration the run trains: optimized, or (auto) the chosen candidate
    profile: EnergyProfile
    choice: Optional[dict] = None  # auto: the budget, the candidates' table and why (profiling/candidates.py)
    discarded_stale_checkpoint: bool = False  # claiming the resume folder for the profile threw stale state away

    @property
    def ratio(self) -> Interval:
        """The trained configuration's energy per sample over the baseline's (1 exactly when it is the baseline)."""
        ratio = self.profile.configuration(self.trained).ratio
        return Interval(1.0, 1.0, 1.0) if ratio is None else ratio

    @property
    def verdict(self) -> str:
        return statistics.verdict(self.ratio.low, self.ratio.high)

    def verdict_text(self) -> str:
        """The verdict in words with its interval and how it was measured, e.g. 'the optimized configuration against
        the baseline, energy per sample: no measurable difference: within -4.1 % / +6.3 % (95 % sequential interval
        over 4 fresh processes x 2 rounds; stopped: budget spent)'. No signed point effect where nothing is known."""
        if self.trained == BASELINE:
            return "auto chose the baseline's own configuration: no configuration effect (ratio 1 by construction)"
        which = "the optimized configuration" + (f" ({self.trained}, chosen by auto)" if self.choice else "")
        profile = self.profile
        how = (
            f"95 % sequential interval over {profile.processes} fresh processes x {profile.rounds} rounds; "
            f"stopped: {profile.stopping.reason}"
        )
        return f"{which} against the baseline, energy per sample: {describe(self.ratio)} ({how})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "clock_start": iso(self.clock_start),
            "clock_end": iso(self.clock_end),
            "trained": self.trained,
            "ratio": self.ratio.value,
            "ratio_ci95": self.ratio.bounds,
            "verdict": self.verdict,
            "verdict_text": self.verdict_text(),
            "choice": self.choice,
            "discarded_stale_checkpoint": self.discarded_stale_checkpoint,
            "profile": self.profile.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunProfile:
        return cls(
            segment=int(data["segment"]),
            clock_start=parse_instant(data["clock_start"]),
            clock_end=parse_instant(data["clock_end"]),
            trained=data["trained"],
            profile=EnergyProfile.from_dict(data["profile"]),
            choice=data.get("choice"),
            discarded_stale_checkpoint=bool(data.get("discarded_stale_checkpoint", False)),
        )

    def write(self, path: Path) -> None:
        write_json(path, self.as_dict())

    @classmethod
    def read(cls, path: Path) -> RunProfile:
        data = read_json(path)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            raise ArtifactError(f"{path}: not a run's profile ({exc.__class__.__name__}: {exc})") from None
