"""Where each stage writes: one place, so dvc.yaml, the stages and the tests agree."""

from pathlib import Path

METRICS_DIR = Path("metrics")

DATA_DIR = Path("stages/fetch-data")
DATASET_FILE = DATA_DIR / "dataset.pt"
DATA_MANIFEST = DATA_DIR / "manifest.json"

WINDOW_DIR = Path("stages/wait-for-window")
HORIZON_JSON = WINDOW_DIR / "horizon.json"
INTENSITY_CSV = WINDOW_DIR / "intensity.csv"
DECISION_JSON = WINDOW_DIR / "decision.json"
SCHEDULE_METRICS = METRICS_DIR / "schedule.json"

RUNS = ("baseline", "optimized")

COMPARISON_JSON = METRICS_DIR / "comparison.json"
REPORT_MD = Path("stages/compare/report.md")


def train_dir(run_name: str) -> Path:
    return Path(f"stages/train-{run_name}")


def resume_dir(run_name: str) -> Path:
    """A stopped run's checkpoint and energy journal. Not a DVC out, so `dvc repro` does not delete it."""
    return train_dir(run_name) / "resume"


def run_metrics(run_name: str) -> Path:
    return METRICS_DIR / f"{run_name}.json"
