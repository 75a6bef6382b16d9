"""The real thing: `dvc repro` of the five stages in a fresh git repo, on a tiny subset."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from carbon_pipe.timeutil import parse_instant

from ..conftest import REPO, tiny_params, write_params

pytestmark = pytest.mark.slow


def dvc(project, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def repro_in_background(project, stage):
    """`dvc repro <stage>` in its own process group, which the test then signals as a terminal would."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", stage], cwd=project, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def git(project, *args):
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory, request):
    from ..conftest import MNIST_RAW, VENV_BIN, require_mnist

    require_mnist()
    folder = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "carbon_pipe", folder / "carbon_pipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "custom_models", folder / "custom_models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", folder)
    shutil.copytree(REPO / "data", folder / "data")  # data.path's default: fetch-data's dep in dvc.yaml
    shutil.copy(REPO / ".dvcignore", folder)
    shutil.copytree(REPO / ".dvc", folder / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    write_params(folder, tiny_params())
    git(folder, "init", "-q")
    git(folder, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", VENV_BIN + ":" + os.environ["PATH"])
    mp.setenv("CARBON_PIPE_DATA_MIRROR", str(MNIST_RAW))
    request.addfinalizer(mp.undo)
    dvc(folder, "repro")
    return folder


def test_repro_writes_every_metric_and_is_clean(project):
    for name in ("baseline", "optimized", "comparison", "schedule", "summary"):
        assert json.loads((project / "metrics" / f"{name}.json").read_text())
    assert "up to date" in dvc(project, "status").stdout.lower() or dvc(project, "status").stdout.strip() in ("", "{}")


def test_dvc_plots_show_draws_the_four_plots_from_the_run(project):
    plots = json.loads(dvc(project, "plots", "show", "--json").stdout)["data"]
    fields = {title: {row["field"] for row in plot[0]["content"]["data"]["values"]} for title, plot in plots.items()}
    assert fields == {
        "Grid carbon intensity and when each run sat (gCO2/kWh)": {"grid", "baseline_run", "optimized_window"},
        "Cumulative emissions (gCO2)": {"baseline_g", "optimized_g"},
        "Loss per epoch": {"baseline_train_loss", "optimized_train_loss", "baseline_test_loss", "optimized_test_loss"},
        "Test accuracy per epoch (%)": {"baseline_test_accuracy", "optimized_test_accuracy"},
    }
    dvc(project, "plots", "show", "-o", "plots-html")
    html = (project / "plots-html" / "index.html").read_text()
    assert all(title in html for title in fields)
    shutil.rmtree(project / "plots-html")


def test_second_repro_does_nothing(project):
    output = dvc(project, "repro").stdout
    assert "Running stage" not in output and "didn't change, skipping" in output


def test_numbers_re_derive_from_the_artifacts(project):
    for run in ("baseline", "optimized"):
        rows = pd.read_csv(project / f"stages/train-{run}/energy_intervals.csv")
        summary = json.loads((project / f"metrics/{run}.json").read_text())
        assert rows["emissions_kg"].sum() == pytest.approx(summary["carbon_metrics"]["total_emissions_kg"], rel=1e-12)
        assert (rows["emissions_kg"] - rows["energy_kwh"] * rows["intensity_g_per_kwh"] / 1000).abs().max() < 1e-18
    # The schedule effect, recomputed by hand: the optimized run's training intervals moved to the baseline's start
    # (the run in one go from there, its profile first) and charged from intensity.csv with plain loops (no
    # carbon_pipe code involved).
    grid = [(parse_instant(r.start), parse_instant(r.end), r.carbon_intensity)
            for r in pd.read_csv(project / "stages/wait-for-window/intensity.csv").itertuples()]
    optimized_rows = pd.read_csv(project / "stages/train-optimized/energy_intervals.csv")
    assert optimized_rows["phase"].iloc[0] == "profile" and set(optimized_rows["phase"]) == {"profile", "training"}
    shift = parse_instant(json.loads((project / "metrics/baseline.json").read_text())["scheduler_metrics"]["start"]) - \
        min(parse_instant(start) for start in optimized_rows["start"])
    at_baseline_kg = 0.0
    training = optimized_rows[optimized_rows["phase"] == "training"]
    for row in training.itertuples():
        start, end = parse_instant(row.start) + shift, parse_instant(row.end) + shift
        overlap = [(min(end, b) - max(start, a), value) for a, b, value in grid if min(end, b) > max(start, a)]
        mean = sum(length * value for length, value in overlap) / sum(length for length, _ in overlap)
        at_baseline_kg += row.energy_kwh * mean / 1000
    comparison = json.loads((project / "metrics/comparison.json").read_text())
    split, savings = comparison["decomposition"], comparison["carbon_savings"]
    training_kg = training["emissions_kg"].sum()
    profile_kg = optimized_rows.loc[optimized_rows["phase"] == "profile", "emissions_kg"].sum()
    assert split["schedule_effect_kg"] == pytest.approx(at_baseline_kg - training_kg, rel=1e-6)
    assert split["configuration_effect_naive_kg"] == pytest.approx(
        savings["baseline_emissions_kg"] - at_baseline_kg, rel=1e-6
    )
    assert split["profiling_overhead_kg"] == pytest.approx(profile_kg, rel=1e-12) and profile_kg > 0
    assert savings["reduction_kg"] == pytest.approx(
        split["schedule_effect_kg"] + split["configuration_effect_naive_kg"] - profile_kg, rel=1e-9
    )
    assert split["schedule_effect_kg"] > 0  # 18:00 peak vs 03:00 trough of the default curve


def test_changing_optimized_accumulation_reruns_only_what_uses_it(project):
    params = tiny_params()
    params["optimized"].update(batch_size=8, gradient_accumulation_steps=8)
    write_params(project, params)
    try:
        status = dvc(project, "status").stdout
        assert "train-optimized" in status and "train-baseline" not in status and "wait-for-window" not in status
        output = dvc(project, "repro").stdout
        ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
        assert ran == {"train-optimized", "compare"}
        assert "gradient_accumulation_steps" in dvc(project, "params", "diff", "--all").stdout
        assert json.loads((project / "metrics/optimized.json").read_text())["gradient_accumulation_steps"] == 8
    finally:
        write_params(project, tiny_params())


def test_a_custom_model_trains_through_dvc_by_changing_params_only(project):
    params = tiny_params()
    params["model"].update({"class": "custom_models.mlp:MLP", "kwargs": {"hidden": 64}})
    write_params(project, params)
    try:
        status = dvc(project, "status").stdout
        assert "train-baseline" in status and "train-optimized" in status
        assert "fetch-data" not in status and "wait-for-window" not in status
        dvc(project, "repro")
        for run in ("baseline", "optimized"):
            summary = json.loads((project / f"metrics/{run}.json").read_text())
            assert (
                summary["model_class"] == "custom_models.mlp:MLP" and summary["training_metrics"]["final_accuracy"] > 50
            )
        assert "changed" not in dvc(project, "status").stdout  # imported bytecode does not dirty the stage
    finally:
        write_params(project, tiny_params())


def test_an_interrupted_dvc_repro_resumes_where_it_stopped(project):
    """Ctrl-C reaches the whole process group; dvc ignores it while the stage runs, the stage checkpoints and
    stops, and the next `dvc repro` resumes from that checkpoint, which dvc did not delete (not an out)."""
    params = tiny_params()
    params["baseline"].update(batch_size=4)  # 128 steps: time to interrupt it
    params["train"].update(checkpoint_every=2)
    write_params(project, params)
    resume = project / "stages/train-baseline/resume"
    try:
        repro = repro_in_background(project, "train-baseline")
        deadline = time.monotonic() + 120
        while not (resume / "checkpoint.pt").exists():
            assert repro.poll() is None, repro.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(repro.pid, signal.SIGINT)
        _, stderr = repro.communicate(timeout=120)
        assert repro.returncode != 0 and "stopped by SIGINT" in stderr
        stopped_at = torch.load(resume / "checkpoint.pt", weights_only=True)["step"]
        assert 0 < stopped_at < 128

        dvc(project, "repro", "train-baseline")
        summary = json.loads((project / "metrics/baseline.json").read_text())
        assert summary["training_metrics"]["resumed_at_step"] == stopped_at
        assert summary["training_metrics"]["segments"] == 2
        assert set(pd.read_csv(project / "stages/train-baseline/energy_intervals.csv")["segment"]) == {0, 1}
        assert not resume.exists()
    finally:
        write_params(project, tiny_params())


def test_an_interruptible_plan_trains_in_its_chunks_through_dvc(project):
    """Two nights within reach: the 4 h job is planned as two chunks and train-optimized follows them."""
    dvc(project, "repro")  # up to date with the default tiny params first (an earlier test may have left it not)
    params = tiny_params()
    params["scheduler"].update(mode="interruptible", max_wait="36h", expected_duration="4h")
    write_params(project, params)
    try:
        status = dvc(project, "status").stdout
        assert "wait-for-window" in status and "train-optimized" in status and "train-baseline" not in status
        output = dvc(project, "repro").stdout
        ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
        assert ran == {"wait-for-window", "train-optimized", "compare"}  # the baseline's placement did not move
        decision = json.loads((project / "stages/wait-for-window/decision.json").read_text())
        chunks = json.loads((project / "metrics/optimized.json").read_text())["scheduler_metrics"]["chunks"]
        assert len(decision["chunks"]) == len(chunks) == 2
        rows = pd.read_csv(project / "stages/train-optimized/energy_intervals.csv")
        starts = {segment: parse_instant(group["start"].min()) for segment, group in rows.groupby("segment")}
        profile_end = parse_instant(rows[rows["phase"] == "profile"]["end"].max())
        # The profile opens the first chunk's window (segment 0); the first chunk trains when it ends, the second at
        # its planned start; each chunk's recorded start is its first interval's.
        assert starts[0] == parse_instant(decision["chunks"][0]["start"])
        assert starts[1] == parse_instant(chunks[0]["start"]) == pytest.approx(profile_end, abs=1e-3)
        assert starts[2] == parse_instant(chunks[1]["start"]) == parse_instant(decision["chunks"][1]["start"])
        # In one go from 18:00 the whole training sits in the 30-min point of the evening peak, whatever its pauses.
        grid = pd.read_csv(project / "stages/wait-for-window/intensity.csv")
        peak = grid[grid["start"].map(parse_instant) == parse_instant("2025-01-15T18:00:00Z")][
            "carbon_intensity"
        ].item()
        split = json.loads((project / "metrics/comparison.json").read_text())["decomposition"]
        trained = rows[rows["phase"] == "training"]
        assert split["optimized_training_at_baseline_start_kg"] == pytest.approx(
            trained["energy_kwh"].sum() * peak / 1000, rel=1e-9
        )
        assert "up to date" in dvc(project, "status").stdout.lower() or dvc(project, "status").stdout.strip() in (
            "",
            "{}",
        )
    finally:
        write_params(project, tiny_params())


def test_a_resumed_wait_keeps_the_baseline_at_the_first_submission(project):
    """`dvc repro` killed mid-wait: the rerun deletes the stage's outs but resumes the wait from its state file (not
    an out), so the baseline, placed at the submission time, sits at the first attempt's, not the rerun's."""
    t0 = time.time()
    (project / "trace.csv").write_text(
        "timestamp,carbon_intensity\n"
        + "".join(f"{t:.3f},{v}\n" for t, v in [(t0 - 10, 400), (t0 + 20, 100), (t0 + 21, 400), (t0 + 300, 400)])
    )
    params = tiny_params()
    params["carbon"].update(sources=["csv"], csv={**params["carbon"]["csv"], "path": "trace.csv"}, horizon="5min")
    params["scheduler"].update(clock="real", max_wait="30s", expected_duration="1s", replan_interval="1s")
    write_params(project, params)
    state = project / "stages/wait-for-window/resume/wait.json"
    try:
        repro = repro_in_background(project, "wait-for-window")
        seen = []
        while not any("next look in" in line for line in seen):  # planned: now waiting for the dip at t0+20
            line = repro.stderr.readline()
            assert line, f"dvc repro ended before waiting: {''.join(seen)}"
            seen.append(line)
        looked = parse_instant(seen[-1].split(": intensity")[0])  # the first look is at submission
        os.killpg(repro.pid, signal.SIGKILL)
        repro.communicate(timeout=30)
        time.sleep(max(0.0, t0 + 5 - time.time()))  # so that a fresh submission would be seconds later

        dvc(project, "repro", "train-baseline")  # reruns wait-for-window, resumed, then the baseline
        placed = json.loads((project / "metrics/baseline.json").read_text())["scheduler_metrics"]
        assert parse_instant(placed["start"]) == pytest.approx(looked, abs=1.0)  # the first attempt's submission
        assert placed["placement"].startswith("submission time")
        decision = json.loads((project / "stages/wait-for-window/decision.json").read_text())
        assert decision["horizon"]["now"] == placed["start"] and decision["resumed_wait"]["attempts"] == 2
        assert (
            parse_instant(decision["start"])
            <= parse_instant(decision["latest_start"])
            == parse_instant(decision["horizon"]["now"]) + 30
        )
        assert not state.exists()
    finally:
        write_params(project, tiny_params())
        (project / "trace.csv").unlink(missing_ok=True)
