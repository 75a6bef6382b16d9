"""The decision embeds the horizon it was planned on; its one reader refuses a decision an earlier version wrote
(the horizon's keys copied flat), and one a stop left without a start, each in one line naming the file."""

from __future__ import annotations

import json

import pytest

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import ArtifactError
from carbon_pipe.intensity.horizon import read_horizon
from carbon_pipe.layout import DECISION_JSON, HORIZON_JSON
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.scheduling.decision import read_decision

from ..conftest import default_params


def test_the_decision_holds_the_horizon_it_was_planned_on(workspace):
    decided = wait_for_window.run_stage(parse_params(default_params()), say=lambda line: None)
    assert read_decision().to_json() == decided.to_json()
    horizon = read_horizon()
    assert decided.horizon.to_json() == horizon.to_json() and horizon.series.source == decided.source == "mock"
    written = json.loads(DECISION_JSON.read_text())
    assert written["horizon"] == json.loads(HORIZON_JSON.read_text())
    assert "now" not in written and "source_chain" not in written  # embedded, not copied
    assert written["latest_start"] and written["wait_seconds"] == decided.start - horizon.submitted


def test_a_decision_an_earlier_version_wrote_is_one_line_saying_what_to_run(workspace):
    wait_for_window.run_stage(parse_params(default_params()), say=lambda line: None)
    record = json.loads(DECISION_JSON.read_text())
    flat = {**{key: value for key, value in record.items() if key != "horizon"}, **record["horizon"]}
    DECISION_JSON.write_text(json.dumps(flat))
    with pytest.raises(ArtifactError, match=r"decision.json: not a decision wait-for-window wrote \(horizon is "
                                            r"missing\): run wait-for-window again$"):
        read_decision()
