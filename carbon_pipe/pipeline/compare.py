"""The compare stage: before/after numbers re-derived from the runs' own artifacts, the report and its charts."""

from __future__ import annotations

from ..artifacts import write_model, write_text
from ..intensity.horizon import read_horizon
from ..layout import COMPARISON_JSON, REPORT_MD, SUMMARY_METRICS
from ..report.comparison import compare, key_metrics, render_report, write_plots
from ..report.summaries import Comparison
from ..scheduling.decision import read_decision
from ..training.run_summary import read_run_summary


def run_stage() -> Comparison:
    baseline, optimized = read_run_summary("baseline"), read_run_summary("optimized")
    horizon, decision = read_horizon(), read_decision()
    result = compare(baseline, optimized, horizon.series)
    write_model(COMPARISON_JSON, result)
    write_model(SUMMARY_METRICS, key_metrics(result, baseline, optimized))
    figures = write_plots(baseline, optimized, horizon, decision)
    write_text(REPORT_MD, render_report(result, baseline, optimized, figures))
    return result
