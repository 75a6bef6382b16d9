"""The queue's files under .dvc/tmp, and reading params.yaml while DVC rewrites it."""

from __future__ import annotations

import threading
import time

import pytest
import zc.lockfile

from carbon_pipe.queue.store import dvc_workspace_settled


def test_params_are_read_only_once_dvc_has_released_its_repository_lock(tmp_path, monkeypatch):
    """`dvc exp run --temp -S` rewrites params.yaml under DVC's repository lock: a queue command waits for it, and
    DVC (its own lock backend, zc.lockfile) cannot take it while the queue reads."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc/tmp").mkdir(parents=True)
    held = zc.lockfile.LockFile(".dvc/tmp/lock")  # as DVC holds it while it stashes an experiment
    entered: list[float] = []

    def read() -> None:
        with dvc_workspace_settled():
            entered.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)
    assert not entered  # still waiting for DVC
    released = time.monotonic()
    held.close()
    reader.join(timeout=5)
    assert entered and entered[0] >= released

    with dvc_workspace_settled():
        with pytest.raises(zc.lockfile.LockError):
            zc.lockfile.LockFile(".dvc/tmp/lock")
    zc.lockfile.LockFile(".dvc/tmp/lock").close()  # free again afterwards


def test_outside_a_dvc_project_nothing_is_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with dvc_workspace_settled():
        pass
    assert not (tmp_path / ".dvc").exists()
