"""How long the job will run: from params, or scaled from the last measured run (`expected_duration: auto`).

auto reads metrics/optimized.json, the last run of the configuration wait-for-window schedules, only if it is
there. It is deliberately not a DVC dependency of wait-for-window (the train stages depend on wait-for-window, so
it would be a cycle); instead the decision records which figure was used and how it was derived.

The size of the training split comes from the catalog for the built-in datasets. An image folder's or a data.class
function's is only known once fetch-data has read it: auto takes it from fetch-data's manifest when that manifest
was written for the same data (read, not a dependency either), and falls back otherwise.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import read_model, reason
from ..config.params import Params
from ..datasets.catalog import DATASETS, source_of
from ..datasets.manifest import read_data_manifest
from ..errors import ArtifactError
from ..layout import DATA_MANIFEST, run_metrics
from ..scheduling.duration import DurationEstimate
from .run_summary import RunSummary


def whole_training_split(params: Params, manifest: Path) -> tuple[int | None, str]:
    """The number of training samples before data.train_limit and where that figure comes from; None, and why,
    when it is not known yet."""
    data = params.data
    if data.dataset in DATASETS:
        return DATASETS[data.dataset].train_samples, f"the whole split of {data.dataset}"
    if not manifest.exists():
        return None, f"the size of the training split is unknown until fetch-data has run: {manifest} is missing"
    try:
        recorded = read_data_manifest(manifest)
    except ArtifactError as exc:
        return None, reason(exc)
    if recorded.source != source_of(data):
        return None, f"{manifest} was written for other data (fetch-data has not read the configured data yet)"
    if recorded.train_samples_available is None:
        return None, f"{manifest} records no train_samples_available"
    return recorded.train_samples_available, f"the training split in {manifest}"


def expected_duration(
    params: Params, last_run: Path = run_metrics("optimized"), manifest: Path = DATA_MANIFEST
) -> DurationEstimate:
    configured = params.scheduler.expected_duration
    if configured != "auto":
        return DurationEstimate(float(configured), "params", "scheduler.expected_duration")

    def fallback(why: str) -> DurationEstimate:
        return DurationEstimate(params.scheduler.fallback_duration, "fallback", f"scheduler.fallback_duration ({why})")

    if not last_run.is_file():
        return fallback(f"no measured run yet: {last_run} is missing")
    try:
        measured = read_model(last_run, RunSummary, "a run summary", "").training_metrics
    except ArtifactError:
        measured = None
    seconds = measured.total_time_seconds if measured else 0.0
    epochs, samples = (measured.epochs, measured.train_samples) if measured else (None, None)
    if epochs is None or samples is None:  # a command's run that did not report them
        return fallback(f"{last_run} has no usable training_metrics.total_time_seconds, epochs and train_samples")
    if min(seconds, epochs, samples) <= 0:
        return fallback(f"{last_run} records no training time")
    full, split_basis = whole_training_split(params, manifest)
    if full is None:
        return fallback(split_basis)
    wanted = min(params.data.train_limit or full, full)
    per_sample = seconds / (epochs * samples)
    return DurationEstimate(
        per_sample * wanted * params.train.epochs,
        "estimated",
        f"estimated from {last_run}: {seconds:.1f} s for {epochs} epoch(s) x {samples} samples "
        f"({per_sample * 1e3:.4g} ms per sample), scaled to {params.train.epochs} x {wanted} "
        f"(data.train_limit or {split_basis})",
    )
