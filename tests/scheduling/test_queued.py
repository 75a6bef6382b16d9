"""The queue's slot as wait-for-window reads it from $CARBON_PIPE_QUEUE_SLOT: read back as written, and anything
else one line naming the variable and what is wrong; the pause marker an interruptible entry's run holds between
chunks, and `queue run`'s hold on it."""

from __future__ import annotations

import os
import threading
import time

import pytest

from carbon_pipe.errors import UsageError
from carbon_pipe.scheduling.clock import SimulatedClock
from carbon_pipe.scheduling.queued import SLOT_VARIABLE, Pause, PauseMarker, QueueSlot, queue_slot

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


def test_a_pause_ends_at_its_time_or_later_while_held_and_its_marker_goes_as_the_run_resumes(tmp_path):
    clock = SimulatedClock(100.0)
    marker = PauseMarker(tmp_path / "entry" / "paused")
    assert marker.read() is None and not marker.hold(500.0)  # never paused: nothing to hold
    marker.pause(160.0)
    assert marker.read() == Pause(160.0) and marker.hold(130.0) and marker.read().until == 160.0  # never earlier
    assert marker.hold(175.0) and marker.read() == Pause(160.0, 175.0)
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds)

    marker.wait(clock.now, sleep)
    assert clock.now() == 175.0 and max(slept) <= 1.0 and marker.read() is None
    marker.pause(190.0)
    assert marker.hold(400.0) and marker.release() and marker.read() == Pause(190.0)  # let go: as planned again


def test_a_hold_cannot_land_after_the_run_decided_to_resume(tmp_path):
    """The run reads and removes its marker under the lock; a hold taken meanwhile waits, then finds nothing."""
    marker = PauseMarker(tmp_path / "paused")
    marker.pause(0.0)  # due now
    held = []
    with marker._locked():
        holder = threading.Thread(target=lambda: held.append(marker.hold(1e12)))
        holder.start()
        time.sleep(0.2)
        assert held == []  # waiting for the lock
        marker.path.unlink()  # what wait() does, under the lock, when the time has come
    holder.join(5)
    assert held == [False] and marker.read() is None


@pytest.mark.parametrize("content", ["{", '{"resume_at": NaN}', '{"resume_at": "soon"}', "folder", "fifo"])
def test_a_marker_that_cannot_be_read_is_no_pause(tmp_path, content):
    marker = PauseMarker(tmp_path / "paused")
    if content == "folder":
        marker.path.mkdir()
    elif content == "fifo":
        os.mkfifo(marker.path)  # read, it would block for ever
    else:
        marker.path.write_text(content)
    assert marker.read() is None and not marker.hold(10.0)
    assert PauseMarker(tmp_path / "gone" / "paused").read() is None


def test_a_pause_stopped_by_a_signal_leaves_no_marker(tmp_path):
    marker = PauseMarker(tmp_path / "paused")
    marker.pause(1e12)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        marker.wait(lambda: 0.0, interrupted)
    assert marker.read() is None and not (tmp_path / "paused").exists()
