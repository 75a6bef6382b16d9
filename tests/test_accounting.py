import numpy as np
import pytest

from carbon_pipe.accounting import Decomposition, emissions_kg, interval_intensity, profile_emissions_kg, without_pauses
from carbon_pipe.series import IntensitySeries


def hourly(values) -> IntensitySeries:
    values = np.asarray(values, dtype=float)
    return IntensitySeries(3600.0 * np.arange(len(values) + 1), values, np.zeros(len(values), bool), "t", "x")


def test_interval_intensity_is_time_weighted_across_points():
    series = hourly([100, 300, 200])
    means = interval_intensity(series, np.array([0, 1800, 3600, 5000]), np.array([3600, 5400, 3600, 5001]))
    assert means.tolist() == pytest.approx([100, 200, 300, 300])


def test_profile_shift_moves_the_charge():
    series = hourly([400, 400, 100, 100])
    starts, ends, energy = np.array([0.0, 1800]), np.array([1800.0, 3600]), np.array([0.5, 0.5])
    assert profile_emissions_kg(series, starts, ends, energy) == pytest.approx(0.4)
    assert profile_emissions_kg(series, starts, ends, energy, shift=7200) == pytest.approx(0.1)
    assert emissions_kg(np.array([2.0]), np.array([250.0])).tolist() == [0.5]


@pytest.mark.parametrize("seed", range(5))
def test_decomposition_adds_up(seed):
    rng = np.random.default_rng(seed)
    series = hourly(rng.uniform(50, 500, 48))
    ends = np.cumsum(rng.uniform(1, 30, 40))
    starts = np.concatenate([[0.0], ends[:-1]])
    energy = rng.uniform(0, 1e-4, 40)
    optimized_start, baseline_start = 20 * 3600.0, 3 * 3600.0
    optimized_kg = profile_emissions_kg(series, starts + optimized_start, ends + optimized_start, energy)
    at_baseline = profile_emissions_kg(series, starts + optimized_start, ends + optimized_start, energy, baseline_start - optimized_start)
    split = Decomposition(baseline_kg=0.02, optimized_kg=optimized_kg, optimized_at_baseline_start_kg=at_baseline)
    assert split.schedule_effect_kg + split.configuration_effect_kg == pytest.approx(split.reduction_kg, rel=1e-12)
    assert split.reduction_kg == pytest.approx(0.02 - optimized_kg)


def test_without_pauses_puts_the_chunks_back_to_back():
    # Two chunks of two intervals each, an hour apart, listed out of order.
    starts, ends = np.array([3600.0 + 10, 0, 10, 3600]), np.array([3600.0 + 25, 10, 20, 3610])
    closed_starts, closed_ends = without_pauses(starts, ends)
    assert closed_starts.tolist() == [30, 0, 10, 20] and closed_ends.tolist() == [45, 10, 20, 30]
    # Two nodes measuring side by side keep their overlap; only the time neither measured goes.
    starts, ends = np.array([0.0, 0.5, 100, 100.2]), np.array([10.0, 10.5, 110, 110.2])
    assert without_pauses(starts, ends)[0].tolist() == pytest.approx([0, 0.5, 10.5, 10.7])
    assert without_pauses(np.array([5.0, 10]), np.array([10.0, 20]))[0].tolist() == [5, 10]  # nothing to close


@pytest.mark.parametrize("seed", range(3))
def test_a_chunked_run_splits_into_effects_that_add_up(seed):
    """Counterfactual: the chunked profile run in one go from the baseline's start."""
    rng = np.random.default_rng(seed)
    series = hourly(rng.uniform(50, 500, 48))
    durations, energy = rng.uniform(1, 30, 40), rng.uniform(0, 1e-4, 40)
    in_one_go = np.concatenate([[0.0], np.cumsum(durations)])
    pauses = np.where(np.arange(40) >= 20, 5 * 3600.0, 0.0)  # a five-hour pause after the 20th interval
    starts, ends = 20 * 3600.0 + in_one_go[:-1] + pauses, 20 * 3600.0 + in_one_go[1:] + pauses
    optimized_kg = profile_emissions_kg(series, starts, ends, energy)
    at_baseline = profile_emissions_kg(series, *without_pauses(starts, ends), energy, 3 * 3600.0 - 20 * 3600.0)
    contiguous = profile_emissions_kg(series, in_one_go[:-1], in_one_go[1:], energy, 3 * 3600.0)
    assert at_baseline == pytest.approx(contiguous, rel=1e-12)
    split = Decomposition(0.02, optimized_kg, at_baseline)
    assert split.schedule_effect_kg + split.configuration_effect_kg == pytest.approx(split.reduction_kg, rel=1e-12)
