"""Wait-for-window: the decision on the simulated clock, the real-clock loop's bounded, re-planning wait, Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import pytest

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import Interrupted, SourceError, UsageError
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.scheduling import wait_loop
from carbon_pipe.timeutil import parse_instant
from carbon_pipe.training.run_summary import (
    CarbonMetrics,
    MemoryMetrics,
    RunSummary,
    SchedulerMetrics,
    SciMetrics,
    TrainingMetrics,
    write_run_summary,
)

from ..conftest import default_params, write_params

SUBMITTED = parse_instant("2025-01-15T18:00:00Z")


@dataclass
class RecordingClock:
    """A wall clock whose sleeps are recorded and instant: exercises the real-clock path without waiting hours."""

    current: float
    sleeps: list = field(default_factory=list)
    interrupt_after: int | None = None
    simulated = False

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.sleeps) == self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.current += seconds


def params_with(carbon=None, **scheduler):
    raw = default_params()
    raw["scheduler"].update(scheduler)
    raw["carbon"].update(carbon or {})
    return parse_params(raw)


def test_simulated_decision_picks_the_night_trough(workspace):
    params = params_with()
    decision = wait_for_window.run_stage(params, say=lambda line: None).to_json()
    assert decision["rule"] == "lowest-mean" and decision["horizon"]["clock"] == "simulated" and not decision["slept"]
    assert decision["mode"] == "flexible" and decision["duration_source"] == "params"
    start = parse_instant(decision["start"])
    assert decision["wait_seconds"] == start - SUBMITTED == 9 * 3600
    assert decision["expected_mean_intensity_g_per_kwh"] < 205 < 445 < decision["initial_intensity_g_per_kwh"]
    assert decision["chunks"] == [
        {
            "start": decision["start"],
            "end": decision["expected_end"],
            "expected_mean_intensity_g_per_kwh": decision["expected_mean_intensity_g_per_kwh"],
        }
    ]
    assert decision["horizon"]["source_chain"] == ["mock"] and decision["horizon"]["source_failures"] == []
    assert not decision["interrupted"]
    written = json.loads((workspace / "stages/wait-for-window/decision.json").read_text())
    assert written == json.loads(json.dumps(decision))
    metrics = json.loads((workspace / "metrics/schedule.json").read_text())
    assert metrics["wait_hours"] == 9.0 and metrics["rule"] == "lowest-mean" and metrics["sources_failed"] == 0
    series = pd.read_csv(workspace / "stages/wait-for-window/intensity.csv")
    assert list(series.columns) == ["start", "end", "carbon_intensity", "is_forecast"]
    assert len(series) == 96  # 48 h of 30-min points
    horizon = json.loads((workspace / "stages/wait-for-window/horizon.json").read_text())
    assert horizon["source_chain"] == ["mock"] and horizon["source_failures"] == []


def test_interruptible_decision_records_ordered_chunks(workspace):
    # Two troughs a day apart: with 36 h of slack a 4 h job can take the cleanest hours of both nights.
    params = params_with(
        mode="interruptible", min_chunk="1h", max_wait="36h", expected_duration="4h", now="2025-01-15T12:00:00Z"
    )
    decision = wait_for_window.run_stage(params, say=lambda line: None).to_json()
    chunks = decision["chunks"]
    assert len(chunks) == 2
    assert decision["mode"] == "interruptible" and decision["min_chunk_seconds"] == 3600
    assert decision["start"] == chunks[0]["start"] and decision["expected_end"] == chunks[-1]["end"]
    spans = [(parse_instant(c["start"]), parse_instant(c["end"])) for c in chunks]
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # ordered, apart
    assert sum(end - start for start, end in spans) == pytest.approx(4 * 3600)
    assert all(end - start >= 3600 for start, end in spans)
    flexible = wait_for_window.run_stage(
        params.model_copy(update={"scheduler": params.scheduler.model_copy(update={"mode": "flexible"})}),
        lambda line: None,
    ).to_json()
    assert decision["expected_mean_intensity_g_per_kwh"] <= flexible["expected_mean_intensity_g_per_kwh"] + 1e-9


def test_threshold_rule_is_recorded_with_its_threshold(workspace):
    decision = wait_for_window.run_stage(params_with(rule="threshold", threshold=300), say=lambda line: None).to_json()
    assert decision["rule"] == "threshold" and decision["threshold_g_per_kwh"] == 300
    assert decision["expected_mean_intensity_g_per_kwh"] <= 300
    assert 0 < decision["wait_seconds"] < 9 * 3600  # the first clean half-hour comes before the trough


def test_real_clock_waits_in_bounded_steps_and_never_overshoots():
    params = params_with(clock="real", rule="threshold", threshold=100, max_wait="2h", replan_interval="25min")
    clock = RecordingClock(SUBMITTED)
    waited = wait_loop.wait_for_window(params, 600.0, clock)
    assert waited.started == SUBMITTED + 2 * 3600  # threshold never met: exactly max wait
    assert clock.sleeps == [1500, 1500, 1500, 1500, 1200]  # capped at the deadline, not one interval past it
    assert waited.replans == 5  # a fresh forecast after every pause


def test_real_clock_stops_waiting_at_the_planned_start():
    params = params_with(clock="real", rule="lowest-mean", replan_interval="2h")
    clock = RecordingClock(SUBMITTED)
    waited = wait_loop.wait_for_window(params, 600.0, clock)
    assert sum(clock.sleeps) == waited.started - SUBMITTED == 9 * 3600
    assert max(clock.sleeps) <= 2 * 3600


def test_rolling_replan_follows_the_newer_forecast(workspace):
    """The forecast file changes while the job waits (the trough moves an hour earlier): the re-plan follows it."""
    trace = workspace / "forecast.csv"

    def publish(trough_hour: int) -> None:
        hours = [SUBMITTED + 3600 * h for h in range(49)]
        rows = [f"{int(t)},{100 if h == trough_hour else 400}" for h, t in enumerate(hours)]
        trace.write_text("timestamp,carbon_intensity\n" + "\n".join(rows) + "\n")

    class PublishingClock(RecordingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            publish(trough_hour=5)

    publish(trough_hour=6)
    params = params_with(
        carbon={"sources": ["csv"], "csv": {"path": str(trace)}},
        clock="real",
        replan_interval="1h",
        expected_duration="1h",
    )
    clock = PublishingClock(SUBMITTED)
    waited = wait_loop.wait_for_window(params, 3600.0, clock)
    assert waited.started == SUBMITTED + 5 * 3600  # not 6 h: the re-plan saw the trough move
    assert clock.sleeps == [3600] * 5 and waited.replans == 5


def test_ctrl_c_records_a_clean_interrupted_decision(workspace):
    params = params_with(clock="real", replan_interval="1h")
    clock = RecordingClock(SUBMITTED, interrupt_after=2)
    with pytest.raises(Interrupted, match="stopped by SIGINT") as stopped:
        wait_for_window.run_stage(params, say=lambda line: None, clock=clock)
    assert stopped.value.exit_code == 130
    decision = json.loads((workspace / "stages/wait-for-window/decision.json").read_text())
    assert decision["interrupted"] and decision["start"] is None and decision["wait_seconds"] is None
    assert decision["chunks"][0]["start"] == "2025-01-16T03:00:00.000000Z"  # what was planned when it stopped
    assert json.loads((workspace / "metrics/schedule.json").read_text())["interrupted"] is True
    assert not list((workspace / "stages/wait-for-window").glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_real_command_exits_128_plus_it_with_a_recorded_decision(workspace, signum):
    raw = default_params()
    raw["scheduler"].update(clock="real", max_wait="20h", expected_duration="10min")
    raw["carbon"]["mock"].update(
        peak_hour=(time.gmtime().tm_hour + 1) % 24, trough_hour=(time.gmtime().tm_hour + 12) % 24
    )
    raw["carbon"]["mock"]["timezone"] = "UTC"
    write_params(workspace, raw)
    process = subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", "wait-for-window"], cwd=workspace, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    seen = []
    while not any("next look in" in line for line in seen):  # planned, and now waiting for a trough hours away
        line = process.stderr.readline()
        assert line, f"wait-for-window ended before waiting: {''.join(seen)}"
        seen.append(line)
    process.send_signal(signum)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 128 + signum
    assert f"stopped by {signum.name}" in rest.strip().splitlines()[-1] and "Traceback" not in rest
    decision = json.loads((workspace / "stages/wait-for-window/decision.json").read_text())
    assert decision["interrupted"] and decision["horizon"]["clock"] == "real"


def finished_run(**training) -> RunSummary:
    """The summary of an optimized run that trained `training` (its other figures are placeholders)."""
    carbon = CarbonMetrics(
        total_emissions_kg=None, energy_consumed_kwh=None, avg_power_watts=None, mean_intensity_g_per_kwh=None,
        intensity_source="mock", intensity_source_failures=[], measured_seconds=None, by_phase={},
        energy_method="unknown", codecarbon_energy_kwh=None, energy_error="not measured",
        codecarbon_static_average_emissions_kg=None, codecarbon_country="",
    )
    sci = SciMetrics(
        per_run_g=None, per_1000_samples_g=None, operational_g=None, embodied_g=None, energy_kwh=None,
        held_idle_energy_kwh=None, held_seconds=None, samples=None, devices=1, embodied_kg_per_device=1000.0,
        lifetime_years=4.0, held_idle="not-held", method="sci-iso-21031",
    )
    progress = TrainingMetrics(
        final_accuracy=None, final_loss=None, test_loss=None, samples_per_second=None, segments=1, segment_log=[],
        resumed_at_step=None, discarded_stale_checkpoint=False, **training,
    )
    scheduled = SchedulerMetrics(
        clock="simulated", simulated_clock=True, placement="scheduled", start=0.0, wait_seconds=0.0,
        initial_intensity_g_per_kwh=100.0, training_intensity_g_per_kwh=None,
    )
    return RunSummary(
        run="optimized", training_metrics=progress, carbon_metrics=carbon, scheduler_metrics=scheduled,
        batch_size=None, gradient_accumulation_steps=None, effective_batch_size=None, sci=sci,
        memory_metrics=MemoryMetrics(peak_memory_mb=None, method="not-measured"), device=None, precision=None,
        world_size=None, dataset=None, model_class=None, compile=None, channels_last=None, allocator="not-set",
    )


def test_duration_auto_is_estimated_from_the_last_run_and_says_so(workspace):
    params = params_with(expected_duration="auto", fallback_duration="20min")
    decision = wait_for_window.run_stage(params, say=lambda line: None).to_json()
    assert decision["duration_source"] == "fallback" and decision["expected_duration_seconds"] == 1200
    assert "metrics/optimized.json is missing" in decision["duration_basis"]
    write_run_summary(finished_run(total_time_seconds=120.0, epochs=2, train_samples=1000))
    raw = default_params()
    raw["scheduler"].update(expected_duration="auto")
    raw["data"].update(train_limit=3000)
    raw["train"].update(epochs=4)
    decision = wait_for_window.run_stage(parse_params(raw), say=lambda line: None).to_json()
    assert decision["duration_source"] == "estimated"
    assert decision["expected_duration_seconds"] == pytest.approx(120.0 / 2000 * 3000 * 4)  # 60 ms/sample x 12000
    assert "metrics/optimized.json" in decision["duration_basis"]


def test_horizon_must_cover_the_wait_and_the_job(workspace):
    params = parse_params({**default_params(), "carbon": {**default_params()["carbon"], "horizon": "6h"}})
    with pytest.raises(UsageError, match="carbon.horizon: must cover"):
        wait_for_window.run_stage(params, say=lambda line: None)
    assert not (workspace / "stages").exists()


def test_a_failing_source_falls_back_and_is_recorded(workspace, unused_port):
    params = params_with(
        carbon={
            "sources": ["uk", "mock"],
            "uk": {"base_url": f"http://127.0.0.1:{unused_port}", "retries": 1, "backoff": "0s"},
        }
    )
    decision = wait_for_window.run_stage(params, say=lambda line: None).to_json()
    assert decision["horizon"]["source"] == "mock" and decision["horizon"]["source_chain"] == ["uk", "mock"]
    [failure] = decision["horizon"]["source_failures"]
    assert failure["source"] == "uk" and "cannot connect" in failure["error"] and "(2 attempts)" in failure["error"]
    horizon = json.loads((workspace / "stages/wait-for-window/horizon.json").read_text())
    assert horizon["source_failures"] == decision["horizon"]["source_failures"]


def test_with_fallback_off_a_failing_source_is_an_error_and_nothing_is_written(workspace, unused_port):
    params = params_with(
        carbon={
            "sources": ["uk", "mock"],
            "fallback": False,
            "uk": {"base_url": f"http://127.0.0.1:{unused_port}", "retries": 0},
        }
    )
    with pytest.raises(SourceError, match="uk: GET .*cannot connect"):
        wait_for_window.run_stage(params, say=lambda line: None)
    assert not (workspace / "stages").exists()


def test_a_slow_refetch_is_not_hidden_in_the_recorded_start(monkeypatch):
    """A re-plan whose fetch ran past the planned start (a source answering slowly, cut only by
    its source_timeout) recorded the start as the time the fetch began, and fetched once more before starting."""
    params = params_with(clock="real", rule="threshold", threshold=100, max_wait="2h", replan_interval="25min")
    clock = RecordingClock(SUBMITTED)
    fetch = wait_loop.look_ahead

    def slow_fetch(*args, **kwargs):
        clock.current += 40.0  # what a trickling source costs before its source_timeout gives up
        return fetch(*args, **kwargs)

    monkeypatch.setattr(wait_loop, "look_ahead", slow_fetch)
    waited = wait_loop.wait_for_window(params, 600.0, clock)
    assert waited.started == clock.current  # the recorded start is when the wait really ended
    assert waited.started - (SUBMITTED + 2 * 3600) <= 40.0  # at most the one fetch that began by the deadline


def uk_payload_around(moment: float, value: float = 300.0) -> dict:
    """The UK API's /intensity answer: 30-min slots from an hour before `moment` to five hours after, all `value`."""
    first = moment // 1800 * 1800 - 3600

    def at(epoch: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))

    slots = [(first + 1800 * i, first + 1800 * (i + 1)) for i in range(12)]
    return {"data": [{"from": at(a), "to": at(b), "intensity": {"forecast": value, "actual": None}} for a, b in slots]}


@pytest.mark.slow
@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no-fallback"])
def test_a_slow_refetch_is_cut_at_the_latest_start(fake_api, fallback):
    """On the wall clock: a re-plan whose source trickles was cut only by its source_timeout
    (here 10 s), so the job started that long past its latest start. Now the whole re-fetch gets the time left to
    the latest start; cut there, the wait keeps its plan (with fallback off too) and records why."""
    from ..fake_servers import json_answer, trickle

    fake_api.on("/intensity/", json_answer(uk_payload_around(time.time())), trickle(every=0.2, for_seconds=30))
    uk = {"base_url": fake_api.url, "timeout": "10s", "source_timeout": "10s", "retries": 0}
    params = params_with(
        {"sources": ["uk"], "uk": uk, "fallback": fallback},
        clock="real", rule="threshold", threshold=100, max_wait="2s", replan_interval="1s", expected_duration="1s",
    )
    clock = wait_loop.RealClock()
    waited = wait_loop.wait_for_window(params, 1.0, clock, pause=lambda seconds, *_: time.sleep(seconds))
    latest = waited.submitted + 2.0
    assert waited.started <= latest + 1.5, f"started {waited.started - latest:.1f} s past the latest start"
    assert len(fake_api.requests) == 2 and waited.replans == 0  # the first fetch, then the re-plan's, cut
    [failure] = waited.replan_failures
    assert re.search(
        r"uk: GET \S+: no complete answer within the time left to the latest start \S+Z \(1 attempt\); "
        r"kept the plan made before$",
        failure,
    ), failure
    assert waited.outlook.plan.start == latest  # the plan made before: above the threshold, start at the latest
