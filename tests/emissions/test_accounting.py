import numpy as np
import pytest

from carbon_pipe.emissions.accounting import (
    Decomposition,
    emissions_kg,
    interval_intensity,
    profile_emissions_kg,
    without_pauses,
)
from carbon_pipe.intensity.series import IntensitySeries


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
    split = Decomposition(
        baseline_kg=0.6, optimized_training_kg=optimized_kg, optimized_training_at_baseline_start_kg=at_baseline,
        overhead_kg=0.05,  # its profile, charged where it ran
    )
    assert (optimized_kg, at_baseline) == pytest.approx((0.1, 0.4))
    assert split.schedule_effect_kg == pytest.approx(0.3)  # when: 0.4 kg -> 0.1 kg
    assert split.configuration_effect_kg == pytest.approx(0.2)  # how: 0.6 kg -> 0.4 kg at the same time
    assert split.reduction_kg == pytest.approx(0.6 - 0.1 - 0.05) == pytest.approx(0.3 + 0.2 - 0.05)


def test_no_shift_means_no_schedule_effect():
    series = hourly([250, 90, 310])
    starts, ends, energy = np.array([600.0, 4000.0]), np.array([4000.0, 9000.0]), np.array([0.2, 0.7])
    same = profile_emissions_kg(series, starts, ends, energy)
    split = Decomposition(0.5, same, profile_emissions_kg(series, starts, ends, energy, shift=0.0))
    assert split.schedule_effect_kg == 0.0 and split.configuration_effect_kg == split.reduction_kg


def test_without_pauses_puts_the_chunks_back_to_back():
    # Two chunks of two intervals each, an hour apart, listed out of order.
    starts, ends = np.array([3600.0 + 10, 0, 10, 3600]), np.array([3600.0 + 25, 10, 20, 3610])
    closed_starts, closed_ends = without_pauses(starts, ends)
    assert closed_starts.tolist() == [30, 0, 10, 20] and closed_ends.tolist() == [45, 10, 20, 30]
    # Two nodes measuring side by side keep their overlap; only the time neither measured goes.
    starts, ends = np.array([0.0, 0.5, 100, 100.2]), np.array([10.0, 10.5, 110, 110.2])
    assert without_pauses(starts, ends)[0].tolist() == pytest.approx([0, 0.5, 10.5, 10.7])
    assert without_pauses(np.array([5.0, 10]), np.array([10.0, 20]))[0].tolist() == [5, 10]  # nothing to close


def test_a_chunked_run_is_placed_at_the_baseline_start_in_one_go():
    series = hourly([400, 300, 100, 250, 100])
    # Two half-kWh chunks in the clean hours 2 and 4, the dirtier hour 3 skipped.
    starts, ends, energy = np.array([7200.0, 14400.0]), np.array([10800.0, 18000.0]), np.array([0.5, 0.5])
    optimized_kg = profile_emissions_kg(series, starts, ends, energy)
    at_baseline = profile_emissions_kg(series, *without_pauses(starts, ends), energy, shift=-7200.0)
    kept_pause = profile_emissions_kg(series, starts, ends, energy, shift=-7200.0)
    assert (optimized_kg, at_baseline, kept_pause) == pytest.approx((0.1, 0.35, 0.25))  # in one go: hours 0 and 1
    split = Decomposition(0.6, optimized_kg, at_baseline)
    assert split.schedule_effect_kg == pytest.approx(0.25) and split.configuration_effect_kg == pytest.approx(0.25)
