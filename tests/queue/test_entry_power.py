"""A queue entry's expected power: --power, else the mean power of the last optimized run read through its run
summary's model, else the default with why."""

from __future__ import annotations

import pytest

from carbon_pipe.errors import FieldError
from carbon_pipe.layout import run_metrics
from carbon_pipe.queue.entries import DEFAULT_POWER_KW, power_of
from carbon_pipe.training.run_summary import write_run_summary

from ..training.test_run_summary import summary


def test_power_is_the_last_optimized_runs_mean_power(workspace):
    write_run_summary(summary("optimized"))  # its mean power is 8.1 W
    estimate = power_of(None, run_metrics("optimized"), "q1")
    assert estimate.value == pytest.approx(0.0081)
    assert estimate.basis == f"the mean power of the last run in {run_metrics('optimized')}"


@pytest.mark.parametrize("content, why", [
    (None, "no measured run"),
    ('{"carbon_metrics": {"avg_power_watts": 80}}', "not a run summary (run is missing): run train again"),
    ("{", "is not valid JSON"),
])
def test_without_a_readable_run_summary_power_is_the_default_and_says_why(workspace, content, why):
    if content is not None:
        run_metrics("optimized").parent.mkdir(parents=True, exist_ok=True)
        run_metrics("optimized").write_text(content)
    estimate = power_of(None, run_metrics("optimized"), "q1")
    assert estimate.value == DEFAULT_POWER_KW and why in estimate.basis


def test_power_given_must_be_positive(workspace):
    assert power_of(0.5, run_metrics("optimized"), "q1").basis == "--power"
    with pytest.raises(FieldError, match="entry q1.*--power: must be positive kW, got 0"):
        power_of(0.0, run_metrics("optimized"), "q1")
