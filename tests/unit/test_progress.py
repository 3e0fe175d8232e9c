"""The live progress of `crosscheck run`: done/total and an estimate of what is left, in a terminal and in a log."""

from __future__ import annotations

import io

import wrong_convolutions as wc

from crosscheck.backends.base import Backend
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.cli.progress import LiveProgress
from crosscheck.run.session import RunOptions, run_backends


def test_a_log_line_per_finished_unit_counts_done_of_total() -> None:
    out = io.StringIO()
    progress = LiveProgress(out, interactive=False)
    progress.expect(3)
    for prop in ("a", "b"):
        progress("numpy", prop, 5, 0)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "  numpy / a: 5 examples in" in lines[1] and lines[1].endswith("[1/3]")
    assert lines[-1].endswith("[2/3]")


def test_the_status_line_says_how_much_is_left() -> None:
    out = io.StringIO()
    progress = LiveProgress(out, interactive=True)
    progress.expect(4)
    progress("torch", "a", 5, 0)
    progress("torch", "b", 1, 0)  # "a" finished: one of four done, so an estimate for the other three
    progress._status("torch", "b", 1)
    line = out.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert "1/4 done, about" in line and "left" in line and "torch › b" in line
    progress.expect(4)  # a second ISA level plans four more
    assert progress.total == 8


def test_a_run_tells_the_display_what_it_plans() -> None:
    planned: list[int] = []

    class Display:
        def expect(self, units: int) -> None:
            planned.append(units)

        def __call__(self, backend: str, prop: str, examples: int, failures: int) -> None:
            pass

    backends: list[Backend] = [FunctionBackend(wc.correlate, n, dtypes=("float64",)) for n in ("one", "two")]
    props = ["matches_reference", "is_cross_correlation"]
    run_backends(backends, [], props, RunOptions(max_examples=2, pairwise=True), Display())
    assert planned == [2 * 2 + 1]  # every (backend, property), and pairwise agreement
