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


# The work stage as `carbon-pipe run` of a command that pauses and resumes: train.epochs seconds of work in
# quarter-second ticks (sleeps, not CPU), its count kept in $CARBON_PIPE_CHECKPOINT_DIR; SIGTERM ends a launch. Each
# launch is logged, as work.py's run is.
PAUSING = '''import json, os, pathlib, signal, sys, time
import yaml
stops = []
signal.signal(signal.SIGTERM, lambda signum, frame: stops.append(signum))
seconds = float(yaml.safe_load(open("params.yaml"))["train"]["epochs"])
saved = pathlib.Path(os.environ["CARBON_PIPE_CHECKPOINT_DIR"]) / "done"
done = float(saved.read_text()) if saved.exists() else 0.0
began = time.time()
while done < seconds and not stops:
    time.sleep(0.25)
    done += 0.25
    saved.write_text(str(done))
entry = json.loads(os.environ["CARBON_PIPE_QUEUE_SLOT"])["entry"]
with open(os.environ["QUEUE_TEST_LOG"], "a") as log:
    log.write(json.dumps({"entry": entry, "began": began, "ended": time.time(), "done": done}) + "\\n")
if stops:
    sys.exit(143)
json.dump({"extra": {"done": done}}, open(os.environ["CARBON_PIPE_METRICS"], "w"))
'''
PAUSING_DVC_YAML = {
    "stages": {
        "wait-for-window": DVC_YAML["stages"]["wait-for-window"],
        "work": {
            "cmd": "carbon-pipe run --run optimized -- python pausing.py",
            "deps": ["pausing.py", "stages/wait-for-window/decision.json"],
            "params": ["train.epochs", "energy", "command"],
            "metrics": [{"metrics/optimized.json": {"cache": False}}],
        },
    }
}


def make_project(folder: Path, trace_text: str, pausing: bool = False) -> Path:
    """A git repository with DVC initialised, the params on the trace, and everything committed; `pausing`: its
    work stage is PAUSING under `carbon-pipe run`, else work.py."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trace.csv").write_text(trace_text)
    raw = default_params()
    raw["carbon"]["sources"] = ["csv"]
    raw["carbon"]["csv"]["path"] = str(folder / "trace.csv")
    raw["scheduler"].update(expected_duration="30s", max_wait="10min")
    raw["command"]["grace_period"] = "2s"
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "dvc.yaml").write_text(yaml.safe_dump(PAUSING_DVC_YAML if pausing else DVC_YAML, sort_keys=False))
    (folder / "work.py").write_text(WORK)
    (folder / "pausing.py").write_text(PAUSING)
    for command in (["git", "init", "-q"], [str(Path(VENV_BIN) / "dvc"), "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny project"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return folder
