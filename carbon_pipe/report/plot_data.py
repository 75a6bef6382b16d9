"""The data behind the report's charts and DVC's plots, derived from the stages' artifacts.

Pure: frames and dicts in, frames out; compare.py reads the files and writes the results.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..intensity.series import IntensitySeries

if TYPE_CHECKING:
    from ..training.run_summary import RunSummary

Span = tuple[float, float]  # [start, end] in epoch seconds on the pipeline clock
Curve = tuple[np.ndarray, np.ndarray]  # run seconds, cumulative grams of CO2

EPOCH_COLUMNS = ("train_loss", "test_loss", "test_accuracy")


def run_span(summary: RunSummary) -> Span:
    """Where a run sat on the pipeline clock: from its start for its measured duration."""
    start = summary.scheduler_metrics.start
    return start, start + summary.training_metrics.total_time_seconds


def window_spans(chunks: Sequence[Any], start: float, end: float) -> list[Span]:
    """Where the scheduler put the optimized run: each planned chunk (with .start and .end), else the one window."""
    return [(chunk.start, chunk.end) for chunk in chunks] or [(start, end)]


def timeline_frame(series: IntensitySeries, submitted: float, marks: Mapping[str, Sequence[Span]]) -> pd.DataFrame:
    """The grid's intensity as steps over the horizon, plus one column per mark: the intensity inside its spans, 0
    outside.

    Each breakpoint (a point boundary or a span edge) gets a row for the value just before it and one for just
    after it, so a plain line chart (all DVC's built-in templates draw) shows exact steps and a mark's edges as
    vertical lines, however short the run.
    """
    clipped = {name: [(max(s, series.start), min(e, series.end)) for s, e in spans] for name, spans in marks.items()}
    edges = {t for spans in clipped.values() for span in spans for t in span}
    breakpoints = np.unique(np.concatenate([series.boundaries, sorted(edges)]))
    last = len(series.values) - 1
    rows = []
    for i, moment in enumerate(breakpoints):
        sides = ("before",) * (i > 0) + ("after",) * (i < len(breakpoints) - 1)
        for side in sides:
            after = side == "after"
            index = np.searchsorted(series.boundaries, moment, side="right" if after else "left") - 1
            grid = float(series.values[min(max(index, 0), last)])
            inside = [
                any((s <= moment < e) if after else (s < moment <= e) for s, e in spans) for spans in clipped.values()
            ]
            row = [(moment - submitted) / 3600, grid, *(grid if hit else 0.0 for hit in inside)]
            if not rows or row != rows[-1]:
                rows.append(row)
    return pd.DataFrame(rows, columns=["hours_since_submission", "grid", *clipped])


def cumulative_emissions(intervals: pd.DataFrame) -> Optional[Curve]:
    """Run time (pauses excluded) and cumulative grams of CO2 at the end of each measurement interval, from (0, 0).

    None when the run has no energy intervals (energy unknown): a flat zero line would claim zero emissions.
    """
    if not len(intervals):
        return None
    seconds = np.concatenate([[0.0], np.cumsum((intervals["end_s"] - intervals["start_s"]).to_numpy())])
    grams = np.concatenate([[0.0], np.cumsum(intervals["emissions_kg"].to_numpy()) * 1000.0])
    return seconds, grams


def cumulative_frame(curves: Mapping[str, Optional[Curve]]) -> pd.DataFrame:
    """All runs on one run-time axis (the union of their points); a finished run holds its total, an unknown one is
    empty."""
    known = [curve for curve in curves.values() if curve is not None]
    seconds = np.unique(np.concatenate([curve[0] for curve in known])) if known else np.zeros(0)
    columns = {"run_seconds": seconds}
    for name, curve in curves.items():
        columns[f"{name}_g"] = np.full(len(seconds), np.nan) if curve is None else np.interp(seconds, *curve)
    return pd.DataFrame(columns)


def epochs_frame(epochs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Loss and accuracy per epoch, one column per run and quantity, side by side on the epoch number."""
    parts = [
        frame[["epoch", *EPOCH_COLUMNS]].rename(columns={c: f"{name}_{c}" for c in EPOCH_COLUMNS})
        for name, frame in epochs.items()
    ]
    merged = reduce(lambda left, right: left.merge(right, on="epoch", how="outer"), parts)
    return merged.sort_values("epoch").reset_index(drop=True)
