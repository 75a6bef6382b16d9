"""SIGTERM and SIGINT as requests to stop cleanly: training finishes its step and checkpoints, a wait records why
it ended. Kept apart from training so that waiting (wait-for-window) does not import torch."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_OPEN: list[list[int]] = []  # the signals received in the outermost scope open now, which scopes inside it share


@contextmanager
def stop_requests(interrupt: bool = False) -> Iterator[list[int]]:
    """Turn SIGTERM and SIGINT into a list the loop checks after each optimizer step (it checkpoints, then stops).

    A second signal while the first is being handled is the user insisting: it stops at once, as without us.
    With `interrupt`, a signal also raises KeyboardInterrupt: a wait (a pause) has no step to finish first.
    Scopes nest: one opened inside another shares its list, so a signal that came between two inner scopes (between
    a plan's chunks, while the next one is set up) is in the list the next scope acts on, not lost or fatal.
    """
    received: list[int] = _OPEN[0] if _OPEN else []
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        yield received
        return

    def request_stop(signum, frame) -> None:
        if received:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        received.append(signum)
        if interrupt:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    outermost = not _OPEN
    if outermost:
        _OPEN.append(received)
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if outermost:
            _OPEN.pop()


def stopped_by(received: list[int]) -> signal.Signals:
    """What stopped a wait: the first signal received, or Ctrl-C for a KeyboardInterrupt that came without one."""
    return signal.Signals(received[0] if received else signal.SIGINT)


def exit_code(signum: int) -> int:
    """The shell's convention for a command stopped by a signal: 128 + its number (130 Ctrl-C, 143 SIGTERM)."""
    return 128 + int(signum)


@contextmanager
def user_code(what: str, error: type[Exception]) -> Iterator[None]:
    """Around calls into the user's code (data.class, model.class): a SystemExit it raises (`sys.exit()`, `exit()`),
    or a KeyboardInterrupt without a Ctrl-C, would end the command, maybe with success and nothing written. Either
    is one `error` line naming `what` instead. A real Ctrl-C goes on as a KeyboardInterrupt."""
    pressed: list[int] = []
    original = signal.getsignal(signal.SIGINT)
    listening = callable(original) and threading.current_thread() is threading.main_thread()

    def noted(signum, frame) -> None:
        pressed.append(signum)
        original(signum, frame)

    if listening:
        signal.signal(signal.SIGINT, noted)
    try:
        yield
    except Exception:
        raise
    except KeyboardInterrupt:
        if pressed:
            raise
        raise error(f"{what} raised KeyboardInterrupt with no Ctrl-C pressed: raise an Exception instead") from None
    except SystemExit as exc:
        raise error(f"{what} called sys.exit({exc.code!r}): your code must return or raise, not exit") from None
    except BaseException as exc:  # a BaseException of its own: not an error the checks can name
        raise error(f"{what} raised {exc.__class__.__name__}, which is not an Exception: raise an Exception") from None
    finally:
        if listening:
            signal.signal(signal.SIGINT, original)
