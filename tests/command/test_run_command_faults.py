"""`carbon-pipe run` against a careless or hostile command: two runs of one name, a command that reads the
environment, writes an absurd metrics file, leaves a daemon behind, or finishes where its summary cannot be written.
Real processes and CodeCarbon, as in test_run_command.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_pipe.command.reported import MAX_BYTES, read_reported
from carbon_pipe.errors import UsageError

from ..conftest import VENV_BIN, default_params, write_params
from .test_run_command import carbon_pipe, planned, run, running, summary, wait_for  # noqa: F401 (a fixture)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_second_run_of_the_same_name_is_refused_naming_the_first_which_finishes_untouched():
    Path("gated.py").write_text(
        "import pathlib, time\npathlib.Path('started').touch()\n"
        "while not pathlib.Path('go').exists(): time.sleep(0.05)\n"
    )
    first = subprocess.Popen(
        [f"{VENV_BIN}/carbon-pipe", "run", "--run", "baseline", "--", sys.executable, "gated.py"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for("started")
    for second in (
        run("baseline", "self", "0.5"),
        carbon_pipe("train", "--run", "baseline"),  # `train` of that run holds the same folder
    ):
        assert second.returncode == 1
        line = one_line(second)
        assert f"stages/train-baseline is in use by process {first.pid}" in line, line
    Path("go").touch()
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    finished = summary("baseline")
    assert finished["training_metrics"]["segments"] == 1 and len(finished["command"]["launches"]) == 1
    assert not Path("stages/train-baseline/resume").exists() and not Path("stages/train-baseline/.lock").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_credentials_are_withheld_from_the_command_and_redacted_from_what_it_reports():
    secrets = {"WATTTIME_PASSWORD": "hunter2-watttime", "ELECTRICITYMAPS_API_TOKEN": "em-token-0123456789"}
    script = (
        "import json, os, sys; json.dump(dict(os.environ), open('seen.json', 'w')); "
        "json.dump({'extra': {'echo': sys.argv[1]}}, open(os.environ['CARBON_PIPE_METRICS'], 'w'))"
    )
    result = subprocess.run(
        [f"{VENV_BIN}/carbon-pipe", "run", "--run", "mine", "--", sys.executable, "-c", script,
         "given " + secrets["WATTTIME_PASSWORD"]],
        capture_output=True, text=True, env={**os.environ, **secrets},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(Path("seen.json").read_text())
    assert not set(secrets) & set(seen) and seen["CARBON_PIPE_RUN"] == "mine"
    written = Path("metrics/mine.json").read_text()
    assert all(value not in written for value in secrets.values())
    assert json.loads(written)["command"]["extra"] == {"echo": "given [redacted]"}


@pytest.mark.parametrize(
    "text, line",
    [
        ("[" * 200_000, "not valid JSON (nested too deeply)"),
        ('{"final_accuracy": 1' + "0" * 5000 + "}", "not valid JSON (Exceeds the limit (4300 digits)"),
        ('{"final_accuracy": 90, "final_accuracy": 91}', "the key 'final_accuracy' is given twice in one object"),
        ('{"extra": {"loss": NaN}}', "extra.loss: nan is not a finite number (JSON holds no NaN or Infinity)"),
        ('{"extra": {"big": [1e999]}}', "extra.big.0: inf is not a finite number"),
        ('{"extra": ' + "[" * 40 + "]" * 40 + "}", "extra: nested more than 32 levels deep"),
        ('{"epochs": [' + ",".join(['{"epoch": 1}'] * 10_001) + "]}", "epochs: List should have at most 10000 items"),
    ],
)
def test_a_metrics_file_no_summary_can_hold_is_one_line(tmp_path, text, line):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        read_reported(path)
    assert str(raised.value).startswith(f"$CARBON_PIPE_METRICS ({path}): ") and line in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "oversized"])
def test_only_a_regular_metrics_file_of_bounded_size_is_read(tmp_path, kind):
    path = tmp_path / "metrics.json"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: an ordinary open would block forever
    elif kind == "symlink":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        with open(path, "wb") as handle:
            handle.truncate(MAX_BYTES + 1)
    with pytest.raises(UsageError) as raised:
        read_reported(path)
    expected = {"fifo": "not a regular file", "symlink": "a symlink", "folder": "not a regular file"}.get(
        kind, "bytes, more than"
    )
    assert expected in str(raised.value)


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_fifo_for_metrics_refuses_the_run_at_once_and_keeps_it_resumable():
    made = "import os; os.mkfifo(os.environ['CARBON_PIPE_METRICS'])"
    result = subprocess.run(
        [f"{VENV_BIN}/carbon-pipe", "run", "--run", "mine", "--", sys.executable, "-c", made],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "not a regular file" in one_line(result)
    assert Path("stages/train-mine/resume/progress.json").is_file()
    assert not Path("metrics/mine.json").exists() and not Path("stages/train-mine/energy_intervals.csv").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_summary_that_cannot_be_written_keeps_the_run_resumable_and_says_what_is_on_disk():
    Path("metrics/mine.json").mkdir(parents=True)  # in the summary's place: its write fails
    failed = carbon_pipe("run", "--run", "mine", "--", sys.executable, "tool.py", "self", "0.3")
    assert failed.returncode == 1
    line = one_line(failed)
    assert line.startswith(
        "carbon-pipe: error: run mine: its energy_intervals.csv, epochs.csv and CodeCarbon log are in "
        "stages/train-mine/, its summary is not: cannot write metrics/mine.json: "
    )
    assert "stages/train-mine/resume/ is kept" in line and "run the same command" in line
    assert Path("stages/train-mine/resume/progress.json").is_file()

    Path("metrics/mine.json").rmdir()
    again = carbon_pipe("run", "--run", "mine", "--", sys.executable, "tool.py", "self", "0.3")
    assert again.returncode == 0, again.stderr
    resumed = summary("mine")
    assert [launch["exit_code"] for launch in resumed["command"]["launches"]] == [0, 0]  # the first launch kept
    assert not Path("stages/train-mine/resume").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_command_that_removes_carbon_pipes_resume_folder_is_refused_in_one_line():
    """The folder holds the energy journal: measured intervals (one a second here) keep coming after it is gone."""
    # rm's own complaint is silenced: a journal write can land between its unlinks and its rmdir ("Directory not
    # empty"), which is the command's output, not carbon-pipe's; the folder is changed either way
    removes = 'rm -rf "$(dirname "$CARBON_PIPE_CHECKPOINT_DIR")" 2>/dev/null; sleep 2.5'
    result = carbon_pipe("run", "--run", "mine", "--", "sh", "-c", removes)
    assert result.returncode == 1, result.stderr
    assert one_line(result).startswith(
        "carbon-pipe: error: run mine: the command removed or changed stages/train-mine/resume/ while it ran"
    )
    left = sorted(str(path) for path in Path("stages").rglob("*") if "train-mine" in path.parts)
    assert left == [] and not Path("metrics/mine.json").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_nan_in_the_reported_extra_is_refused_before_anything_is_written():
    script = "import json, os; open(os.environ['CARBON_PIPE_METRICS'], 'w').write('{\"extra\": {\"x\": NaN}}')"
    result = carbon_pipe("run", "--run", "mine", "--", sys.executable, "-c", script)
    assert result.returncode == 2
    assert "extra.x: nan is not a finite number" in one_line(result)
    assert sorted(path.name for path in Path("stages/train-mine").iterdir()) == ["resume"]
    assert not Path("metrics/mine.json").exists()


DAEMON = """
import os, pathlib, sys, time
if os.fork() == 0:  # the classic daemon: fork, a session of its own, fork again, the middle one exits
    os.setsid()
    if os.fork() == 0:
        pathlib.Path("daemon.pid").write_text(str(os.getpid()))
        time.sleep(120)
    os._exit(0)
while not pathlib.Path("daemon.pid").exists():
    time.sleep(0.05)
"""


@pytest.mark.slow
@pytest.mark.usefixtures("planned")
def test_a_daemon_that_leaves_the_commands_group_is_ended_and_named_in_the_summary():
    Path("daemon.py").write_text(DAEMON)
    result = carbon_pipe("run", "--run", "mine", "--", sys.executable, "daemon.py")
    assert result.returncode == 0, result.stderr
    daemon = int(Path("daemon.pid").read_text())
    assert not running(daemon)
    ended = summary("mine")["command"]["escaped_ended"]
    assert [found["pid"] for found in ended] == [daemon]
    assert "left 1 process(es) running outside its process group (python" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, line",
    [
        ("x" * 300, "--run: a run name of 300 characters, more than 100"),
        ("summary", "--run: 'summary' is taken: metrics/summary.json is another stage's file"),
        ("Schedule", "--run: 'Schedule' is taken"),
        ("comparison", "--run: 'comparison' is taken"),
    ],
)
def test_a_run_name_no_file_can_carry_or_another_stages_is_refused(workspace, name, line):
    write_params(workspace, default_params())
    result = carbon_pipe("run", "--run", name, "--", "true")
    assert result.returncode == 2
    assert one_line(result).startswith(f"carbon-pipe: error: {line}")
    assert sorted(path.name for path in workspace.iterdir()) == ["params.yaml"]


@pytest.mark.refused_before_training
def test_torch_that_cannot_load_for_lack_of_memory_is_one_line(workspace):
    import resource

    write_params(workspace, default_params())
    limit = 400 * 2**20  # enough for the CLI and the params (300 MB is), not for torch's libraries

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(
        [f"{VENV_BIN}/carbon-pipe", "train", "--run", "baseline"], capture_output=True, text=True, preexec_fn=limited,
    )
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("carbon-pipe: error: ") and "too little memory for this process" in line, line
