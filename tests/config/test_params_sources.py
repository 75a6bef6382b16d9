"""The source, fallback and scheduler params: each bad value is one line naming its key."""

import pytest

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import ParamsError

from ..conftest import default_params


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["carbon"].update(sources=["uk", "gridwatch"]), "carbon.sources.1: Input should be 'mock', 'uk'"),
        (lambda p: p["carbon"].update(sources=[]), "carbon.sources: Value should have at least 1 item"),
        (lambda p: p["carbon"].update(source="mock"), "carbon.source: unknown key (did you mean carbon.sources?)"),
        (
            lambda p: p["carbon"]["uk"].update(region="Atlantis"),
            "carbon.uk.region: expected national, a region id 1-17",
        ),
        (lambda p: p["carbon"]["uk"].update(region=18), "carbon.uk.region: expected national"),
        (
            lambda p: p["carbon"]["uk"].update(base_url="api.carbonintensity.org.uk"),
            "carbon.uk.base_url: expected an http(s) URL",
        ),
        (
            lambda p: p["carbon"]["electricitymaps"].update(timeout="0s"),
            "carbon.electricitymaps.timeout: Input should be greater than 0",
        ),
        (
            lambda p: p["carbon"]["watttime"].update(retries=11),
            "carbon.watttime.retries: Input should be less than or equal to 10",
        ),
        (lambda p: p["carbon"]["watttime"].update(signal_type="health_damage"), "carbon.watttime.signal_type"),
        (lambda p: p["carbon"]["watttime"].update(token="abc"), "carbon.watttime.token: unknown key"),
        (lambda p: p["carbon"].update(sources=["csv"]), "carbon.csv.path: required when the csv source is used"),
        (lambda p: p["carbon"].update(alternatives=[{"source": "uk"}]), "carbon.alternatives.0.region: Field required"),
        (
            lambda p: p["carbon"].update(alternatives=[{"source": "uk", "region": "Mars"}]),
            "carbon.alternatives.0.region: expected national",
        ),
        (lambda p: p["carbon"].update(fallback="sometimes"), "carbon.fallback: Input should be a valid boolean"),
        (
            lambda p: p["scheduler"].update(mode="pausable"),
            "scheduler.mode: Input should be 'flexible' or 'interruptible'",
        ),
        (
            lambda p: p["scheduler"].update(mode="interruptible", rule="threshold"),
            "scheduler.mode: interruptible needs rule lowest-mean",
        ),
        (
            lambda p: p["scheduler"].update(expected_duration="soon"),
            "scheduler.expected_duration: invalid duration 'soon'",
        ),
        (
            lambda p: p["scheduler"].update(expected_duration=0),
            "scheduler.expected_duration: duration must be positive or auto",
        ),
        (
            lambda p: p["scheduler"].update(replan_interval="0s"),
            "scheduler.replan_interval: must be at least a second (1s), got 0 s",
        ),
        (lambda p: p["scheduler"].update(check_interval="5min"), "did you mean scheduler.replan_interval?"),
    ],
)
def test_bad_source_and_scheduler_params_name_the_key(edit, message):
    raw = default_params()
    edit(raw)
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("params.yaml: ")


def test_good_values_are_normalised():
    raw = default_params()
    raw["carbon"].update(sources="uk")
    raw["carbon"]["uk"].update(region=" rg10 ", base_url="http://localhost:8080/api/")
    raw["scheduler"].update(expected_duration="AUTO", min_chunk="30min")
    params = parse_params(raw)
    assert params.carbon.sources == ["uk"] and params.carbon.uk.region == "RG10"
    assert params.carbon.uk.base_url == "http://localhost:8080/api" and params.scheduler.expected_duration == "auto"
    assert params.scheduler.min_chunk == 1800
