"""Every HTTP answer has a deadline and a size cap, against real misbehaving servers on 127.0.0.1:
one that trickles a byte at a time (each read in time, the answer never complete), one that never finishes its
status line, retries that would add up, a gzip bomb, a body that is simply too large.

The time bounds are hang checks, not speed goals: before the deadline existed each of these ran for the whole
trickle (15 s and more) or grew to gigabytes."""

import json
import re
import subprocess
import sys
import time

import pytest

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import get_source
from carbon_pipe.timeutil import parse_instant

from ...conftest import default_params, write_params
from ...fake_servers import gzip_bomb, json_answer, trickle

START = parse_instant("2024-03-01T12:00:00Z")
END = START + 2 * 3600
MARGIN = 0.75  # seconds past a limit that a test tolerates: a thread to wake, a socket to close
CLI_START_MARGIN = 10.0  # a fresh process imports pandas, numpy, pydantic first


REQUEST_TIMEOUT = 0.4  # seconds: long enough for every read of a trickle (one byte each 0.1 s) to be in time

def uk_source(url: str, **settings):
    section = {"base_url": url, "timeout": f"{REQUEST_TIMEOUT}s", "retries": 0, "backoff": "0.01s", **settings}
    return get_source(CarbonParams.model_validate({"sources": ["uk"], "uk": section}))


def failure_and_seconds(source) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        source.series(START, END)
    return str(caught.value), time.monotonic() - started


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status-line"])
def test_a_trickling_answer_ends_at_the_request_timeout(fake_api, headers_too):
    fake_api.on("/intensity/", trickle(every=0.1, for_seconds=15, headers_too=headers_too))
    error, seconds = failure_and_seconds(uk_source(fake_api.url))
    assert seconds < REQUEST_TIMEOUT + MARGIN
    assert re.fullmatch(
        r"uk: GET http://127\.0\.0\.1:\d+/intensity/\S+: no complete answer within 0\.4 s \(1 attempt\)", error
    ), error


def test_the_retries_of_one_source_share_its_source_timeout(fake_api):
    fake_api.on("/intensity/", trickle(every=0.1, for_seconds=15))
    error, seconds = failure_and_seconds(uk_source(fake_api.url, retries=5, source_timeout="1s"))
    assert seconds < 1 + MARGIN  # not 6 attempts x 0.4 s
    assert "no complete answer within source_timeout 1 s" in error and 2 <= len(fake_api.requests) <= 3


def test_a_retry_wait_past_the_source_timeout_is_not_waited(httpserver):
    httpserver.expect_request("/intensity/2024-03-01T12:00Z/fw48h").respond_with_data(
        "", status=429, headers={"Retry-After": "5"}
    )
    sleeps: list = []
    section = {"base_url": httpserver.url_for("").rstrip("/"), "retries": 2, "source_timeout": "1s"}
    source = get_source(CarbonParams.model_validate({"sources": ["uk"], "uk": section}), sleep=sleeps.append)
    with pytest.raises(
        SourceError, match=r"rate limited \(429\); waiting 5 s would pass source_timeout 1 s \(1 attempt\)"
    ):
        source.series(START, END)
    assert sleeps == []


MEMORY_PROBE = """
import resource, sys
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import get_source
from carbon_pipe.config.carbon import CarbonParams
uk = {"base_url": sys.argv[1], "retries": 0, "timeout": "60s"}
carbon = CarbonParams.model_validate({"sources": ["uk"], "uk": uk})
source = get_source(carbon)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    source.series(1709294400.0, 1709301600.0)
except SourceError as exc:
    print(exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # KiB on Linux
"""


@pytest.mark.slow
def test_a_gzip_bomb_is_cut_while_it_inflates(fake_api):
    fake_api.on("/intensity/", gzip_bomb(decoded_mb=300))
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, fake_api.url], capture_output=True, text=True, timeout=300
    )
    error, grown_kib = probe.stdout.strip().splitlines()
    assert re.fullmatch(
        r"uk: GET http://127\.0\.0\.1:\d+/intensity/\S+: response larger than 4 MB \(max_response_mb\)", error
    )
    assert int(grown_kib) < 32 * 1024, f"peak memory grew by {int(grown_kib) / 1024:.0f} MB"


def test_a_plain_body_over_the_cap_is_refused(fake_api):
    slots = [{"from": "2024-03-01T12:00Z", "to": "2024-03-01T12:30Z", "intensity": {"forecast": 100}}] * 200
    fake_api.on("/intensity/", json_answer({"data": slots}))
    error, _ = failure_and_seconds(uk_source(fake_api.url, max_response_mb=0.01))
    assert error.endswith("response larger than 0.01 MB (max_response_mb)")
    uk_source(fake_api.url, max_response_mb=1).series(START, END)  # the same answer under a cap it fits


def carbon_pipe(folder, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", *args], cwd=folder, capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - started


@pytest.mark.slow
def test_the_intensity_command_ends_at_the_timeout_then_falls_back(workspace, fake_api):
    fake_api.on("/intensity/", trickle(every=0.5, for_seconds=90))
    raw = default_params()
    raw["carbon"]["uk"].update(timeout="2s", retries=0)
    write_params(workspace, raw)

    alone, seconds = carbon_pipe(workspace, "intensity", "--source", "uk", "--base-url", fake_api.url)
    assert alone.returncode == 1 and seconds < 2 + CLI_START_MARGIN, alone.stderr
    [line] = alone.stderr.strip().splitlines()
    assert re.fullmatch(
        r"carbon-pipe: error: every source failed: uk: GET \S+: no complete answer within 2 s \(1 attempt\)", line
    )

    chained, seconds = carbon_pipe(workspace, "intensity", "--json", "--source", "uk,mock", "--base-url", fake_api.url)
    assert chained.returncode == 0 and seconds < 2 + CLI_START_MARGIN, chained.stderr
    shown = json.loads(chained.stdout)
    assert shown["source"] == "mock" and "no complete answer within 2 s" in shown["source_failures"][0]["error"]


def test_a_source_gets_no_more_than_the_time_until_it_is_given(fake_api):
    """A re-plan's `until`: it cuts a source before its source_timeout, and a source whose time is
    already spent is not tried; local sources take the option and ignore it."""
    from carbon_pipe.errors import FetchCutShort
    from carbon_pipe.intensity.sources import FetchDeadline

    fake_api.on("/intensity/", trickle(every=0.1, for_seconds=15))
    section = {"base_url": fake_api.url, "timeout": "10s", "source_timeout": "10s", "retries": 0}
    carbon = CarbonParams.model_validate({"sources": ["uk", "mock"], "uk": section})
    started = time.monotonic()
    with pytest.raises(FetchCutShort, match=r"no complete answer within the time left to X \(1 attempt\)$"):
        get_source(carbon, "uk", until=FetchDeadline.after(0.4, "the time left to X")).series(START, END)
    assert time.monotonic() - started < 0.4 + MARGIN
    with pytest.raises(FetchCutShort, match=r"uk: GET \S+: not tried, the time left to X spent"):
        get_source(carbon, "uk", until=FetchDeadline.after(-1.0, "the time left to X")).series(START, END)
    assert len(fake_api.requests) == 1
    passed = FetchDeadline.after(-1.0, "the time left to X")
    assert get_source(carbon, "mock", until=passed).series(START, END).end >= END
