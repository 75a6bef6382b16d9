"""The profile's statistics on synthetic bursts with a known ratio: interval coverage, drift, verdicts,
re-derivation."""

import json

import numpy as np
import pytest

from carbon_pipe.profiling import statistics
from carbon_pipe.profiling.measure import burst_order
from carbon_pipe.profiling.record import RunProfile
from carbon_pipe.profiling.result import Burst, EnergyProfile, summarize
from carbon_pipe.report.sections import grams_interval


def synthetic_rounds(ratio: float, rounds: int, seeds: int, noise: float = 0.05, drift: float = 0.3, seed: int = 0):
    """Joules per sample of baseline and candidate in each round: a factor shared by the round (the machine's load
    then, strong) times each burst's own noise; the candidate costs `ratio` times the baseline on the same machine."""
    rng = np.random.default_rng(seed)
    shared = np.exp(rng.normal(0, drift, (seeds, rounds)))
    baseline = 5e-3 * shared * (1 + rng.normal(0, noise, (seeds, rounds)))
    candidate = ratio * 5e-3 * shared * (1 + rng.normal(0, noise, (seeds, rounds)))
    return candidate, baseline


def bursts_from(per_round: dict[str, list[float]], order=burst_order, samples: int = 64) -> list[Burst]:
    """A burst table: each configuration's joules per sample per measured round, in the profile's burst order."""
    names = list(per_round)
    bursts = [Burst(-1, i, name, 1, samples, 0.1, 1.0) for i, name in enumerate(names)]  # a warm-up round
    for r in range(len(per_round[names[0]])):
        for position, name in enumerate(order(names, r)):
            value = per_round[name][r]
            bursts.append(Burst(r, position, name, 4, samples, 0.02 * value / 5e-3, value * samples))
    return bursts


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
    (0.97, 0.3, statistics.NO_DIFFERENCE),  # 3 % less, under 30 % noise per burst: not measurable in 10 rounds
])
def test_verdicts_of_clear_cases(ratio, noise, expected):
    candidate, baseline = synthetic_rounds(ratio, 10, seeds=1, noise=noise, seed=7)
    profile = summarize(
        bursts_from({"baseline": baseline[0], "optimized": candidate[0]}),
        "baseline", {"baseline": "fp32", "optimized": "bf16"}, "test",
    )
    assert profile.configuration("optimized").verdict == expected


def test_abba_order_cancels_a_linear_drift_that_ab_order_does_not():
    """Every burst costs 1 % more than the one before (the machine warming): ABBA still finds the true ratio exactly."""
    def drifting(order):
        bursts, index = [], 0
        for r in range(10):
            for position, name in enumerate(order(["baseline", "optimized"], r)):
                value = (0.8 if name == "optimized" else 1.0) * 5e-3 * (1 + 0.01 * index)
                bursts.append(Burst(r, position, name, 4, 64, 0.02, value * 64))
                index += 1
        return summarize(bursts, "baseline", {"baseline": "fp32", "optimized": "bf16"}, "test")

    assert drifting(burst_order).configuration("optimized").ratio.value == pytest.approx(0.8, rel=1e-12)
    same_order = drifting(lambda names, r: list(names)).configuration("optimized").ratio.value
    assert abs(same_order - 0.8) > 1e-3


def test_every_figure_is_the_burst_table_summarised():
    candidate, baseline = synthetic_rounds(0.8, 10, seeds=1)
    slower, _ = synthetic_rounds(1.2, 10, seeds=1, seed=5)
    per_round = {"baseline": baseline[0], "optimized": candidate[0], "other": slower[0]}
    profile = summarize(bursts_from(per_round), "baseline", {n: "fp32" for n in per_round}, "test")
    optimized = profile.configuration("optimized")
    assert optimized.ratio.value == pytest.approx(
        optimized.j_per_sample.value / profile.configuration("baseline").j_per_sample.value
    )
    assert optimized.ratio.value == pytest.approx(candidate[0].mean() / baseline[0].mean())
    assert [float(x) for x in statistics.ratio_interval(slower[0], baseline[0])] == pytest.approx(
        [
            profile.configuration("other").ratio.value,
            profile.configuration("other").ratio.low,
            profile.configuration("other").ratio.high,
        ]
    )
    assert profile.configuration("baseline").ratio is None
    assert (profile.rounds, profile.warmup_rounds) == (10, 1)
    assert profile.profiling_energy_kwh == pytest.approx(sum(b.joules for b in profile.bursts) / 3.6e6)
    assert EnergyProfile.from_dict(profile.as_dict()) == profile
    assert [b.configuration for b in profile.bursts if b.round in (0, 1)] == ["baseline", "optimized", "other"] + [
        "other",
        "optimized",
        "baseline",
    ]


def test_an_unbounded_ratio_is_written_as_null_and_read_back():
    """A baseline whose counter barely moved against its noise (a CodeCarbon model estimate under load) leaves the
    ratio's interval unbounded; the profile record, the run's summary and comparison.json hold it as null (JSON has
    no infinity) instead of failing the run, and the verdict is no measurable difference."""
    baseline = [1e-6] * 8 + [2.5e-2, 2.5e-2]  # its spread twice its mean: the counter moved in two bursts of ten
    optimized = [5e-3] * 10
    profile = summarize(bursts_from({"baseline": baseline, "optimized": optimized}), "baseline",
                        {"baseline": "fp32", "optimized": "bf16"}, "model")
    ratio = profile.configuration("optimized").ratio
    assert ratio.low == -np.inf and ratio.high == np.inf and ratio.bounds == [None, None]
    record = RunProfile(0, 0.0, 1.0, "optimized", profile)
    written = json.dumps(record.as_dict(), allow_nan=False)
    assert json.loads(written)["ratio_ci95"] == [None, None]
    back = RunProfile.from_dict(json.loads(written))
    assert back.verdict == statistics.NO_DIFFERENCE and back.ratio.bounds == [None, None]
    assert grams_interval(1e-3, [None, None]) == "1 [-inf, +inf]"
