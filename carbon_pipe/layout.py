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
# An unfinished wait's submission time and attempts (scheduling/wait_resume.py). Not a DVC out, so `dvc repro`
# does not delete it before rerunning the stage.
WAIT_STATE = WINDOW_DIR / "resume" / "wait.json"

RUNS = ("baseline", "optimized")

COMPARISON_JSON = METRICS_DIR / "comparison.json"
SUMMARY_METRICS = METRICS_DIR / "summary.json"
COMPARE_DIR = Path("stages/compare")
REPORT_MD = COMPARE_DIR / "report.md"
# Plot data (DVC plots read these) and the report's charts of the same.
TIMELINE_CSV = COMPARE_DIR / "timeline.csv"
EPOCHS_CSV = COMPARE_DIR / "epochs.csv"
CUMULATIVE_CSV = COMPARE_DIR / "cumulative_emissions.csv"
TIMELINE_PNG = COMPARE_DIR / "timeline.png"
EPOCHS_PNG = COMPARE_DIR / "epochs.png"
CUMULATIVE_PNG = COMPARE_DIR / "cumulative_emissions.png"


def train_dir(run_name: str) -> Path:
    return Path(f"stages/train-{run_name}")


def resume_dir(run_name: str) -> Path:
    """A stopped run's checkpoint and energy journal. Not a DVC out, so `dvc repro` does not delete it."""
    return train_dir(run_name) / "resume"


def run_profile_file(run_name: str) -> Path:
    """The energy profile a run measured (train-optimized: its profile segments, before and between training)."""
    return train_dir(run_name) / "profile.json"


def run_metrics(run_name: str) -> Path:
    return METRICS_DIR / f"{run_name}.json"
