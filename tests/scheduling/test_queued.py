"""The queue's slot as wait-for-window reads it from $CARBON_PIPE_QUEUE_SLOT: read back as written, and anything
else one line naming the variable and what is wrong."""

from __future__ import annotations

import pytest

from carbon_pipe.errors import UsageError
from carbon_pipe.scheduling.clock import SimulatedClock
from carbon_pipe.scheduling.queued import SLOT_VARIABLE, PauseMarker, QueueSlot, queue_slot

SLOT = QueueSlot("lr-1", 0.0, 5.0, 60.0, 1.5, 2, "milp", 1.0)
WRITTEN = SLOT.environment()[SLOT_VARIABLE]


def test_a_slot_is_read_back_as_the_queue_wrote_it():
    assert queue_slot(SLOT.environment()) == SLOT
    assert queue_slot({}) is None


@pytest.mark.parametrize("text, says", [
    ("{", "not JSON"),
    ('{"entry": "lr-1"}', "arrival is missing"),
    (WRITTEN.replace('"workers": 2', '"workers": "2"'), "workers is '2', not a whole number"),
    (WRITTEN.replace('"start": 5.0', '"start": 70.0'), "entry lr-1: its slot must start after arrival"),
])
def test_a_slot_the_queue_did_not_write_is_one_line(text, says):
    with pytest.raises(UsageError) as raised:
        queue_slot({SLOT_VARIABLE: text})
    assert str(raised.value).startswith(f"${SLOT_VARIABLE}: ") and says in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1


def test_chunks_out_of_order_or_outside_the_slot_are_one_line():
    chunked = QueueSlot("lr-1", 0.0, 5.0, 60.0, 1.5, 2, "milp", 1.0, ((5.0, 20.0), (40.0, 60.0)), "/tmp/p")
    assert queue_slot(chunked.environment()) == chunked
    for chunks in (((5.0, 20.0), (10.0, 60.0)), ((5.0, 20.0), (40.0, 50.0)), ((5.0, 5.0), (40.0, 60.0))):
        text = chunked.environment()[SLOT_VARIABLE].replace(
            '"chunks": [[5.0, 20.0], [40.0, 60.0]]', f'"chunks": {[list(chunk) for chunk in chunks]}'
        )
        with pytest.raises(UsageError, match="entry lr-1: its chunks must be in order"):
            queue_slot({SLOT_VARIABLE: text})


def test_a_pause_marker_is_held_until_its_time_moved_on_only_later_and_removed_as_the_run_resumes(tmp_path):
    clock = SimulatedClock(100.0)
    marker = PauseMarker(tmp_path / "entry" / "paused")
    assert marker.resume_at() is None and not marker.postpone(500.0)  # never paused: nothing to move
    marker.pause(160.0)
    assert marker.resume_at() == 160.0
    assert marker.postpone(130.0) and marker.resume_at() == 160.0  # never earlier
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if clock.now() + seconds >= 160.0:
            marker.postpone(175.0)  # the queue holds it once, just before it would resume
        clock.sleep(seconds)

    marker.wait(clock.now, sleep)
    assert clock.now() == 175.0 and max(slept) <= 1.0 and marker.resume_at() is None


def test_a_pause_stopped_by_a_signal_leaves_no_marker(tmp_path):
    marker = PauseMarker(tmp_path / "paused")
    marker.pause(1e12)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        marker.wait(lambda: 0.0, interrupted)
    assert marker.resume_at() is None and not (tmp_path / "paused").exists()
