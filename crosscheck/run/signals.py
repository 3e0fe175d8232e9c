"""SIGINT, SIGTERM and SIGHUP handled as one Ctrl-C: stop, keep what finished, write it, exit 128 + signal.

The first of these signals raises KeyboardInterrupt in the main thread, where the runner already turns it
into an `interrupted` record. Every later one is noted and ignored: a second Ctrl-C (or a SIGTERM following
a SIGINT, as a CI runner sends when it cancels a job) must not land in the middle of writing the results of
the first, which would lose them. The wind-down that follows is bounded (workers that do not close in time
are killed, crosscheck.backends.isolated), so ignoring later signals cannot keep crosscheck alive for long.
"""

from __future__ import annotations

import inspect
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_active: Interrupts | None = None


class Interrupts:
    """A context manager installing the handlers (main thread only); `signum` is the first signal received."""

    def __init__(self, *, linger: bool = False) -> None:
        # `linger`: the process is on its way out (crosscheck run as a program), so after a signal the handlers
        # stay ignoring; code that calls crosscheck in-process gets its own handlers back either way.
        self.linger = linger
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._unraisable: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            raise KeyboardInterrupt
        # A later one is ignored: it must not cut short the writing of what the first one kept.

    def __enter__(self) -> Interrupts:
        global _active
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._previous[s] = signal.signal(s, self._handle)
        self._unraisable = sys.unraisablehook
        sys.unraisablehook = self._swallowed
        _active = self
        return self

    def _swallowed(self, unraisable: Any) -> None:
        # The first signal's KeyboardInterrupt landed where Python cannot raise (a gc callback such as Hypothesis',
        # a __del__, a weakref callback) and would be printed as "Exception ignored ... Traceback": the signal is
        # noted and `check()` raises it before the next example, so there is nothing to print. Likewise a generator
        # the interrupt left suspended and the collector closes later: its cleanup runs against what the unwinding
        # already tore down (Hypothesis' pretty-printer writing to its closed buffer: "I/O operation on closed
        # file"), an effect of the signal, not an error of its own.
        if self.signum is not None and (
            isinstance(unraisable.exc_value, KeyboardInterrupt)
            or inspect.isgenerator(unraisable.object)
            or inspect.iscoroutine(unraisable.object)
        ):
            return
        self._unraisable(unraisable)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        global _active
        # On the way out after a signal, the interrupted generators may be collected at interpreter shutdown: the
        # hook stays until then.
        if self._unraisable is not None and not (self.linger and self.signum is not None):
            sys.unraisablehook = self._unraisable
            self._unraisable = None
        for s, handler in self._previous.items():
            # Once stopping, a later signal (a burst of Ctrl-C, a runner's SIGTERM after SIGINT) that arrives after
            # this point would otherwise kill the process on its way out, turning exit 130 into death by SIGINT.
            signal.signal(s, signal.SIG_IGN if self.linger and self.signum is not None else handler)
        _active = None


def received() -> int | None:
    """The first signal the active Interrupts received (None: none, or no Interrupts active)."""
    return _active.signum if _active is not None else None


def exit_code() -> int:
    """The exit code of an interrupted command: 128 + the signal received (SIGINT's 130 when none was noted, as
    for a KeyboardInterrupt raised without a signal)."""
    return 128 + (received() or signal.SIGINT)


def check() -> None:
    """Raise KeyboardInterrupt if a stop signal came: called before each example, because the one KeyboardInterrupt
    the first signal raises can be swallowed where it lands (an exception raised in a gc callback, a `__del__` or a
    weakref callback is printed and dropped — Hypothesis registers a gc callback), and later signals are ignored."""
    if received() is not None:
        raise KeyboardInterrupt
