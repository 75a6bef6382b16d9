"""Fingerprint the deterministic outputs of a pipeline run, and check that runs agree.

    python .ci/reproducible.py snapshot PROJECT_DIR OUT.json
    python .ci/reproducible.py compare A.json B.json [C.json ...]

Compared: the dataset and model files (sha256), the training metrics (accuracy and loss, per epoch and final),
and the scheduler's decision. Not compared, because they are measurements that differ between any two runs:
time, energy, emissions, memory, samples/s.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

RUNS = ("baseline", "optimized")
TRAINING_METRICS = ("final_accuracy", "final_loss", "test_loss", "epochs")
EPOCH_COLUMNS = ("train_loss", "test_loss", "test_accuracy")
DECISION_KEYS = ("start", "expected_end", "wait_seconds", "expected_mean_intensity_g_per_kwh")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(project: Path) -> dict:
    facts = {"stages/fetch-data/dataset.pt sha256": sha256(project / "stages/fetch-data/dataset.pt")}
    decision = json.loads((project / "stages/wait-for-window/decision.json").read_text())
    facts.update({f"decision.{key}": decision[key] for key in DECISION_KEYS})
    for run in RUNS:
        facts[f"stages/train-{run}/model.pt sha256"] = sha256(project / f"stages/train-{run}/model.pt")
        summary = json.loads((project / f"metrics/{run}.json").read_text())
        facts.update({f"{run}.{key}": summary["training_metrics"][key] for key in TRAINING_METRICS})
        facts[f"{run}.precision"] = summary["precision"]
        with open(project / f"stages/train-{run}/epochs.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        facts.update({f"{run}.epochs.{column}": [row[column] for row in rows] for column in EPOCH_COLUMNS})
    return facts


def compare(paths: list[Path]) -> int:
    runs = [json.loads(path.read_text()) for path in paths]
    differing = [key for key in runs[0] if any(run.get(key) != runs[0][key] for run in runs[1:])]
    for key in differing:
        print(f"DIFFERENT {key}: " + " vs ".join(repr(run.get(key)) for run in runs))
    if differing:
        print(f"not reproducible: {len(differing)} of {len(runs[0])} deterministic outputs differ between runs")
        return 1
    model_hashes = ", ".join(f"{run} {runs[0][f'stages/train-{run}/model.pt sha256'][:12]}" for run in RUNS)
    print(
        f"reproducible: {len(runs)} runs agree on all {len(runs[0])} deterministic outputs "
        f"(models: {model_hashes}; accuracy and loss per epoch; the schedule). "
        "Time, energy, emissions and memory are measurements and differ between runs by nature: not compared."
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "snapshot":
        Path(argv[2]).write_text(json.dumps(snapshot(Path(argv[1])), indent=1) + "\n")
        return 0
    if len(argv) >= 3 and argv[0] == "compare":
        return compare([Path(p) for p in argv[1:]])
    print("usage:\n" + "\n".join(__doc__.splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
