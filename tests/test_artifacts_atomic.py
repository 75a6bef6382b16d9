"""Kill a writer mid-write, again and again: every artifact is the old version or the new one, never torn. And a
folder that cannot be written: one line naming the file, nothing half-written."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from .conftest import default_params, write_params

WRITER = """
import sys, torch, pandas as pd
from carbon_pipe.artifacts import save_torch, write_csv, write_json
big = list(range(200_000))
version = 0
while True:
    version += 1
    write_json("out/state.json", {"version": version, "payload": big})
    write_csv("out/rows.csv", pd.DataFrame({"version": [version] * 50_000, "value": range(50_000)}))
    save_torch("out/checkpoint.pt", {"version": version, "weights": torch.full((400_000,), float(version))})
    print(version, flush=True)
"""


def read_all(folder):
    state = json.loads((folder / "state.json").read_text())
    rows = pd.read_csv(folder / "rows.csv")
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert len(state["payload"]) == 200_000
    assert len(rows) == 50_000 and rows["version"].nunique() == 1
    assert checkpoint["weights"].eq(float(checkpoint["version"])).all()
    return state["version"], int(rows["version"][0]), checkpoint["version"]


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_a_torn_file(tmp_path):
    rng = random.Random(7)
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        writer.stdout.readline()  # one full round written: every file exists
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        versions = read_all(tmp_path / "out")
        # Files are written in order, so a later file is never newer than an earlier one.
        assert versions[0] >= versions[1] >= versions[2] >= 1


WRITE_ONE = """
import sys
from carbon_pipe.artifacts import write_json
from carbon_pipe.errors import ArtifactError
try:
    write_json(sys.argv[1], {"version": 2})
except ArtifactError as exc:
    print(exc)
"""


def unprivileged() -> list[str]:
    """A command prefix under which a read-only folder is read-only: root ignores permissions unless it gives up
    CAP_DAC_OVERRIDE (setpriv drops it from what the command may hold)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no way to make a folder read-only to the writer")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def write_as_a_user(target) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*unprivileged(), sys.executable, "-c", WRITE_ONE, str(target)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("where", ["in-the-folder", "in-a-new-subfolder"])
def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path, where):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "state.json").write_text('{"version": 1}\n')
    (folder / ".state.json.abc123.tmp").write_text("left by a writer that was killed")
    folder.chmod(0o555)
    target = folder / "state.json" if where == "in-the-folder" else folder / "new" / "state.json"
    try:
        done = write_as_a_user(target)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    kept = "the previous version is kept" if where == "in-the-folder" else "nothing was written"
    assert done.stdout.strip() == f"cannot write {target}: Permission denied; {kept}"
    assert (folder / "state.json").read_text() == '{"version": 1}\n'
    assert sorted(p.name for p in folder.iterdir()) == [".state.json.abc123.tmp", "state.json"]  # nothing added


@pytest.mark.slow
def test_a_command_whose_output_folder_is_read_only_says_so_in_one_line(workspace):
    write_params(workspace, default_params())
    stage = workspace / "stages" / "wait-for-window"
    stage.mkdir(parents=True)
    stage.chmod(0o555)
    try:
        done = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "carbon_pipe.cli", "wait-for-window"],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stage.chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert re.fullmatch(
        r"carbon-pipe: error: cannot write stages/wait-for-window/\S+: Permission denied; nothing was written", line
    ), line
    assert not [path for path in stage.rglob("*")]
