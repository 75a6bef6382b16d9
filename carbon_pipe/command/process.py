"""The command's processes: launched in a process group of their own, given a time budget, asked to stop and killed
when they do not; SIGINT and SIGTERM sent to carbon-pipe are passed on to the whole group.

The group, not only the command's first process, receives each signal: that is what a preempted SLURM job step and
Ctrl-C in a terminal deliver, so workers and launchers inside the command see what they would see there. A command
that has exited stays a zombie (waited for with WNOWAIT) until the caller has taken its last energy measurement, so
the CPU time of its final moments is still visible to the meter.

A process that leaves the group (a daemon that double-forks into a session of its own) would outlive the command,
unmeasured, if it were re-parented to init. carbon-pipe is made a child subreaper (Linux's PR_SET_CHILD_SUBREAPER), so
such orphans are re-parented to carbon-pipe instead: they stay in its process tree, which the meter measures, and are
found and ended when the command ends, and named in the run's summary.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import psutil

from ..errors import CommandFailed
from ..signals import exit_code

POLL_SECONDS = 0.05  # how often the wait looks whether the command has exited (no CPU worth measuring)
MEMORY_SAMPLE_SECONDS = 1.0  # how often it sums the resident memory of the command's processes
FIRST_SAMPLE_SECONDS = 0.2  # the first sample: after the exec (before it, the child is a copy of carbon-pipe)
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
REAP_ROUNDS = 20  # killing a process re-parents its children to us: look again until none is left


@dataclass(frozen=True)
class Ending:
    """How one launch of the command ended."""

    code: Optional[int]  # its exit code, or None when a signal ended it
    signal: Optional[int]  # the signal that ended it
    paused: bool  # carbon-pipe sent SIGTERM because the segment's time budget was spent
    killed: bool  # it outlived the grace period after that SIGTERM, or a second signal, and got SIGKILL
    passed_on: Optional[int]  # the signal carbon-pipe received and passed on to it

    @property
    def status(self) -> int:
        """The shell's number for it: the exit code, or 128 + the signal."""
        return self.code if self.signal is None else exit_code(self.signal)

    def describe(self) -> str:
        return f"exit code {self.code}" if self.signal is None else f"killed by {signal.Signals(self.signal).name}"

    def record(self) -> dict:
        return {
            "exit_code": self.code,
            "signal": None if self.signal is None else signal.Signals(self.signal).name,
            "stopped_for_pause": self.paused,
            "killed_after_grace": self.killed and self.passed_on is None,
            "passed_on": None if self.passed_on is None else signal.Signals(self.passed_on).name,
        }


class Signals:
    """SIGINT and SIGTERM received while the command runs: the first is passed on to its group, a second kills it."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.group: Optional[int] = None

    def handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        self.send(signal.SIGKILL if len(self.received) > 1 else signum)

    def send(self, signum: int) -> None:
        if self.group is not None:
            try:
                os.killpg(self.group, signum)
            except (ProcessLookupError, PermissionError):  # the group is gone already
                pass

    def attach(self, group: int) -> None:
        """The command is launched: a signal that came while it was being launched is passed on now."""
        self.group = group
        if self.received:
            self.send(signal.SIGKILL if len(self.received) > 1 else self.received[0])


@contextmanager
def passed_on() -> Iterator[Signals]:
    """While the command runs, SIGINT and SIGTERM go to it (carbon-pipe waits for it to exit) instead of stopping us."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        yield signals
        return
    previous = {sig: signal.signal(sig, signals.handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@functools.cache
def adopt_orphans() -> bool:
    """Make this process the subreaper of every process it starts (True: it is): a descendant whose parent exits is
    re-parented here, not to init, so a daemon that escaped the command's group can still be found and ended."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Command:
    """One launch of the command: `start`, then `wait` for it within a budget, then `finish` once it is measured."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.argv, self.env = list(argv), env
        self.process: Optional[subprocess.Popen] = None
        self.started = 0.0  # time.monotonic() at its start: its budget counts from there
        self.peak_rss_mb: Optional[float] = None  # the largest sum of its processes' resident memory, sampled
        self.cpu_seconds = 0.0  # the kernel's count, once it is reaped: its own and every process it waited for
        self.escaped: list[dict] = []  # processes it left running outside its group, ended by `finish`
        self.ours: set[int] = set()  # carbon-pipe's own processes when it started: never the command's

    def start(self, signals: Signals) -> None:
        """In a process group of its own (so a terminal's Ctrl-C reaches it once, through us). A command that cannot
        be started is one line and the shell's exit code: 127 not found, 126 not executable."""
        self.cpu_seconds = -_children_cpu_seconds()
        adopt_orphans()
        self.ours = {process.pid for process in psutil.Process().children(recursive=True)}
        try:
            self.process = subprocess.Popen(self.argv, env=self.env, process_group=0)
        except FileNotFoundError:
            raise CommandFailed(f"run: command not found: {self.argv[0]}", 127) from None
        except PermissionError:
            raise CommandFailed(f"run: command not executable: {self.argv[0]}", 126) from None
        except OSError as exc:
            raise CommandFailed(f"run: cannot start {self.argv[0]}: {exc.strerror or exc}", 126) from None
        self.started = time.monotonic()
        signals.attach(self.process.pid)

    def wait(self, budget: Optional[float], grace: float, signals: Signals) -> Ending:
        """Until it exits. Once `budget` seconds have passed since its start its group gets SIGTERM, and SIGKILL
        `grace` seconds later if it is still running; a signal passed on by `signals` cancels that (the user decides,
        by insisting). It is left a zombie, so its CPU time stays readable until `finish`."""
        started = self.started
        sampled = started - MEMORY_SAMPLE_SECONDS + FIRST_SAMPLE_SECONDS  # once it has started, then every second
        paused_at: Optional[float] = None
        killed = False
        while (ended := self._exited()) is None:
            now = time.monotonic()
            if now - sampled >= MEMORY_SAMPLE_SECONDS:
                self.sample_memory()
                sampled = now
            if signals.received:
                pass  # passed on: wait for it to exit, or for a second signal
            elif paused_at is None and budget is not None and now - started >= budget:
                signals.send(signal.SIGTERM)
                paused_at = now
            elif paused_at is not None and not killed and now - paused_at >= grace:
                signals.send(signal.SIGKILL)
                killed = True
            time.sleep(POLL_SECONDS)
        code, by_signal = ended
        received = signals.received[0] if signals.received else None
        return Ending(code, by_signal, paused_at is not None, killed or len(signals.received) > 1, received)

    def sample_memory(self) -> None:
        """The resident memory of the command and every process under it, summed (pages they share count twice)."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:  # it is exiting: no sample
            return
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, total / 2**20)

    def _exited(self) -> Optional[tuple[Optional[int], Optional[int]]]:
        """(exit code, None) or (None, signal) once it has exited, without reaping it; None while it runs."""
        found = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if found is None or found.si_pid == 0:
            return None
        if found.si_code == os.CLD_EXITED:
            return found.si_status, None
        return None, found.si_status

    def finish(self) -> None:
        """Kill what is left of its group (a worker it did not stop would run on, unmeasured), then reap it. Its
        first process is still a zombie here, so the group's number cannot have been reused."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.end_descendants()
        self.process.wait()
        self.cpu_seconds += _children_cpu_seconds()

    def end_descendants(self) -> None:
        """Kill and reap every process the command left under carbon-pipe (its group's, now orphans, and those that
        left the group, adopted as their parents exited), noting the ones that had left it. Processes in
        carbon-pipe's own group that it had before the launch are not the command's and are left alone."""
        me, own_group = psutil.Process(), os.getpgrp()
        seen: set[int] = set()
        for _ in range(REAP_ROUNDS):
            left = []
            for process in me.children(recursive=True):
                try:
                    group = os.getpgid(process.pid)
                except OSError:
                    continue
                if process.pid == self.process.pid or process.pid in self.ours or group == own_group:
                    continue
                if group != self.process.pid and process.pid not in seen and _running(process):
                    self.escaped.append({"pid": process.pid, "name": _name(process)})
                seen.add(process.pid)
                left.append(process)
            if not left:
                return
            for process in left:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs([process for process in left if _parent(process) == me.pid], timeout=1)


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return "?"


def _running(process: psutil.Process) -> bool:
    """Alive, not a zombie waiting to be reaped (one that exited on its own escaped nothing)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _parent(process: psutil.Process) -> Optional[int]:
    try:
        return process.ppid()
    except psutil.Error:
        return None
