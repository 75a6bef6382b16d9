"""The report's data and charts: what the timeline marks, where the cumulative curves end, and that the report's
PNGs exist and are real images, drawn the same twice."""

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.layout import (
    CUMULATIVE_CSV,
    DECISION_JSON,
    EPOCHS_CSV,
    REPORT_MD,
    SUMMARY_METRICS,
    TIMELINE_CSV,
)
from carbon_pipe.pipeline import compare
from carbon_pipe.report.plot_data import (
    cumulative_emissions,
    cumulative_frame,
    epochs_frame,
    timeline_frame,
    window_spans,
)
from carbon_pipe.scheduling.planner import Chunk
from carbon_pipe.timeutil import iso, parse_instant

from ..conftest import tiny_pipeline

HOUR = 3600.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def hourly(values) -> IntensitySeries:
    values = np.asarray(values, dtype=float)
    return IntensitySeries(HOUR * np.arange(len(values) + 1), values, np.zeros(len(values), bool), "t", "x")


def rows_at(frame: pd.DataFrame, hours: float) -> pd.DataFrame:
    return frame[np.isclose(frame["hours_since_submission"], hours)]


def test_timeline_marks_the_run_and_each_chunk_and_nothing_else():
    series = hourly([400, 300, 200, 100, 150, 250])
    baseline, chunks = [(0.0, 0.25 * HOUR)], [(2 * HOUR, 3 * HOUR), (4.5 * HOUR, 5 * HOUR)]
    frame = timeline_frame(series, 0.0, {"baseline_run": baseline, "optimized_window": chunks})

    for column, spans in (("baseline_run", baseline), ("optimized_window", chunks)):
        marked = frame[frame[column] > 0]
        hours = marked["hours_since_submission"] * HOUR
        assert all(any(s <= h <= e for s, e in spans) for h in hours), column
        assert (marked[column] == marked["grid"]).all()  # a mark follows the intensity the run met
        for start, end in spans:  # each edge is drawn: a row at zero and a row at the intensity met, same x
            at_submission = start == series.start  # nothing before it to drop from
            assert set(rows_at(frame, start / HOUR)[column]) == {series.at(start)} | (
                {0.0} if not at_submission else set()
            )
            assert set(rows_at(frame, end / HOUR)[column]) == {0.0, series.at(end - 1)}
    assert (rows_at(frame, 3.5)["optimized_window"] == 0).all()  # the pause between the chunks
    # The grid column is the series as steps: both values at every boundary, the held value in between.
    assert set(rows_at(frame, 2.0)["grid"]) == {300.0, 200.0}
    assert frame["grid"].iloc[0] == 400 and frame["grid"].iloc[-1] == 250
    assert frame["hours_since_submission"].is_monotonic_increasing


def test_window_spans_prefer_chunks_over_the_single_window():
    assert window_spans([], 2 * HOUR, 3 * HOUR) == [(2 * HOUR, 3 * HOUR)]
    chunks = [Chunk(2 * HOUR, 2.5 * HOUR, 200.0), Chunk(4 * HOUR, 4.5 * HOUR, 150.0)]
    assert window_spans(chunks, 2 * HOUR, 4.5 * HOUR) == [(2 * HOUR, 2.5 * HOUR), (4 * HOUR, 4.5 * HOUR)]


def intervals(starts, ends, kg) -> pd.DataFrame:
    return pd.DataFrame({"start_s": starts, "end_s": ends, "emissions_kg": kg})


def test_cumulative_curves_end_at_the_totals_and_exclude_pauses():
    fast = cumulative_emissions(intervals([100.0, 105.0], [105.0, 108.0], [2e-5, 1e-5]))
    # Two chunks an hour apart: the pause is not run time.
    paused = cumulative_emissions(intervals([0.0, 5.0, 3605.0], [5.0, 10.0, 3615.0], [1e-5, 1e-5, 2e-5]))
    assert fast[0].tolist() == [0.0, 5.0, 8.0] and fast[1][-1] == pytest.approx(0.03)
    assert paused[0].tolist() == [0.0, 5.0, 10.0, 20.0] and paused[1][-1] == pytest.approx(0.04)

    frame = cumulative_frame({"baseline": fast, "optimized": paused})
    assert frame["run_seconds"].tolist() == [0.0, 5.0, 8.0, 10.0, 20.0]
    assert frame["baseline_g"].iloc[-1] == pytest.approx(0.03)  # held after the run ended
    assert frame["optimized_g"].iloc[-1] == pytest.approx(0.04)
    assert frame["baseline_g"].is_monotonic_increasing and frame["optimized_g"].is_monotonic_increasing


def test_unknown_energy_is_an_empty_curve_not_a_zero_one():
    assert cumulative_emissions(intervals([], [], [])) is None
    frame = cumulative_frame({"baseline": None, "optimized": cumulative_emissions(intervals([0.0], [5.0], [1e-5]))})
    assert frame["baseline_g"].isna().all() and frame["optimized_g"].iloc[-1] == pytest.approx(0.01)


def test_epochs_side_by_side():
    def run(losses):
        return pd.DataFrame({"epoch": [1, 2], "train_loss": losses, "test_loss": losses, "test_accuracy": [90.0, 95.0]})

    frame = epochs_frame({"baseline": run([0.5, 0.2]), "optimized": run([0.6, 0.3])})
    assert frame["epoch"].tolist() == [1, 2]
    assert frame["optimized_train_loss"].tolist() == [0.6, 0.3] and frame["baseline_test_accuracy"].tolist() == [
        90.0,
        95.0,
    ]


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Both runs really trained (two epochs on a tiny random set), then the compare stage."""
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        yield folder, tiny_pipeline(train=256)


@pytest.mark.slow
def test_report_shows_charts_that_exist_and_are_pngs(reported):
    folder, _ = reported
    report = (folder / REPORT_MD).read_text()
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert sorted(images) == ["cumulative_emissions.png", "epochs.png", "timeline.png"]
    for name in images:
        width, height = png_size(folder / REPORT_MD.parent / name)
        assert width >= 600 and height >= 300
    assert "schedule effect" in report and "configuration effect" in report and "| CO2 (g) |" in report


@pytest.mark.slow
def test_plot_data_agree_with_the_runs(reported):
    folder, summaries = reported
    cumulative = pd.read_csv(folder / CUMULATIVE_CSV)
    for run, summary in summaries.items():
        assert cumulative[f"{run}_g"].iloc[-1] == pytest.approx(
            summary["carbon_metrics"]["total_emissions_kg"] * 1000, rel=1e-9
        )
    epochs = pd.read_csv(folder / EPOCHS_CSV)
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs["optimized_test_accuracy"].iloc[-1] == summaries["optimized"]["training_metrics"]["final_accuracy"]
    timeline = pd.read_csv(folder / TIMELINE_CSV)
    decision = json.loads((folder / DECISION_JSON).read_text())
    window_start_h = (parse_instant(decision["start"]) - parse_instant(decision["horizon"]["now"])) / HOUR
    assert rows_at(timeline, window_start_h)["optimized_window"].max() > 0
    assert (
        timeline.loc[timeline["baseline_run"] > 0, "hours_since_submission"].max() < 0.1
    )  # a run of seconds at submission


@pytest.mark.slow
def test_key_metrics_are_flat_numbers(reported):
    folder, summaries = reported
    metrics = json.loads((folder / SUMMARY_METRICS).read_text())
    assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in metrics.values()), metrics
    assert metrics["optimized_co2_g"] == pytest.approx(
        summaries["optimized"]["carbon_metrics"]["total_emissions_kg"] * 1000
    )
    parts = metrics["schedule_effect_g"] + metrics["configuration_effect_g"] + metrics["remainder_g"]
    assert parts - metrics["profiling_overhead_g"] - metrics["held_idle_g"] == pytest.approx(
        metrics["baseline_co2_g"] - metrics["optimized_co2_g"]
    )
    for name in ("schedule_effect_g", "configuration_effect_g", "configuration_ratio"):
        assert metrics[f"{name}_low"] <= metrics[name] <= metrics[f"{name}_high"]


@pytest.mark.slow
def test_charts_redraw_to_the_same_bytes_and_draw_chunks(reported):
    folder, _ = reported
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        charts = {path: path.read_bytes() for path in REPORT_MD.parent.glob("*.png")}
        compare.run_stage()
        assert {path: path.read_bytes() for path in charts} == charts

        decision = json.loads(DECISION_JSON.read_text())
        start = parse_instant(decision["start"])
        decision["chunks"] = [
            {"start": iso(start), "end": iso(start + 300), "expected_mean_intensity_g_per_kwh": 200.0},
            {
                "start": iso(start + 3 * HOUR),
                "end": iso(start + 3 * HOUR + 300),
                "expected_mean_intensity_g_per_kwh": 210.0,
            },
        ]
        DECISION_JSON.write_text(json.dumps(decision))
        compare.run_stage()
        timeline = pd.read_csv(TIMELINE_CSV)
        marked = timeline.loc[timeline["optimized_window"] > 0, "hours_since_submission"]
        now = parse_instant(decision["horizon"]["now"])
        assert marked.min() == pytest.approx((start - now) / HOUR) and marked.max() == pytest.approx(
            (start + 3 * HOUR + 300 - now) / HOUR
        )
        assert (rows_at(timeline, (start + HOUR - now) / HOUR)["optimized_window"] == 0).all()
        assert (folder / REPORT_MD.parent / "timeline.png").read_bytes() != charts[REPORT_MD.parent / "timeline.png"]
