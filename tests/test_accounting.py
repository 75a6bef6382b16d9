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


def test_decomposition_worked_by_hand():
    series = hourly([400, 100])  # a dirty hour, then a clean one
    starts, ends, energy = np.array([3600.0, 5400.0]), np.array([5400.0, 7200.0]), np.array([0.5, 0.5])
    optimized_kg = profile_emissions_kg(series, starts, ends, energy)  # ran in the clean hour: 1 kWh x 100 g
    at_baseline = profile_emissions_kg(series, starts, ends, energy, shift=-3600.0)  # the same profile an hour earlier
    split = Decomposition(baseline_kg=0.6, optimized_kg=optimized_kg, optimized_at_baseline_start_kg=at_baseline)
    assert (optimized_kg, at_baseline) == pytest.approx((0.1, 0.4))
    assert split.schedule_effect_kg == pytest.approx(0.3)  # when: 0.4 kg -> 0.1 kg
    assert split.configuration_effect_kg == pytest.approx(0.2)  # how: 0.6 kg -> 0.4 kg at the same time


def test_no_shift_means_no_schedule_effect():
    series = hourly([250, 90, 310])
    starts, ends, energy = np.array([600.0, 4000.0]), np.array([4000.0, 9000.0]), np.array([0.2, 0.7])
    same = profile_emissions_kg(series, starts, ends, energy)
    split = Decomposition(0.5, same, profile_emissions_kg(series, starts, ends, energy, shift=0.0))
    assert split.schedule_effect_kg == 0.0 and split.configuration_effect_kg == split.reduction_kg
