"""Kill a writer mid-write, again and again: every artifact is the old version or the new one, never torn."""

import json
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

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
