"""The profile's statistics on synthetic bursts with a known ratio: interval coverage, drift, verdicts,
re-derivation, the sequential stop's corrected coverage, and the stage-wise interval reported where it stops."""

import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from carbon_pipe.profiling import statistics
from carbon_pipe.profiling.record import ProfileRecord, RunProfile, read_run_profile, write_run_profile
from carbon_pipe.profiling.result import Burst, EnergyProfile, Stopping, describe, look_intervals, summarize
from carbon_pipe.profiling.worker import burst_order
from carbon_pipe.report.sections import grams_interval

from ..conftest import REPO


def synthetic_rounds(ratio: float, rounds: int, seeds: int, noise: float = 0.05, drift: float = 0.3, seed: int = 0):
    """Joules per sample of baseline and candidate in each round: a factor shared by the round (the machine's load
    then, strong) times each burst's own noise; the candidate costs `ratio` times the baseline on the same machine."""
    rng = np.random.default_rng(seed)
    shared = np.exp(rng.normal(0, drift, (seeds, rounds)))
    baseline = 5e-3 * shared * (1 + rng.normal(0, noise, (seeds, rounds)))
    candidate = ratio * 5e-3 * shared * (1 + rng.normal(0, noise, (seeds, rounds)))
    return candidate, baseline


STOPPING = Stopping(planned_processes=6, settle_within=0.05, reason="settled")


def bursts_from(per_process: dict[str, list[float]], samples: int = 64) -> list[Burst]:
    """A burst table: each configuration's joules per sample in each worker process (the same in both of its two
    measured rounds), after a warm-up round, in the profile's burst order."""
    names = list(per_process)
    bursts = []
    for process in range(len(per_process[names[0]])):
        bursts += [Burst(-1, i, name, 1, samples, 0.1, 1.0, process) for i, name in enumerate(names)]
        for r in range(2):
            for position, name in enumerate(burst_order(names, r)):
                value = per_process[name][process]
                bursts.append(Burst(r, position, name, 4, samples, 0.02 * value / 5e-3, value * samples, process))
    return bursts


def summarized(per_process: dict[str, list[float]], stopping: Stopping = STOPPING) -> EnergyProfile:
    return summarize(bursts_from(per_process), "baseline", {name: "fp32" for name in per_process}, "test", stopping)


@pytest.mark.parametrize("df, exact", [(3, 3.1824), (4, 2.7764), (9, 2.2622), (19, 2.0930), (100, 1.9840)])
def test_t_quantile_matches_the_table(df, exact):
    assert abs(float(statistics.t_quantile(0.975, df)) - exact) < 0.004


@pytest.mark.parametrize("rounds", [4, 10, 30])
def test_the_ratio_interval_covers_the_true_ratio_95_percent_of_the_time(rounds):
    candidate, baseline = synthetic_rounds(0.8, rounds, seeds=200, seed=rounds)
    estimate, low, high = statistics.ratio_interval(candidate, baseline)
    coverage = np.mean((low <= 0.8) & (0.8 <= high))
    assert 0.90 <= coverage <= 0.99, coverage
    assert np.all((low <= estimate) & (estimate <= high))


def test_pairing_is_what_makes_the_interval_narrow():
    """The rounds' shared factor cancels out of a paired ratio; unpaired, the interval would be several times wider."""
    candidate, baseline = synthetic_rounds(0.8, 10, seeds=200)
    _, low, high = statistics.ratio_interval(candidate, baseline)
    shuffled = np.random.default_rng(1).permuted(baseline, axis=-1)  # same values, pairs broken
    _, low_unpaired, high_unpaired = statistics.ratio_interval(candidate, shuffled)
    assert np.median(high_unpaired - low_unpaired) > 3 * np.median(high - low)


def test_the_mean_interval_covers_the_true_mean():
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 0.5, (200, 10))
    _, low, high = statistics.mean_interval(values)
    assert 0.90 <= np.mean((low <= 2.0) & (2.0 <= high)) <= 0.99


def test_an_interval_of_identical_rounds_is_the_point_and_a_noisy_zero_denominator_is_unbounded():
    estimate, low, high = statistics.ratio_interval(np.full(6, 2.0), np.full(6, 4.0))
    assert estimate == low == high == 0.5
    _, low, high = statistics.ratio_interval(np.array([1.0, 1, 1, 1]), np.array([1.0, -0.9, 1, -0.9]))
    assert (low, high) == (-np.inf, np.inf)


@pytest.mark.parametrize("ratio, noise, expected", [
    (0.7, 0.05, statistics.LESS), (1.3, 0.05, statistics.MORE), (1.0, 0.05, statistics.NO_DIFFERENCE),
    (0.97, 0.3, statistics.NO_DIFFERENCE),  # 3 % less, under 30 % noise per process: not measurable in 6
])
def test_verdicts_of_clear_cases(ratio, noise, expected):
    candidate, baseline = synthetic_rounds(ratio, 6, seeds=1, noise=noise, seed=7)
    profile = summarized({"baseline": baseline[0], "optimized": candidate[0]})
    assert profile.configuration("optimized").verdict == expected


def test_abba_order_cancels_a_linear_drift_that_ab_order_does_not():
    """Every burst costs 1 % more than the one before (the machine warming): ABBA still finds the true ratio exactly."""
    def drifting(order):
        bursts, index = [], 0
        for process in range(3):
            for r in range(4):
                for position, name in enumerate(order(["baseline", "optimized"], r)):
                    value = (0.8 if name == "optimized" else 1.0) * 5e-3 * (1 + 0.01 * index)
                    bursts.append(Burst(r, position, name, 4, 64, 0.02, value * 64, process))
                    index += 1
        return summarize(bursts, "baseline", {"baseline": "fp32", "optimized": "bf16"}, "test", STOPPING)

    assert drifting(burst_order).configuration("optimized").ratio.value == pytest.approx(0.8, rel=1e-12)
    same_order = drifting(lambda names, r: list(names)).configuration("optimized").ratio.value
    assert abs(same_order - 0.8) > 1e-3


def test_every_figure_is_the_burst_table_summarised():
    candidate, baseline = synthetic_rounds(0.8, 5, seeds=1)
    slower, _ = synthetic_rounds(1.2, 5, seeds=1, seed=5)
    profile = summarized({"baseline": baseline[0], "optimized": candidate[0], "other": slower[0]})
    optimized = profile.configuration("optimized")
    assert optimized.ratio.value == pytest.approx(
        optimized.j_per_sample.value / profile.configuration("baseline").j_per_sample.value
    )
    assert optimized.ratio.value == pytest.approx(candidate[0].mean() / baseline[0].mean())
    at_stop = statistics.interval_at_stop(slower[0], baseline[0], statistics.FIRST_LOOK, 6, STOPPING.settle_within)
    assert list(at_stop) == pytest.approx(
        [
            profile.configuration("other").ratio.value,
            profile.configuration("other").ratio.low,
            profile.configuration("other").ratio.high,
        ]
    )
    assert profile.configuration("baseline").ratio is None
    assert (profile.processes, profile.rounds, profile.warmup_rounds) == (5, 2, 1)
    assert profile.profiling_energy_kwh == pytest.approx(sum(b.joules for b in profile.bursts) / 3.6e6)
    assert ProfileRecord.model_validate(json.loads(json.dumps(profile.as_dict()))).energy_profile() == profile
    assert [b.configuration for b in profile.bursts if b.round in (0, 1) and b.process == 0] == [
        "baseline", "optimized", "other", "other", "optimized", "baseline",
    ]


def test_an_unbounded_ratio_is_written_as_null_and_read_back(tmp_path):
    """A baseline whose counter barely moved against its noise (a CodeCarbon model estimate under load) leaves the
    ratio's interval unbounded; the profile record, the run's summary and comparison.json hold it as null (JSON has
    no infinity) instead of failing the run, and the verdict is no measurable difference."""
    baseline = [1e-6] * 8 + [2.5e-2, 2.5e-2]  # its spread twice its mean: the counter moved in two processes of ten
    optimized = [5e-3] * 10
    profile = summarized({"baseline": baseline, "optimized": optimized})
    ratio = profile.configuration("optimized").ratio
    assert ratio.low == -np.inf and ratio.high == np.inf and ratio.bounds == [None, None]
    write_run_profile(tmp_path / "profile.json", RunProfile((0,), 0.0, 1.0, "optimized", profile))
    assert json.loads((tmp_path / "profile.json").read_text())["ratio_ci95"] == [None, None]
    back = read_run_profile(tmp_path / "profile.json")
    assert back.verdict == statistics.NO_DIFFERENCE and back.ratio.bounds == [None, None]
    assert grams_interval(1e-3, [None, None]) == "1 [-inf, +inf]"


@pytest.mark.parametrize("spent, says", [(30.2, "spent 30 J of its 36 J budget)"),
                                          (54.2, "spent 54 J, over its 36 J budget)")])
def test_the_verdict_says_what_the_profile_spent_against_its_budget(spent, says):
    """An overrun (the first look's three processes run whatever they cost) is said as plainly as a budget kept."""
    stopping = Stopping(planned_processes=3, settle_within=0.05, reason="settled", budget_joules=35.9,
                        spent_joules=spent)
    profile = summarized({"baseline": [1.0, 1.01, 0.99], "optimized": [1.3, 1.32, 1.29]}, stopping)
    text = RunProfile((0,), 0.0, 1.0, "optimized", profile).verdict_text()
    assert text.endswith(f"over 3 fresh processes x 2 rounds; stopped: settled; {says}")


@pytest.mark.parametrize("change, says", [
    (lambda record: record["profile"]["bursts"][0].update(samples="many"), "bursts.0.samples is 'many', not a whole"),
    (lambda record: record.update(trained="fastest"), "trained 'fastest' or baseline 'baseline' is not one it"),
    (lambda record: record["profile"].update(bursts=[]), "its bursts make no profile"),
    (lambda record: record.update(clock_start=0), "clock_start is 0, not a time"),
    (lambda record: record["profile"]["stopping"].update(reason="under way", planned_processes=4),
     "under way with 4 of its 4 planned processes run"),
])
def test_a_damaged_profile_record_is_one_line_naming_it(tmp_path, change, says):
    from carbon_pipe.errors import ArtifactError

    path = tmp_path / "profile.json"
    write_run_profile(path, RunProfile((0,), 0.0, 1.0, "optimized", summarized({"baseline": [1.0] * 4,
                                                                             "optimized": [0.9] * 4})))
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ArtifactError) as raised:
        read_run_profile(path)
    assert str(raised.value).startswith(f"{path}: not a run's profile train wrote (") and says in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1


@pytest.mark.parametrize("looks, constant", [((1,), 1.960), ((1, 2), 2.178), ((1, 2, 3, 4, 5), 2.413),
                                              (tuple(range(1, 11)), 2.555)])
def test_the_pocock_constant_matches_the_published_table(looks, constant):
    """Pocock (1977) / Jennison & Turnbull table 2.1, two-sided 5 %, equally spaced looks."""
    assert statistics.pocock_constant(looks) == pytest.approx(constant, abs=0.002)


def test_more_looks_widen_each_interval_and_the_settling_rule():
    assert statistics.sequential_level(3, 3) == pytest.approx(0.95, abs=1e-3)
    assert 0.95 < statistics.sequential_level(3, 6) < statistics.sequential_level(3, 12) < 0.995
    assert statistics.settled(0.80, 0.95, 0.05) and statistics.settled(1.02, 1.3, 0.05)
    assert statistics.settled(0.97, 1.04, 0.05) and not statistics.settled(0.9, 1.04, 0.05)


def sequential_experiments(ratio: float, planned: int, seeds: int, corrected: bool, seed: int) -> float:
    """Coverage of the interval where the profile stops, over `seeds` synthetic profiles of per-process figures."""
    rng = np.random.default_rng(seed)
    shared = np.exp(rng.normal(0, 0.1, (seeds, planned)))
    baseline = shared * (1 + rng.normal(0, 0.03, (seeds, planned)))
    candidate = ratio * shared * (1 + rng.normal(0, 0.03, (seeds, planned)))
    level = statistics.sequential_level(statistics.FIRST_LOOK, planned) if corrected else statistics.LEVEL
    covered = 0
    for index in range(seeds):
        for processes in range(statistics.FIRST_LOOK, planned + 1):
            _, low, high = statistics.ratio_interval(candidate[index, :processes], baseline[index, :processes], level)
            if statistics.stop_reason(processes, planned, [(low, high)], 0.05, 0.0, 0.0, 1.0):
                break
        covered += low <= ratio <= high
    return covered / seeds


@pytest.mark.slow
def test_the_sequential_stop_keeps_its_coverage_where_naive_peeking_loses_it():
    """Looking after every process and stopping once settled: the corrected interval still holds the true ratio about
    95 % of the time; an uncorrected 95 % interval, looked at as often, holds it less often."""
    corrected = sequential_experiments(1.0, 8, 400, corrected=True, seed=11)
    naive = sequential_experiments(1.0, 8, 400, corrected=False, seed=11)
    assert 0.92 <= corrected <= 0.99, corrected
    assert naive < corrected - 0.02, (naive, corrected)


def test_the_stop_reasons():
    settled, wide = [(0.8, 0.9)], [(0.7, 1.3)]
    assert statistics.stop_reason(2, 6, settled, 0.05, 1.0, 1.0, 100.0) is None  # before the first look
    assert statistics.stop_reason(3, 6, settled, 0.05, 1.0, 1.0, 100.0) == statistics.SETTLED
    assert statistics.stop_reason(3, 6, wide, 0.05, 30.0, 10.0, 100.0) is None  # a fourth at 10 J fits in 100 J
    assert statistics.stop_reason(3, 6, wide, 0.05, 90.0, 30.0, 100.0) == statistics.BUDGET  # a fourth would overrun
    assert statistics.stop_reason(2, 6, wide, 0.05, 90.0, 30.0, 100.0) is None  # the first look's run anyway
    assert statistics.stop_reason(6, 6, wide, 0.05, 1.0, 1.0, 100.0) == statistics.PLANNED
    # 75 J over three processes, the costliest 27 J: a fourth priced at the mean (25 J) would fit, at 27 J it would not
    assert statistics.stop_reason(3, 6, wide, 0.05, 75.0, 27.0, 101.0) == statistics.BUDGET


def test_the_planned_processes_are_those_the_budget_pays_for_at_the_first_ones_cost():
    assert statistics.affordable_processes(6, 32.0, 110.0) == 3  # three and a bit: looks at four would never come
    assert statistics.affordable_processes(6, 20.0, 110.0) == 5
    assert statistics.affordable_processes(6, 5.0, 110.0) == 6  # never more than the params allow
    assert statistics.affordable_processes(6, 60.0, 110.0) == statistics.FIRST_LOOK  # the first look's run anyway
    assert statistics.affordable_processes(6, 0.0, 110.0) == 6  # nothing measured to go by


def test_what_a_verdict_says_in_words():
    """No measurable difference is said as the interval in %, with no signed point effect; a verdict with its
    ratio and interval."""
    from carbon_pipe.profiling.result import Interval

    assert describe(Interval(0.99, 0.958, 1.063)) == "no measurable difference: within -4.2 % / +6.3 %"
    assert describe(Interval(0.83, 0.76, 0.92)) == "less: ratio 0.830 [95 % interval 0.760, 0.920]"
    assert "unbounded" in describe(Interval(0.9, -np.inf, np.inf))


def stopped_profile(ratio: float, planned: int, seed: int, between: float = 0.1, settle: float = 0.05):
    """Per-process figures of one synthetic profile, cut where the profile's own stop rule stops it."""
    rng = np.random.default_rng(seed)
    shared = np.exp(rng.normal(0, between, planned))
    baseline = shared * (1 + rng.normal(0, 0.03, planned))
    candidate = ratio * shared * (1 + rng.normal(0, 0.03, planned))
    level = statistics.sequential_level(statistics.FIRST_LOOK, planned)
    for processes in range(statistics.FIRST_LOOK, planned + 1):
        _, low, high = statistics.ratio_interval(candidate[:processes], baseline[:processes], level)
        if statistics.stop_reason(processes, planned, [(low, high)], settle, 0.0, 0.0, 1.0):
            return candidate[:processes], baseline[:processes], (float(low), float(high))
    raise AssertionError("the last planned process stops the profile")


def test_the_stop_rule_still_looks_at_the_repeated_interval():
    """What decides the stop is unchanged: each look's interval at the nominal level of Pocock's boundary."""
    candidate, baseline = synthetic_rounds(1.1, 5, seeds=1, seed=3)
    bursts = bursts_from({"baseline": baseline[0], "optimized": candidate[0]})
    level = statistics.sequential_level(statistics.FIRST_LOOK, 6)
    (look,) = look_intervals(bursts, ["baseline", "optimized"], 6)
    assert [look.value, look.low, look.high] == pytest.approx(
        [float(v) for v in statistics.ratio_interval(candidate[0], baseline[0], level)]
    )


def test_a_stop_on_the_first_look_reports_the_fixed_sample_interval():
    """Nothing ranks above a first-look stop but first-look outcomes: the interval is Fieller's at 95 %, narrower
    than the repeated interval the stop looked at."""
    candidate, baseline, repeated = stopped_profile(0.8, planned=6, seed=1)
    assert len(candidate) == statistics.FIRST_LOOK
    profile = summarized({"baseline": list(baseline), "optimized": list(candidate)})
    ratio = profile.configuration("optimized").ratio
    fixed = [float(v) for v in statistics.ratio_interval(candidate, baseline)]
    assert [ratio.value, ratio.low, ratio.high] == pytest.approx(fixed, rel=1e-12)
    assert repeated[0] < ratio.low and ratio.high < repeated[1]
    assert profile.configuration("optimized").verdict == statistics.LESS


@pytest.mark.parametrize("ratio", [0.85, 0.95, 1.0, 1.05, 1.1, 1.2])
def test_the_interval_at_the_stop_agrees_with_the_verdict(ratio):
    """less: the whole interval below 1; more: above; no measurable difference: it holds 1. The verdict is the
    boundary crossing the stop rule saw, and a stop after the first look reports the stage-wise interval."""
    later = 0
    for seed in range(6):
        candidate, baseline, repeated = stopped_profile(ratio, planned=6, seed=seed, between=0.05)
        later += len(candidate) > statistics.FIRST_LOOK
        expected = statistics.verdict(*repeated)
        _, low, high = statistics.interval_at_stop(candidate, baseline, statistics.FIRST_LOOK, 6, 0.05)
        assert statistics.verdict(low, high) == expected, (seed, repeated, low, high)
        if expected == statistics.NO_DIFFERENCE:
            assert low <= 1 <= high
    assert later > 0  # the stage-wise part was exercised


def test_the_interval_at_the_stop_covers_the_true_ratio_about_95_percent():
    """A clear effect stops early, where the repeated interval was conservative; the stage-wise interval at the stop
    holds the true ratio in a band around 95 % (120 seeded profiles: the band is four binomial errors wide)."""
    covered = 0
    for seed in range(120):
        candidate, baseline, _ = stopped_profile(1.25, planned=8, seed=1000 + seed)
        _, low, high = statistics.interval_at_stop(candidate, baseline, statistics.FIRST_LOOK, 8, 0.05)
        covered += low <= 1.25 <= high
    assert 0.88 <= covered / 120 <= 0.995, covered


def test_re_analysing_a_written_profile_gives_the_same_interval(tmp_path):
    """The stage-wise interval's simulation is seeded: a profile written as JSON and rebuilt from its bursts (as
    profiles recorded by older code are) reports the same interval and verdict."""
    candidate, baseline, _ = stopped_profile(1.1, planned=6, seed=2, between=0.05)
    assert len(candidate) > statistics.FIRST_LOOK
    profile = summarized({"baseline": list(baseline), "optimized": list(candidate)})
    write_run_profile(tmp_path / "profile.json", RunProfile((0,), 0.0, 1.0, "optimized", profile))
    written = json.loads((tmp_path / "profile.json").read_text())
    back = read_run_profile(tmp_path / "profile.json")
    assert back.profile == profile
    assert back.ratio == profile.configuration("optimized").ratio
    assert written["profile"]["interval_method"] == statistics.SEQUENTIAL_METHOD


def run_script_here(script: Path, *args: str, monkeypatch, capsys) -> str:
    """A benchmark script run in this process (its own imports are already loaded here); what it prints."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts its folder first: undone after the test
    monkeypatch.delitem(sys.modules, "common", raising=False)
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.modules.pop("common", None)  # benchmarks/common.py, not a module the tests know
    return capsys.readouterr().out


def test_the_verdict_checks_re_analyse_saved_profiles_from_their_bursts(tmp_path, monkeypatch, capsys):
    """--from-saved recomputes each saved profile's ratio, interval and verdict from its bursts with this code (a
    verdict saved by other code is not trusted) and prints the A/A and budget lines, profiling nothing."""
    from carbon_pipe.profiling.render import flat_summary

    stopping = Stopping(6, 0.05, statistics.BUDGET, budget_joules=100.0, spent_joules=4.0)
    same = [5e-3 * factor for factor in (1.0, 1.1, 0.95, 1.05)]
    again = [value * noise for value, noise in zip(same, (1.02, 0.99, 1.0, 0.985))]
    profile = summarized({"baseline": same, "baseline-again": again}, stopping)
    assert profile.configuration("baseline-again").verdict == statistics.NO_DIFFERENCE
    run = {**flat_summary(profile, "baseline-again"), "command_seconds": 12.0, "section": "aa", "where": "quiet"}
    saved = tmp_path / "profiles.jsonl"
    saved.write_text(json.dumps({**run, "verdict": "more", "ratio_ci95": [1.5, 2.0]}) + "\n")
    output = run_script_here(REPO / "benchmarks" / "verdict_checks.py", "--from-saved", f"aa={saved}",
                             "--aa-where", "quiet", monkeypatch=monkeypatch, capsys=capsys)
    low, high = profile.configuration("baseline-again").ratio.bounds
    assert f"   1: ratio {run['ratio']:.3f} [{low}, {high}] no measurable difference; 4 processes, stopped: budget " \
           "spent; 12 s" in output
    assert "as the machine is: 1 of 1 (100.0 % +- 0.0) say no measurable difference" in output
    assert re.search(r"^median 0\.4 \(0\.4-0\.4, n=1\) % \(budget 10 %: 1 within\)", output, re.M)
