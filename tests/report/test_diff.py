"""carbon-pipe diff: two revisions' key metrics, differences between runs of the same params and code marked as
run-to-run noise, and energy/time differences inside the measured noise band not shown as changes. Also the report's
wording of a verdict. Real git, in a throwaway repository; the command runs in this process."""

import contextlib
import json
import subprocess

import pytest
import yaml

from carbon_pipe.report.diff import SAME_INPUTS, classify
from carbon_pipe.report.sections import savings_section
from carbon_pipe.report.summaries import Comparison, KeyMetrics


def git(folder, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def commit(folder, params: dict, metrics: dict, code: str, message: str) -> str:
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "metrics").mkdir(exist_ok=True)
    (folder / "metrics" / "summary.json").write_text(json.dumps(metrics))
    (folder / "carbon_pipe").mkdir(exist_ok=True)
    (folder / "carbon_pipe" / "module.py").write_text(code)
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "test@example.com")
    git(tmp_path, "config", "user.name", "test")
    first = {"baseline_energy_wh": 0.250, "baseline_time_s": 50.0, "co2_reduction_pct": 50.0,
             "energy_noise_pct": 10.0, "time_noise_pct": 20.0, "baseline_accuracy_pct": 99.0}
    a = commit(tmp_path, {"train": {"epochs": 3}}, first, "x = 1\n", "first run")
    rerun = {**first, "baseline_energy_wh": 0.400, "baseline_time_s": 300.0, "co2_reduction_pct": 45.0}
    b = commit(tmp_path, {"train": {"epochs": 3}}, rerun, "x = 1\n", "the same, run again")
    changed = {**rerun, "baseline_energy_wh": 0.420, "baseline_time_s": 150.0}
    c = commit(tmp_path, {"train": {"epochs": 4}}, changed, "x = 1\n", "one more epoch")
    return tmp_path, a, b, c


def diff_command(folder, *args: str):
    """`carbon-pipe diff` in `folder`, in this process (its git calls are real processes)."""
    from typer.testing import CliRunner

    from carbon_pipe.cli import app

    with contextlib.chdir(folder):
        return CliRunner().invoke(app, ["diff", *args])


def test_same_params_and_code_mark_every_difference_as_run_to_run_noise(history):
    folder, a, b, _ = history
    result = diff_command(folder, a, b, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["same_params"] and report["same_code"]
    notes = {row["metric"]: row["note"] for row in report["metrics"]}
    assert notes["baseline_energy_wh"] == notes["baseline_time_s"] == notes["co2_reduction_pct"] == SAME_INPUTS
    assert notes["baseline_accuracy_pct"] == "same"
    text = diff_command(folder, a, b).stdout
    assert "params same, code same: every difference below is run-to-run noise" in text.splitlines()[0]


def test_with_params_changed_a_difference_inside_the_noise_band_is_not_a_change(history):
    folder, _, b, c = history
    report = json.loads(diff_command(folder, b, c, "--json").stdout)
    assert not report["same_params"] and report["same_code"]
    rows = {row["metric"]: row for row in report["metrics"]}
    assert rows["baseline_energy_wh"]["note"] == "within noise (+-10.0 %)"  # +5 %, inside its 10 % band
    assert rows["baseline_energy_wh"]["delta"] == pytest.approx(0.02)
    assert rows["baseline_time_s"]["note"] == "change"  # -50 %, outside its 20 % band


def test_code_changed_is_not_the_same_inputs_and_a_bad_revision_is_one_line(history):
    folder, a, _, _ = history
    (folder / "carbon_pipe" / "module.py").write_text("x = 2\n")  # the working tree's code differs from a's
    report = json.loads(diff_command(folder, a, "workspace", "--json").stdout)
    assert not report["same_code"]
    bad = diff_command(folder, "no-such-rev", a)
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.strip().startswith("carbon-pipe: error: no-such-rev:metrics/summary.json: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_without_a_band_only_equal_values_are_the_same():
    a = KeyMetrics(baseline_energy_wh=1.0, baseline_accuracy_pct=2.0)
    b = KeyMetrics(baseline_energy_wh=1.01, baseline_accuracy_pct=2.0)
    notes = {row.metric: row.note for row in classify(a, b, same_inputs=False)}
    assert (notes["baseline_accuracy_pct"], notes["baseline_energy_wh"]) == ("same", "change")
    assert "energy_noise_pct" not in notes  # a band, not a metric


@pytest.mark.parametrize(("content", "says"), [
    ("{", "not valid JSON"),
    ('{"baseline_energy_wh": "a lot"}', "baseline_energy_wh is 'a lot', not a number"),
    ('{"energy_kwh": 1.0}', "energy_kwh is not a key of this file"),
])
def test_a_summary_that_compare_did_not_write_is_one_line_naming_it(history, content, says):
    folder, a, _, _ = history
    (folder / "metrics" / "summary.json").write_text(content)
    bad = diff_command(folder, a, "workspace")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.startswith("carbon-pipe: error: metrics/summary.json: ") and says in bad.stderr
    assert "dvc repro compare" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def savings_result(verdict: str, text: str) -> Comparison:
    from carbon_pipe.report.summaries import CarbonSavings, EffectSplit

    split = {key: 0.0 for key in ("schedule_effect_kg", "configuration_effect_kg", "remainder_kg",
                                  "profiling_overhead_kg", "held_idle_kg", "configuration_effect_naive_kg")}
    split.update({key.replace("_kg", "_percentage"): 1.0 for key in list(split)})
    split.update(configuration_effect_kg=-0.0004, configuration_effect_kg_ci95=[-0.0021, 0.0013], verdict=verdict,
                 verdict_text=text, schedule_effect_kg_ci95=None, configuration_ratio=None,
                 configuration_ratio_ci95=None, optimized_training_at_baseline_start_kg=0.0,
                 optimized_training_kg=0.0, method="baseline-start-shift+paired-profile")
    savings = CarbonSavings(baseline_emissions_kg=0.01, optimized_emissions_kg=0.009, reduction_kg=0.001,
                            reduction_percentage=10.0)
    # only what the savings section reads: the runs' other sections are not needed to render it
    return Comparison.model_construct(comparable=True, carbon_savings=savings, decomposition=EffectSplit(**split))


def test_the_report_states_no_difference_as_its_interval_without_a_signed_effect_or_bold():
    text = "the optimized configuration against the baseline, energy per sample: no measurable difference: within"
    lines = savings_section(savings_result("no measurable difference", text))
    assert not any("**Configuration verdict**" in line for line in lines)
    assert f"Configuration verdict (paired profile, energy per training sample): {text}." in lines
    row = next(line for line in lines if line.startswith("| *how* it trained"))
    assert row == ("| *how* it trained (configuration effect, paired profile) | no measurable difference: between "
                   "-2.1 and 1.3 | n/a |")
    shown = savings_section(savings_result("less", "less: ratio 0.9 [95 % interval 0.8, 0.97]"))
    assert any(line.startswith("| *how* it trained (configuration effect, paired profile) | -0.4 [") for line in shown)
