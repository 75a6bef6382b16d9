"""A tiny DVC project for the queue's end-to-end tests: wait-for-window on a CSV trace that starts now, then a
`work` stage that sleeps a moment and records when it ran, which entry it was, and what wait-for-window decided."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

from ..conftest import VENV_BIN, default_params

DVC_YAML = {
    "stages": {
        "wait-for-window": {
            "cmd": "carbon-pipe wait-for-window --params params.yaml",
            "params": ["carbon", "scheduler"],
            "outs": [{path: {"cache": False}} for path in (
                "stages/wait-for-window/decision.json", "stages/wait-for-window/horizon.json",
                "stages/wait-for-window/intensity.csv", "metrics/schedule.json")],
        },
        "work": {
            "cmd": "python work.py",
            "deps": ["work.py", "stages/wait-for-window/decision.json"],
            "params": ["train.epochs"],
            "metrics": [{"metrics/work.json": {"cache": False}}],
        },
    }
}
WORK = '''import json, os, time
began = time.time()
decision = json.load(open("stages/wait-for-window/decision.json"))
slot = json.loads(os.environ.get("CARBON_PIPE_QUEUE_SLOT", "{}"))
time.sleep(float(os.environ.get("QUEUE_TEST_WORK_SECONDS", "2")))
with open(os.environ["QUEUE_TEST_LOG"], "a") as log:
    log.write(json.dumps({"entry": slot.get("entry"), "began": began, "ended": time.time()}) + "\\n")
os.makedirs("metrics", exist_ok=True)
json.dump({"began": began, "wait_s": decision["wait_seconds"], "rule": decision["rule"],
           "saving_vs_arrival_pct": decision["expected_saving_vs_now_pct"]}, open("metrics/work.json", "w"))
'''


def trace(now: float, step: float, values: list[float]) -> str:
    """A CSV trace from a minute before `now`, one point every `step` seconds."""
    start = now - 60
    return "timestamp,carbon_intensity\n" + "".join(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start + k * step))},{value}\n"
        for k, value in enumerate(values)
    )


def make_project(folder: Path, trace_text: str) -> Path:
    """A git repository with DVC initialised, the params on the trace, and everything committed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trace.csv").write_text(trace_text)
    raw = default_params()
    raw["carbon"]["sources"] = ["csv"]
    raw["carbon"]["csv"]["path"] = str(folder / "trace.csv")
    raw["scheduler"].update(expected_duration="30s", max_wait="10min")
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (folder / "work.py").write_text(WORK)
    for command in (["git", "init", "-q"], [str(Path(VENV_BIN) / "dvc"), "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny project"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return folder
