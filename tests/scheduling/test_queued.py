"""The queue's slot as wait-for-window reads it from $CARBON_PIPE_QUEUE_SLOT: read back as written, and anything
else one line naming the variable and what is wrong."""

from __future__ import annotations

import pytest

from carbon_pipe.errors import UsageError
from carbon_pipe.scheduling.queued import SLOT_VARIABLE, QueueSlot, queue_slot

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
