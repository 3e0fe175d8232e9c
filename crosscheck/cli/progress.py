"""The live progress of `crosscheck run` and the colours of its summary, without a dependency.

On a terminal one status line is redrawn in place (backend, property, examples, failures so far,
elapsed time); in a CI log, where redrawing makes a mess, each finished (backend, property) is one
plain line instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_COLOURS = {"passed": "32", "failed": "1;31", "error": "33", "interrupted": "33", "unsupported": "2"}


def use_colour(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, status: str, on: bool) -> str:
    code = _COLOURS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if on and code else text


class LiveProgress:
    """A `runner.Progress` callback: (backend, property, examples so far, failures)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        failure_note: str = "minimal example in the report",
    ) -> None:
        self.stream = stream or sys.stderr
        self.failure_note = failure_note  # where a failure's minimal example is to be found
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.colour = use_colour(self.stream) if self.interactive else False
        self.start = time.perf_counter()
        self.current: tuple[str, str] | None = None
        self.examples = 0
        self.done = 0
        self.total = 0  # units planned so far (`expect`): 0 while unknown
        self.failures = 0
        self._drawn = 0.0
        self._tick = 0
        self._started = self.start
        if self.interactive:
            self._write("checking backends against the reference (Ctrl-C stops and keeps what finished)\n")

    def expect(self, units: int) -> None:
        """`units` more (backend, property) pairs are planned (a run of several ISA levels plans each level's)."""
        self.total += units

    def _count(self) -> str:
        """'12/150 done, about 2 min left' (the left part once a unit has finished), or '12 done' with no plan."""
        if not self.total:
            return f"{self.done} done"
        text = f"{self.done}/{self.total} done"
        if self.done:
            left = (time.perf_counter() - self.start) / self.done * max(self.total - self.done, 0)
            text += f", about {left:.0f} s left" if left < 90 else f", about {left / 60:.0f} min left"
        return text

    def __call__(self, backend: str, prop: str, examples: int, failures: int) -> None:
        if (backend, prop) != self.current:
            self._finish()
            self.current = (backend, prop)
            self._started = time.perf_counter()
            if not self.interactive:  # in a log, say what runs now: a hang then names its culprit
                self._write(f"  {backend} / {prop}: running\n")
        self.examples = examples
        if failures:
            self.failures += failures
            self.done += 1
            self.current = None
            text = f"✗ {backend} / {prop}: FAILED after {examples} examples; {self.failure_note}"
            self._line(paint(text, "failed", self.colour))
            return
        now = time.perf_counter()
        if self.interactive and now - self._drawn > 0.08:  # redraw at most ~12 times a second
            self._drawn = now
            self._tick += 1
            self._status(backend, prop, examples)

    def _status(self, backend: str, prop: str, examples: int) -> None:
        spin = _SPINNER[self._tick % len(_SPINNER)]
        failed = paint(f"{self.failures} failed", "failed" if self.failures else "passed", self.colour)
        text = (
            f"{spin} {backend} › {prop}  {examples} examples │ {self._count()} │ {failed} │ "
            f"{time.perf_counter() - self.start:.1f} s"
        )
        width = shutil.get_terminal_size((100, 20)).columns
        # The colour codes take no room on screen; only cut plain text that would wrap.
        self._write("\r\x1b[K" + (text if self.colour or len(text) < width else text[: width - 1]))

    def _finish(self) -> None:
        if self.current is None:
            return
        self.done += 1
        if not self.interactive:
            backend, prop = self.current
            took = time.perf_counter() - self._started
            plan = f" [{self.done}/{self.total}]" if self.total else ""
            self._write(f"  {backend} / {prop}: {self.examples} examples in {took:.1f} s{plan}\n")
        self.current = None

    def note(self, text: object) -> None:
        """A message from elsewhere (Hypothesis' reporter), printed on a line of its own."""
        if "@seed(" in str(text):
            return  # Hypothesis' "reproduce with @seed": every failure in the record has its own reproducer
        self._line(str(text))

    def _line(self, text: str) -> None:
        self._write(("\r\x1b[K" if self.interactive else "") + text + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        """The last (backend, property) has finished: settle the display before the summary prints."""
        self._finish()
        if self.interactive:
            self._write("\r\x1b[K")
