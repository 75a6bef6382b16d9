"""The profile checked against known answers on this machine: A/A (the baseline against itself, which must say no
measurable difference) and sensitivity (against a twin doing a known extra amount of work per sample, which must
say more, its ratio near the work ratio). `carbon-pipe profile --check aa|sensitivity` runs them."""

from __future__ import annotations

from typing import Optional

from ..config.params import Params
from . import statistics
from .measure import run_profile
from .result import EnergyProfile, describe
from .worker import Twin

AA, SENSITIVITY = "aa", "sensitivity"
CHECKS = (AA, SENSITIVITY)
SAME, TWIN = "baseline-again", "twin"


def compared(check: Optional[str]) -> str:
    """The configuration the check compares with the baseline."""
    return {None: "optimized", AA: SAME, SENSITIVITY: TWIN}[check]


def run(params: Params, check: Optional[str]) -> EnergyProfile:
    """The ordinary profile, or one of the checks: the baseline's configuration twice, or beside its twin."""
    if check is None:
        return run_profile(params)
    runs = {"baseline": params.baseline, compared(check): params.baseline}
    return run_profile(params, runs, twin=twin_of(params) if check == SENSITIVITY else None)


def twin_of(params: Params) -> Twin:
    return Twin(TWIN, "baseline", params.profile.twin_extra_work_pct / 100)


def expectation(profile: EnergyProfile, check: Optional[str], params: Params) -> dict:
    """What the check expected and whether the profile said it."""
    if check is None:
        return {}
    ratio = profile.configuration(compared(check)).ratio
    verdict = statistics.verdict(ratio.low, ratio.high)
    if check == AA:
        return {"check": AA, "expected": statistics.NO_DIFFERENCE, "passed": verdict == statistics.NO_DIFFERENCE}
    expected_ratio = twin_of(params).work_ratio
    return {
        "check": SENSITIVITY, "expected": statistics.MORE, "passed": verdict == statistics.MORE,
        "work_ratio": expected_ratio, "ratio_over_work_ratio": ratio.value / expected_ratio,
    }


def expectation_text(profile: EnergyProfile, check: Optional[str], params: Params) -> str:
    if check is None:
        return ""
    outcome = expectation(profile, check, params)
    said = describe(profile.configuration(compared(check)).ratio)
    work = f" (work ratio {outcome['work_ratio']:.3f})" if "work_ratio" in outcome else ""
    return (
        f"\ncheck {check}: expected {outcome['expected']}{work}, got {said}: "
        + ("passed" if outcome["passed"] else "FAILED")
    )
