"""Shared fixtures. Data from ../shared is optional: tests that need it skip cleanly when it is absent."""

from __future__ import annotations

import importlib.abc
import json
import os
import shlex
import socket
import sys
from pathlib import Path

import pytest
import yaml

# One intra-op thread for the tests and every process they start: the tiny models here gain nothing from more,
# and on a shared machine OpenMP threads waiting for each other make a step 10-100x slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CARBON_PIPE_SHARED", REPO.parent / "shared"))
MNIST_RAW = SHARED / "data" / "mnist" / "MNIST" / "raw"
CARBON_DATA = SHARED / "data" / "carbon"
VENV_BIN = str(Path(sys.executable).parent)


class SlowWorkGuard(importlib.abc.MetaPathFinder):
    """The fast suite (`-m "not slow"`) trains nothing and starts no dvc: a test that does must be marked slow. Seen
    from this process: an optimizer step (torch's global step hook, registered as torch.optim.optimizer loads) and
    dvc or a training command started as a process (the interpreter's subprocess.Popen audit event, by its command
    line: `carbon-pipe train|profile|run`, torchrun). Training inside some other child (a script the test wrote) is
    not seen here; `--durations` finds those."""

    def __init__(self) -> None:
        self.watching = False
        self.commands_refused = False  # the test's training commands are refused before they train (its marker)
        self.seen: list[str] = []

    def install(self) -> None:
        sys.addaudithook(self.audit)
        if "torch.optim.optimizer" in sys.modules:
            sys.modules["torch.optim.optimizer"].register_optimizer_step_post_hook(self.stepped)
        else:
            sys.meta_path.insert(0, self)

    def find_spec(self, fullname, path, target=None):
        if fullname != "torch.optim.optimizer":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                load = spec.loader.exec_module

                def exec_module(module):
                    load(module)
                    module.register_optimizer_step_post_hook(self.stepped)

                spec.loader.exec_module = exec_module
                return spec
        return None

    def stepped(self, optimizer, args, kwargs) -> None:
        if self.watching and "trained a model" not in self.seen:
            self.seen.append("trained a model")

    def audit(self, event: str, args: tuple) -> None:
        if self.watching and event == "subprocess.Popen":
            words = command_words(args[1])
            if starts_dvc(words):
                self.seen.append("started dvc")
            elif starts_training(words) and not self.commands_refused:
                self.seen.append(f"started a process that trains ({' '.join(words[:6])})")

    def watch(self, fast: bool, commands_refused: bool = False) -> None:
        self.watching, self.commands_refused, self.seen = fast, commands_refused, []

    def stop(self) -> list[str]:
        self.watching = False
        return self.seen


def command_words(argv) -> list[str]:
    """A new process's command line as words (a shell's `-c` line split too); [] if shlex cannot split it."""
    words = [os.fsdecode(word) for word in ([argv] if isinstance(argv, (str, bytes)) else argv)]
    try:
        if len(words) == 3 and Path(words[0]).name in ("sh", "bash") and words[1] == "-c":  # shell=True
            words = shlex.split(words[2])
        elif len(words) == 1:
            words = shlex.split(words[0])
    except ValueError:  # not a command line shlex can split: not a plain `dvc ...` either
        return []
    return words


def starts_dvc(words: list[str]) -> bool:
    return bool(words) and (Path(words[0]).name == "dvc" or words[1:3] == ["-m", "dvc"])


TRAINING_COMMANDS = ("train", "profile", "run")  # carbon-pipe's subcommands that train (`run`: your script)


def starts_training(words: list[str]) -> bool:
    """`carbon-pipe train|profile|run ...` (or `python -m carbon_pipe.cli ...`) or torchrun: a child that trains,
    which the optimizer-step hook in this process cannot see."""
    program = Path(words[0]).name if words else ""
    if program == "torchrun":
        return True
    if program == "carbon-pipe":
        arguments = words[1:]
    elif words[1:3] == ["-m", "carbon_pipe.cli"] or (words[1:2] == ["-c"] and "carbon_pipe.cli" in "".join(words[2:3])):
        arguments = words[3:]
    else:
        return False
    subcommand = next((word for word in arguments if not word.startswith("-")), None)
    return subcommand in TRAINING_COMMANDS


GUARD = SlowWorkGuard()


def pytest_configure(config) -> None:
    GUARD.install()
    build_each_cli_once()
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's: it would put files with many tests first
        config.option.loadscopereorder = False  # pytest_collection_modifyitems orders them, longest first


def build_each_cli_once() -> None:
    """typer's CliRunner builds the app's click command afresh at every invoke: each subcommand's signature read and
    its type hints evaluated, about 50 ms for carbon-pipe's, and the fast suite invokes it hundreds of times. The app
    does not change while the tests run, so each app's command is built once (as `carbon-pipe` builds it once per
    process)."""
    import typer.testing

    build = typer.testing._get_command
    built: dict[int, tuple] = {}

    def command_of(app):
        if id(app) not in built:
            built[id(app)] = (app, build(app))  # the app is held, so its id is never reused for another
        return built[id(app)][1]

    typer.testing._get_command = command_of


FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_collection_modifyitems(config, items) -> None:
    """The longest test files first, each file's tests in their own order. pytest-xdist's `--dist loadfile` hands
    whole files to its workers in collection order (its own reordering, by test count, is off: pytest_configure), so
    the long files start at once instead of ending the run alone on one worker. The seconds are each file's total on
    the CI machine (.ci/file_seconds.py writes them from a junit report); a file not in the table goes first, as if
    longest: a guess cannot do worse than a new slow file run last."""
    seconds = json.loads(FILE_SECONDS.read_text())
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(item.nodeid.split("::")[0], len(first_seen))

    def longest_first(item) -> tuple[float, int]:
        file = item.nodeid.split("::")[0]
        return -seconds.get(file, float("inf")), first_seen[file]

    items.sort(key=longest_first)  # stable: within a file, the tests keep their order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    GUARD.watch(  # from before the first fixture, module-scoped too
        fast=item.get_closest_marker("slow") is None,
        commands_refused=item.get_closest_marker("refused_before_training") is not None,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    seen = GUARD.stop()
    if seen:
        pytest.fail(f"a fast test {' and '.join(seen)}: mark it @pytest.mark.slow", pytrace=False)


# The tests' params: the schema's defaults, and the values it leaves to a project's params.yaml (the seed, the
# simulated clock's now, the two runs' batch shapes), fixed here. Never the working copy's params.yaml: `dvc exp run
# -S ...` rewrites it (values and formatting), and the suite must not follow an experiment.
SEED = 42
OWN_VALUES = {
    "scheduler": {"clock": "simulated", "now": "2025-01-15T18:00:00+00:00"},
    "baseline": {"batch_size": 64},
    "optimized": {"batch_size": 16, "gradient_accumulation_steps": 4, "mixed_precision": True},
}


def default_params() -> dict:
    """A fresh copy of the tests' params, as a params.yaml would hold them (durations in seconds)."""
    from carbon_pipe.config.params import Params

    raw: dict = {"seed": SEED}
    for name, field in Params.model_fields.items():
        if name != "seed":
            section = field.annotation.model_validate(OWN_VALUES.get(name, {}))
            raw[name] = {**section.model_dump(mode="json", by_alias=True), **OWN_VALUES.get(name, {})}
    # The trace preset's override keys left out, as params.yaml leaves them (given as null, a real-clock wait on a
    # csv trace behaved differently in test_wait_resume.py: not yet explained)
    raw["carbon"]["csv"] = {key: value for key, value in raw["carbon"]["csv"].items() if value is not None}
    return raw


def committed_params_text() -> str:
    """params.yaml as committed (HEAD), not as an experiment left the working copy; skips outside a git checkout."""
    import subprocess

    shown = subprocess.run(["git", "-C", str(REPO), "show", "HEAD:params.yaml"], capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip(f"no committed params.yaml to read (git show: {shown.stderr.strip()})")
    return shown.stdout


def tiny_params(**sections) -> dict:
    """The default params on a tiny subset, on the CPU even where a GPU exists: one epoch, seconds not minutes."""
    params = default_params()
    params["data"].update(train_limit=512, test_limit=256)
    params["train"].update(epochs=1, device="cpu")
    params["energy"].update(measure_power_secs=1)
    params["profile"].update(processes=3, rounds=2, warmup_rounds=1, burst_seconds=0.05)  # train-optimized profiles
    for name, values in sections.items():
        params[name].update(values)
    return params


def write_params(folder: Path, params: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def require_mnist() -> Path:
    """The MNIST mirror under ../shared, or skip the test (CI without ../shared still runs everything else)."""
    if not MNIST_RAW.is_dir():
        pytest.skip(f"MNIST mirror not found at {MNIST_RAW}")
    return MNIST_RAW


@pytest.fixture
def mnist_mirror() -> Path:
    return require_mnist()


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A scratch project folder as the working directory, with the venv's tools first on PATH."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    return tmp_path


def synthetic_dataset(train: int = 256, test: int = 128, size: int = 28) -> None:
    """Random images with a learnable rule (label = brightest row band), saved where fetch-data would put them."""
    import torch

    from carbon_pipe.layout import DATASET_FILE

    generator = torch.Generator().manual_seed(1)

    def split(count):
        labels = torch.randint(0, 10, (count,), generator=generator)
        images = torch.randint(0, 60, (count, 1, size, size), dtype=torch.uint8, generator=generator)
        for i, label in enumerate(labels):
            images[i, :, 2 * label : 2 * label + 3] += 150
        return images, labels

    train_x, train_y = split(train)
    test_x, test_y = split(test)
    DATASET_FILE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "dataset": "synthetic", "classes": [str(digit) for digit in range(10)],
            "mean": torch.tensor([0.25]), "std": torch.tensor([0.3]),
            "train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y,
        },
        DATASET_FILE,
    )


def run_training(params, run_name: str, segment=None):
    """One configuration trained in one go (or the one segment given), placed as its train stage places it: the
    baseline at submission, the optimized run where the decision put it (whatever its chunks); its RunSummary."""
    from carbon_pipe.intensity.horizon import read_horizon
    from carbon_pipe.scheduling.decision import read_decision
    from carbon_pipe.training import loop
    from carbon_pipe.training.placement import Placement
    from carbon_pipe.training.segments import Segment

    horizon = read_horizon()
    if run_name == "baseline":
        placed = Placement.at_submission(horizon)
    else:
        placed = Placement.scheduled(read_decision(), horizon)
    return loop.run_training(params, run_name, placed, segment or Segment())


def tiny_pipeline(train: int) -> dict:
    """The five stages as `dvc repro` runs them, in the current folder, on `train` random images and 2 epochs (the
    optimized run profiles first); returns the two runs' summaries."""
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.pipeline import compare, train_baseline, train_optimized, wait_for_window

    params = parse_params(tiny_params(train={"epochs": 2}))
    synthetic_dataset(train=train, test=64)
    wait_for_window.run_stage(params, say=lambda line: None)
    summaries = {"baseline": train_baseline.run_stage(params), "optimized": train_optimized.run_stage(params)}
    summaries = {run: summary.to_json() for run, summary in summaries.items()}
    compare.run_stage()
    return summaries


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fake_api():
    """A misbehaving HTTP server on 127.0.0.1 (tests/fake_servers.py): trickles, gzip bombs, answers that change."""
    from .fake_servers import FakeApi

    api = FakeApi()
    yield api
    api.close()
