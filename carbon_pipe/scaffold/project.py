"""`carbon-pipe init`: dvc.yaml, a params.yaml of only what differs from the defaults, and CARBON_PIPE.md, written
into an existing git repository (DVC initialised there when it is not yet), never over a file without --force."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import yaml

from ..artifacts import write_bytes
from ..config.params import Params, parse_params
from ..errors import UsageError
from .stages import dvc_yaml

FILES = ("dvc.yaml", "params.yaml", "CARBON_PIPE.md")
# Not DVC outs, and never committed: a stopped run's resume folder, the lock a running stage holds.
IGNORED = ("stages/*/resume/", "stages/*/.lock", "stages/*/*.set-aside")


@dataclass(frozen=True)
class Setup:
    """What kind of project: the built-in trainer on a torchvision set (`dataset`) or an image folder (`images`),
    or your own training command (`command`); where its intensities come from and on which clock it plans."""

    dataset: str = "mnist"
    images: Optional[str] = None
    command: Optional[str] = None
    sources: tuple[str, ...] = ("mock",)
    clock: Literal["simulated", "real"] = "simulated"
    duration: Optional[str] = None  # scheduler.expected_duration as written; None: the default
    now: Optional[float] = None  # the simulated clock's "now"

    @property
    def kind(self) -> str:
        return "command" if self.command is not None else "folder" if self.images is not None else "dataset"


def defaults_yaml() -> str:
    """The full params file of the defaults (`carbon-pipe params --defaults`); durations in seconds."""
    header = (
        "# carbon-pipe's defaults: every key a params file may hold. Durations are in seconds here; a params file\n"
        "# may also write them with a unit (30min, 12h). A key left out of your params.yaml takes this value.\n"
    )
    body = yaml.safe_dump(Params().model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True)
    return header + body


def _instant(seconds: Optional[float]) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _sections(setup: Setup) -> dict[str, Any]:
    """Each section the project's dvc.yaml lists, holding only the keys that differ from the defaults."""
    defaults = Params()
    data: dict[str, Any] = {}
    if setup.images is not None:
        data = {"dataset": "folder", "path": setup.images}
    elif setup.dataset != defaults.data.dataset:
        data = {"dataset": setup.dataset}
    scheduler: dict[str, Any] = {}
    if setup.clock != defaults.scheduler.clock:
        scheduler["clock"] = setup.clock
    if setup.clock == "simulated":
        scheduler["now"] = _instant(setup.now)
    if setup.duration is not None:
        scheduler["expected_duration"] = setup.duration
    carbon = {"sources": list(setup.sources)} if list(setup.sources) != defaults.carbon.sources else {}
    if setup.kind == "command":
        return {"carbon": carbon, "scheduler": scheduler, "energy": {}, "command": {}}
    return {
        "seed": defaults.seed, "data": data, "model": {}, "carbon": carbon, "scheduler": scheduler, "train": {},
        "energy": {}, "baseline": {}, "optimized": {}, "profile": {},
    }


def params_yaml(setup: Setup) -> str:
    header = (
        "# carbon-pipe's params for this project: only what differs from the defaults\n"
        "# (`carbon-pipe params --defaults` prints every key). dvc.yaml's stages read whole sections, so each is\n"
        "# here, if only as {}. One run with another value: dvc exp run -S section.key=value (a key not written\n"
        "# here: -S +section.key=value).\n"
    )
    body = "".join(
        yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=False, width=120)
        for name, value in _sections(setup).items()
    )
    return header + body


def notes(setup: Setup) -> str:
    """CARBON_PIPE.md: what was set up, and the next steps."""
    what = {
        "command": f"your own training command, run by `carbon-pipe run`: `{setup.command}`",
        "folder": f"carbon-pipe's built-in trainer on the image folder `{setup.images}`",
        "dataset": f"carbon-pipe's built-in trainer on {setup.dataset} (torchvision)",
    }[setup.kind]
    clock = (
        f"the simulated clock: each run is placed as if submitted at {_instant(setup.now)}, the wait recorded, not "
        "slept; set `scheduler.clock: real` (and drop `now`) to wait for the real window"
        if setup.clock == "simulated"
        else "the real clock: wait-for-window sleeps until the planned window (at most scheduler.max_wait)"
    )
    lines = [
        "# carbon-pipe in this project",
        "",
        f"Set up by `carbon-pipe init`: {what}. Intensities from {', '.join(setup.sources)}; planned on {clock}.",
        "",
        "- `dvc repro` runs wait-for-window (plan), train-baseline (at submission, the carbon-unaware reference),",
        "  train-optimized (in the planned window) and compare: `stages/compare/report.md`, `metrics/summary.json`.",
        "- `carbon-pipe experiments` compares `dvc exp run` experiments; `carbon-pipe plan` shows the next plan.",
        "- params.yaml holds only what differs from the defaults (`carbon-pipe params --defaults` lists every key).",
        "- `carbon.sources`: `[mock]` is an invented diurnal curve; your grid: `[uk, mock]` (with",
        "  `carbon.uk.region`), `electricitymaps` or `watttime` (keys from environment variables), or `csv`.",
    ]
    if setup.kind == "command":
        lines += [
            "- Your command gets $CARBON_PIPE_OUT (its folder), $CARBON_PIPE_METRICS (a JSON file for its",
            "  `final_accuracy` and losses) and $CARBON_PIPE_CHECKPOINT_DIR. Both runs start it as written: put the",
            "  carbon-aware run's own settings on train-optimized's command line in dvc.yaml, and set",
            "  `scheduler.expected_duration` to how long it runs.",
        ]
    else:
        lines += ["- The built-in trainer needs torch and torchvision: `pip install 'carbon-pipe[train]'`."]
    return "\n".join(lines) + "\n"


def _run(command: list[str], folder: Path, what: str) -> None:
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(f"{what} failed: {detail}")


def _check(setup: Setup, folder: Path) -> None:
    if setup.command is not None and not shlex.split(setup.command):
        raise UsageError("--command: empty; give your training command, e.g. --command 'python train.py'")
    if setup.images is not None and not (folder / setup.images).is_dir():
        raise UsageError(f"--images: {setup.images}: no such folder in {folder}")
    inside = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=folder, capture_output=True, text=True)
    if inside.returncode != 0:
        raise UsageError(f"{folder}: not in a git repository; run `git init` first (DVC keeps experiments in git)")


def init_project(folder: Path, setup: Setup, force: bool, say: Callable[[str], None]) -> list[Path]:
    """Write the project's files into `folder`; nothing at all when one exists and `force` is off."""
    _check(setup, folder)
    existing = [name for name in FILES if (folder / name).exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(existing)} already there: nothing written (--force overwrites)")
    texts = {
        "dvc.yaml": dvc_yaml(setup.command, setup.images, folder),
        "params.yaml": params_yaml(setup),
        "CARBON_PIPE.md": notes(setup),
    }
    parse_params(yaml.safe_load(texts["params.yaml"]), "the params.yaml init would write")  # never a bad file
    if not (folder / ".dvc").is_dir():
        _run([sys.executable, "-m", "dvc", "init", "--quiet"], folder, "dvc init")
        say("dvc init: DVC initialised in this repository")
    for name, text in texts.items():
        write_bytes(folder / name, text.encode())
    gitignore = folder / ".gitignore"
    kept = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    missing = [pattern for pattern in IGNORED if pattern not in kept]
    if missing:
        lines = kept + ["# carbon-pipe: resume state and locks, never committed", *missing, ""]
        write_bytes(gitignore, "\n".join(lines).encode())
    return [folder / name for name in texts]
