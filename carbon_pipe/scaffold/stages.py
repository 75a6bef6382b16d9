"""The dvc.yaml of a project of your own: the pipeline's five stages (four for your own command, which prepares
its own data), each a `carbon-pipe` command, with the outputs and params it reads."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from ..layout import (
    COMPARISON_JSON,
    CUMULATIVE_CSV,
    CUMULATIVE_PNG,
    DATA_MANIFEST,
    DATASET_FILE,
    DECISION_JSON,
    EPOCHS_CSV,
    EPOCHS_PNG,
    HORIZON_JSON,
    INTENSITY_CSV,
    REPORT_MD,
    SCHEDULE_METRICS,
    SUMMARY_METRICS,
    TIMELINE_CSV,
    TIMELINE_PNG,
    run_metrics,
    run_profile_file,
    train_dir,
)

HEADER = """\
# The map of this project's pipeline, written by `carbon-pipe init` (CARBON_PIPE.md says how to use it). Each stage
# runs one carbon-pipe command; carbon-pipe is an installed tool here, so no stage depends on its code: pin its
# version. Each stage's params are the params.yaml sections it reads, so a change reruns only what it affects.
"""


def _uncached(path: Path) -> dict:
    return {str(path): {"cache": False}}


def window_stage(params: list[str], deps: list[str]) -> dict:
    stage: dict = {"cmd": "carbon-pipe wait-for-window"}
    if deps:
        stage["deps"] = deps
    stage["params"] = params
    stage["outs"] = [_uncached(path) for path in (HORIZON_JSON, INTENSITY_CSV, DECISION_JSON, SCHEDULE_METRICS)]
    return stage


def _planned(run: str) -> list[str]:
    """What a train stage reads of wait-for-window's: the horizon it is charged with, and the optimized run's plan."""
    return [str(HORIZON_JSON), str(INTENSITY_CSV)] + ([str(DECISION_JSON)] if run == "optimized" else [])


def command_files(command: str, folder: Path) -> list[str]:
    """The files of the project a command names (its script, a config): its stages' deps, so an edit reruns it."""
    words = shlex.split(command)
    return list(dict.fromkeys(word for word in words[1:] if "${" not in word and (folder / word).is_file()))


def command_run_stage(run: str, command: str, files: list[str]) -> dict:
    params = ["energy", "command"] + (["carbon", "scheduler"] if run == "optimized" else [])
    out = train_dir(run)
    return {
        "cmd": f"carbon-pipe run --run {run} -- {command}",
        "deps": files + _planned(run),
        "params": params,
        "outs": [str(out / "emissions.csv"), str(out / "energy_intervals.csv"), str(out / "epochs.csv")]
        + [_uncached(run_metrics(run))],
    }


def trainer_stage(run: str) -> dict:
    params = ["seed", "model", "train", "energy", run]
    if run == "optimized":  # the profile measures the baseline's configuration beside its own; real clock re-plans
        params += ["baseline", "profile", "carbon", "scheduler"]
    out = train_dir(run)
    outs = [str(out / name) for name in ("model.pt", "checkpoint.pt", "emissions.csv", "energy_intervals.csv")]
    outs += [str(out / "epochs.csv")] + ([str(run_profile_file(run))] if run == "optimized" else [])
    return {
        "cmd": f"carbon-pipe train --run {run}",
        "deps": [str(DATASET_FILE)] + _planned(run),
        "params": params,
        "outs": outs + [_uncached(run_metrics(run))],
    }


def fetch_stage(images: str | None) -> dict:
    stage: dict = {"cmd": "carbon-pipe fetch-data"}
    if images is not None:
        stage["deps"] = [images]
    stage["params"] = ["data"]
    stage["outs"] = [str(DATASET_FILE), _uncached(DATA_MANIFEST)]
    return stage


def compare_stage(profiled: bool) -> dict:
    deps = [str(run_metrics(run)) for run in ("baseline", "optimized")]
    for name in ("energy_intervals.csv", "epochs.csv"):
        deps += [str(train_dir(run) / name) for run in ("baseline", "optimized")]
    deps += ([str(run_profile_file("optimized"))] if profiled else []) + _planned("optimized")
    figures = (COMPARISON_JSON, REPORT_MD, TIMELINE_PNG, CUMULATIVE_PNG, EPOCHS_PNG, TIMELINE_CSV, CUMULATIVE_CSV)
    return {
        "cmd": "carbon-pipe compare",
        "deps": deps,
        "outs": [_uncached(path) for path in (*figures, EPOCHS_CSV)],
        "metrics": [_uncached(SUMMARY_METRICS)],
    }


def dvc_yaml(command: str | None, images: str | None, folder: Path) -> str:
    """The whole dvc.yaml: your own command's four stages, or the built-in trainer's five."""
    if command is not None:
        files = command_files(command, folder)
        stages = {
            "wait-for-window": window_stage(["carbon", "scheduler"], []),
            "train-baseline": command_run_stage("baseline", command, files),
            "train-optimized": command_run_stage("optimized", command, files),
            "compare": compare_stage(profiled=False),
        }
    else:
        stages = {
            "fetch-data": fetch_stage(images),
            # data and train: `scheduler.expected_duration: auto` scales the last run to the configured work
            "wait-for-window": window_stage(["carbon", "scheduler", "data", "train"], []),
            "train-baseline": trainer_stage("baseline"),
            "train-optimized": trainer_stage("optimized"),
            "compare": compare_stage(profiled=True),
        }
    return HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)
