"""The bad-input matrix: each case exits 2 with one line that names the problem, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
import yaml
from typer.testing import CliRunner

from carbon_pipe.cli import app

from ..conftest import MNIST_RAW, default_params, require_mnist

GOOD_TRACE = "timestamp,carbon_intensity\n" + "".join(
    f"2025-01-{15 + h // 24:02d}T{h % 24:02d}:00:00Z,{100 + 10 * (h % 24)}\n" for h in range(72)
)


def with_params(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        raw = default_params()
        edit(raw)
        (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    return setup


def set_key(path: str, value) -> Callable[[Path], None]:
    def edit(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value

    return with_params(edit)


def drop_key(path: str) -> Callable[[Path], None]:
    def edit(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[last]

    return with_params(edit)


def csv_source(trace_text: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / "trace.csv").write_text(trace_text)

        def edit(raw: dict) -> None:
            raw["carbon"].update(sources=["csv"], fallback=False)
            raw["carbon"]["csv"].update(path="trace.csv")

        with_params(edit)(folder)

    return setup


def raw_file(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "params.yaml").write_text(text)


def raw_file_edit(old: str, new: str) -> Callable[[Path], None]:
    """The tests' params as YAML text, with one edit (what a dict cannot hold: a repeated key, a bare date)."""
    text = yaml.safe_dump(default_params(), sort_keys=False)
    assert old in text
    return raw_file(text.replace(old, new, 1))


WAIT = ["wait-for-window", "--params", "params.yaml"]
CASES = [
    # (id, setup, command, text the one line must contain)
    ("no-params-file", lambda folder: None, WAIT, "params.yaml: no such params file"),
    ("bad-yaml", raw_file("seed: 1\ndata: [unclosed\n"), WAIT, "invalid YAML at line"),
    ("yaml-not-a-mapping", raw_file("- just\n- a list\n"), WAIT, "expected a mapping of sections"),
    (
        "unknown-section",
        with_params(lambda p: p.update(schedular=p.pop("scheduler"))),
        WAIT,
        "schedular: unknown key (did you mean scheduler?)",
    ),
    (
        "unknown-nested-key",
        set_key("scheduler.max_wiat", "2h"),
        WAIT,
        "scheduler.max_wiat: unknown key (did you mean scheduler.max_wait?)",
    ),
    ("batch-size-text", set_key("baseline.batch_size", "big"), WAIT, "baseline.batch_size"),
    (
        "batch-size-zero",
        set_key("baseline.batch_size", 0),
        WAIT,
        "baseline.batch_size: Input should be greater than or equal to 1",
    ),
    ("null-batch-size", set_key("optimized.batch_size", None), WAIT, "optimized.batch_size"),
    ("missing-now", drop_key("scheduler.now"), WAIT, "scheduler.now: required when scheduler.clock is simulated"),
    (
        "accumulation-zero",
        set_key("optimized.gradient_accumulation_steps", 0),
        WAIT,
        "optimized.gradient_accumulation_steps",
    ),
    (
        "accumulation-too-large",
        set_key("optimized.gradient_accumulation_steps", 2048),
        WAIT,
        "less than or equal to 1024",
    ),
    ("mixed-precision-maybe", set_key("optimized.mixed_precision", "maybe"), WAIT, "optimized.mixed_precision"),
    ("negative-threshold", set_key("scheduler.threshold", -5), WAIT, "scheduler.threshold"),
    ("bad-duration", set_key("scheduler.max_wait", "soon"), WAIT, "scheduler.max_wait: invalid duration 'soon'"),
    ("negative-duration", set_key("scheduler.expected_duration", "-3h"), WAIT, "scheduler.expected_duration"),
    (
        "naive-now",
        set_key("scheduler.now", "2025-01-15T18:00:00"),
        WAIT,
        "scheduler.now: time 2025-01-15T18:00:00 has no time zone",
    ),
    ("garbage-now", set_key("scheduler.now", "teatime"), WAIT, "scheduler.now: invalid time 'teatime'"),
    (
        "simulated-without-now",
        set_key("scheduler.now", None),
        WAIT,
        "scheduler.now: required when scheduler.clock is simulated",
    ),
    ("bad-clock", set_key("scheduler.clock", "wallclock"), WAIT, "scheduler.clock"),
    ("bad-rule", set_key("scheduler.rule", "greedy"), WAIT, "scheduler.rule"),
    (
        "interruptible-threshold",
        with_params(lambda p: p["scheduler"].update(mode="interruptible", rule="threshold")),
        WAIT,
        "scheduler.mode: interruptible needs rule lowest-mean",
    ),
    (
        "bad-time-zone",
        set_key("carbon.mock.timezone", "Mars/Olympus"),
        WAIT,
        "carbon.mock.timezone: unknown time zone 'Mars/Olympus'",
    ),
    ("bad-country-code", set_key("energy.country_iso_code", "gb"), WAIT, "energy.country_iso_code"),
    ("no-sources", set_key("carbon.sources", []), WAIT, "carbon.sources"),
    ("unknown-source", set_key("carbon.sources", ["carbonmagic"]), WAIT, "carbon.sources"),
    ("bad-base-url", set_key("carbon.uk.base_url", "not a url"), WAIT, "carbon.uk.base_url"),
    ("negative-retries", set_key("carbon.uk.retries", -1), WAIT, "carbon.uk.retries"),
    ("horizon-too-short", set_key("carbon.horizon", "6h"), WAIT, "carbon.horizon: must cover"),
    ("train-limit-zero", set_key("data.train_limit", 0), WAIT, "data.train_limit"),
    ("zero-epochs", set_key("train.epochs", 0), WAIT, "train.epochs"),
    ("bad-device", set_key("train.device", "tpu"), WAIT, "train.device"),
    ("zero-learning-rate", set_key("train.learning_rate", 0), WAIT, "train.learning_rate"),
    ("zero-measure-interval", set_key("energy.measure_power_secs", 0), WAIT, "energy.measure_power_secs"),
    ("negative-seed", set_key("seed", -1), WAIT, "seed: Input should be greater than or equal to 0"),
    ("csv-without-path", set_key("carbon.sources", ["csv"]), WAIT, "carbon.csv.path: required"),
    ("csv-missing-file", csv_source(GOOD_TRACE), ["wait-for-window", "--params", "params.yaml"], None),
    (
        "csv-nan-intensity",
        csv_source(GOOD_TRACE.replace(",110\n", ",NaN\n", 1)),
        WAIT,
        "row 3: carbon_intensity is missing",
    ),
    (
        "csv-unsorted",
        csv_source(GOOD_TRACE.replace("2025-01-15T01:00:00Z", "2025-01-14T01:00:00Z")),
        WAIT,
        "timestamps out of order",
    ),
    (
        "csv-duplicated",
        csv_source(GOOD_TRACE.replace("2025-01-15T01:00:00Z", "2025-01-15T00:00:00Z")),
        WAIT,
        "duplicated timestamp",
    ),
    (
        "csv-bad-time",
        csv_source(GOOD_TRACE.replace("2025-01-15T05:00:00Z", "half past five")),
        WAIT,
        "cannot parse time 'half past five'",
    ),
    # numbers no stage can use, caught before the wait instead of after it (or never)
    ("seed-beyond-32-bits", set_key("seed", 2**32), WAIT, "seed: Input should be less than 4294967296"),
    ("nan-max-wait", set_key("scheduler.max_wait", float("nan")), WAIT, "scheduler.max_wait: duration nan is not a"),
    ("inf-horizon", set_key("carbon.horizon", float("inf")), WAIT, "carbon.horizon: duration inf is not a finite"),
    ("inf-duration", set_key("scheduler.expected_duration", float("inf")), WAIT, "scheduler.expected_duration: "),
    ("huge-duration", set_key("scheduler.min_chunk", 1e20), WAIT, "scheduler.min_chunk: duration 1e+20 is longer"),
    ("nan-backoff", set_key("carbon.uk.backoff", float("nan")), WAIT, "carbon.uk.backoff: duration nan is not a"),
    ("inf-mock-peak", set_key("carbon.mock.peak", float("inf")), WAIT, "carbon.mock.peak: Input should be a finite"),
    ("absurd-mock-peak", set_key("carbon.mock.peak", 1e6), WAIT, "carbon.mock.peak: Input should be less than or"),
    ("inf-learning-rate", set_key("train.learning_rate", float("inf")), WAIT, "train.learning_rate: Input should be"),
    ("now-in-9999", set_key("scheduler.now", "9999-06-01T00:00:00Z"), WAIT, "scheduler.now: time 9999-06-01T00:00:00Z"),
    ("now-a-bare-date", raw_file_edit("now: '2025-01-15T18:00:00+00:00'", "now: 2025-01-15"), WAIT, "invalid time"),
    ("millisecond-resolution", set_key("carbon.mock.resolution", 0.001), WAIT, "must be at least a minute (60s)"),
    (
        "minute-resolution-over-a-century",
        with_params(lambda p: p["scheduler"].update(max_wait="36500d") or p["carbon"]["mock"].update(resolution=60)),
        WAIT,
        "carbon.mock.resolution: 1min over 876000h10min (carbon.horizon, or scheduler.max_wait + the job) is "
        "52,560,010 points",
    ),
    ("microsecond-replans", set_key("scheduler.replan_interval", 0.001), WAIT, "must be at least a second"),
    ("microsecond-measurements", set_key("energy.measure_power_secs", 1e-6), WAIT, "greater than or equal to 0.5"),
    ("batch-beyond-int32", set_key("baseline.batch_size", 2**40), WAIT, "baseline.batch_size: Input should be less"),
    ("duplicate-key", raw_file_edit("  max_wait: 43200.0", "  max_wait: 43200.0\n  max_wait: 1h"), WAIT, "duplicate"),
    ("empty-params", raw_file(""), WAIT, "params.yaml is empty"),
    ("comments-only", raw_file("# nothing yet\n"), WAIT, "params.yaml is empty"),
    (
        "unknown-run",
        with_params(lambda p: None),
        ["train", "--params", "params.yaml", "--run", "fastest"],
        "--run: expected baseline or optimized",
    ),
]


def files_in(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


@pytest.mark.parametrize("setup, command, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(workspace, setup, command, expected):
    setup(workspace)
    if expected is None:  # the trace the params name is not there
        (workspace / "trace.csv").unlink()
        expected = "trace.csv: no such trace file"
    before = files_in(workspace)
    result = CliRunner().invoke(app, command)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr or result.output
    assert len(lines) == 1 and expected in lines[0], lines
    assert lines[0].startswith("carbon-pipe: error: ")
    assert "Traceback" not in result.output + result.stderr
    assert files_in(workspace) == before


def test_there_are_at_least_thirty_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 30



def test_every_error_gets_its_own_line(workspace):
    with_params(lambda p: (p["train"].update(epochs=0), p["baseline"].update(batch_size=-1)))(workspace)
    result = CliRunner().invoke(app, WAIT)
    assert result.exit_code == 2
    assert [line.split(": ")[3] for line in result.stderr.strip().splitlines()] == [
        "train.epochs",
        "baseline.batch_size",
    ]


@pytest.mark.parametrize("broken", ["missing-file", "corrupt-file"])
def test_bad_mnist_mirror(workspace, tmp_path_factory, monkeypatch, broken):
    require_mnist()
    mirror = tmp_path_factory.mktemp("mirror")
    for item in MNIST_RAW.iterdir():
        shutil.copy(item, mirror / item.name)
    victim = mirror / "train-labels-idx1-ubyte.gz"
    if broken == "missing-file":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:-10])
    monkeypatch.setenv("CARBON_PIPE_DATA_MIRROR", str(mirror))
    with_params(lambda p: None)(workspace)
    before = files_in(workspace)
    result = CliRunner().invoke(app, ["fetch-data", "--params", "params.yaml"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "train-labels-idx1-ubyte.gz" in line and ("missing" in line or "md5" in line)
    assert files_in(workspace) == before
