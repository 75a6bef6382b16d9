import numpy as np
import pytest

from carbon_pipe.accounting import Decomposition, emissions_kg, interval_intensity, profile_emissions_kg
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
