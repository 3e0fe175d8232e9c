"""Signals really sent (to the process group, as a terminal or a job runner does), parents really killed:
what finished is written, nothing is left running."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_support import TESTS, Crosscheck, alive, marked, marker, wait_for

from crosscheck.run.record import load

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes through /proc")

LONG_RUN = ["run", "--backends", "numpy", "--max-examples", "100000", "--no-pairwise", "--seed", "3"]
HANGS = f"{TESTS / 'verify_targets' / 'hangs_with_child.py'}:conv"
LEAVES = f"{TESTS / 'verify_targets' / 'leaves_children.py'}:conv"
GONE_S = 30.0  # for processes told to end to be gone: generous on a loaded machine


def _assert_kept_what_finished(out: Path, err: str) -> None:
    assert "Traceback" not in err, err
    record = load(out / "crosscheck.json")
    assert record["run"]["interrupted"] is True
    assert sum(r["examples"] for r in record["results"]) > 0
    assert "Interrupted" in (out / "crosscheck.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["crosscheck.html", "crosscheck.json"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c(signum: int, tmp_path: Path) -> None:
    cc = Crosscheck([*LONG_RUN, "--out", str(tmp_path)])
    try:
        cc.wait_err("running")
        workers = cc.workers()
        assert workers
        cc.signal_group(signum)
        code, _, err = cc.finish()
    finally:
        cc.kill()
    assert code == 128 + signum, err
    _assert_kept_what_finished(tmp_path, err)
    assert wait_for(lambda: not any(alive(w) for w in workers), GONE_S)


@pytest.mark.parametrize("gaps", [(0.3,), (0.8,), (0.05, 0.05, 0.05)], ids=["0.3s", "0.8s", "a burst"])
def test_repeated_ctrl_c_still_writes_json_and_html(gaps: tuple[float, ...], tmp_path: Path) -> None:
    cc = Crosscheck([*LONG_RUN, "--out", str(tmp_path)])
    try:
        cc.wait_err("running")
        cc.signal_group(signal.SIGINT)
        for gap in gaps:
            time.sleep(gap)
            cc.signal_group(signal.SIGINT)
        cc.signal_group(signal.SIGTERM)  # and a job runner's SIGTERM on top
        code, _, err = cc.finish()
    finally:
        cc.kill()
    assert code == 130, err  # the first signal decides
    _assert_kept_what_finished(tmp_path, err)


def test_sigterm_ends_a_busy_worker_and_what_it_started(tmp_path: Path) -> None:
    mark = marker()
    report = tmp_path / "v.json"
    cc = Crosscheck(["verify", HANGS, "--dims", "1", "--timeout", "600", "--report", str(report)], mark=mark)
    try:
        assert wait_for(lambda: bool(marked(mark)) or cc.proc.poll() is not None, 180), "".join(cc.err)
        workers = cc.workers()
        cc.signal_group(signal.SIGTERM)
        code, out, err = cc.finish()
    finally:
        cc.kill()
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "interrupted" in out
    assert load(report)["run"]["interrupted"] is True and report.with_suffix(".html").is_file()
    assert wait_for(lambda: not marked(mark) and not any(alive(w) for w in workers), GONE_S), marked(mark)


@pytest.mark.parametrize("busy", [True, False], ids=["busy worker", "idle workers"])
def test_workers_end_when_their_parent_is_killed(busy: bool, tmp_path: Path) -> None:
    """SIGKILL leaves crosscheck no chance to clean up: each worker notices that its parent is gone."""
    mark = marker()
    if busy:  # started by the main thread: the kernel's parent-death signal
        cc = Crosscheck(["verify", HANGS, "--dims", "1", "--timeout", "600"], mark=mark)
    else:  # several backends load in threads: the workers' watch of their parent
        cc = Crosscheck(
            ["run", "--backends", "numpy,scipy.correlate", "--max-examples", "100000", "--out", str(tmp_path)]
        )

    def ready() -> bool:
        if busy:
            return bool(marked(mark))
        return len(cc.workers()) >= 2 and any("running" in line for line in cc.err)

    try:
        assert wait_for(lambda: ready() or cc.proc.poll() is not None, 180), "".join(cc.err)
        workers = cc.workers()
        assert workers
        cc.proc.kill()  # the parent only, as the OOM killer would
        cc.proc.wait(30)
        assert wait_for(lambda: not marked(mark) and not any(alive(w) for w in workers), GONE_S), (
            [w for w in workers if alive(w)],
            marked(mark),
        )
    finally:
        cc.kill()


def test_children_a_target_leaves_are_ended_and_counted(tmp_path: Path) -> None:
    mark = marker()
    report = tmp_path / "v.json"
    cc = Crosscheck(["verify", LEAVES, "--dims", "1", "--max-examples", "10", "--report", str(report)], mark=mark)
    try:
        code, out, err = cc.finish(timeout=300)
    finally:
        cc.kill()
    assert code == 0, out + err
    assert marked(mark) == []  # ended already, not only at some later exit
    # One row per dtype the function ran in, all the same worker: the count is the worker's, over every call.
    backends = json.loads(report.read_text())["backends"]
    assert len({json.dumps(b["isolation"], sort_keys=True) for b in backends}) == 1
    left = backends[0]["isolation"]["children_left"]
    # Two per call (a child in a new session, an orphaned grandchild): at least the examples' calls.
    assert left >= 2 * 10
    assert f"the function left {left} processes running after its calls; crosscheck ended them" in out


def test_a_stop_signal_whose_interrupt_was_swallowed_still_stops_the_search() -> None:
    """The first signal's one KeyboardInterrupt can land where Python prints and drops it (a gc callback — Hypothesis
    registers one — a __del__, a weakref callback); later signals are ignored, so each example asks again."""
    from crosscheck.backends.registry import get_backend
    from crosscheck.properties import PROPERTIES
    from crosscheck.run import signals
    from crosscheck.run.runner import run_property

    with signals.Interrupts() as interrupts:
        interrupts.signum = signal.SIGTERM  # received, its KeyboardInterrupt swallowed before anyone saw it
        start = time.perf_counter()
        result = run_property(get_backend("numpy"), PROPERTIES["matches_reference"], max_examples=100_000, seed=1)
    assert result.status == "interrupted" and result.interrupted
    assert result.tally.examples == 0 and time.perf_counter() - start < 30


def test_an_interrupt_swallowed_in_a_callback_prints_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the first signal's KeyboardInterrupt lands in a __del__ (or Hypothesis' gc callback) Python would print
    "Exception ignored ... Traceback"; the signal is already noted, so nothing reaches the hook that prints. Other
    unraisable errors still do, and the hook is restored afterwards."""
    import gc
    import sys

    from crosscheck.run import signals

    class Dropped:
        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def __del__(self) -> None:
            raise self.exc

    printed: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: printed.append(u.exc_value))
    before = sys.unraisablehook
    with signals.Interrupts() as interrupts:
        Dropped(KeyboardInterrupt())  # before any signal: a stray interrupt is reported as usual
        gc.collect()
        assert [type(e) for e in printed] == [KeyboardInterrupt]
        interrupts.signum = signal.SIGINT
        Dropped(KeyboardInterrupt())
        gc.collect()
        assert len(printed) == 1
        Dropped(ValueError("a real error in a callback"))
        gc.collect()
        assert [type(e) for e in printed] == [KeyboardInterrupt, ValueError]
    assert sys.unraisablehook is before


def test_a_generator_left_open_by_an_interrupt_prints_nothing_when_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI saw it once after Ctrl-C: "Exception ignored in: <generator object RepresentationPrinter.group>" and a
    Traceback ending in "I/O operation on closed file", Hypothesis' pretty-printer cleaning up, when collected, a
    group the interrupt had left open over a buffer already closed. Before a signal, the same is reported."""
    import gc
    import io
    import sys

    from crosscheck.run import signals

    def group(out: io.StringIO) -> Iterator[None]:
        try:
            yield
        finally:
            out.write(")")  # raises once `out` is closed

    def left_open() -> None:
        out = io.StringIO()
        g = group(out)
        next(g)
        out.close()
        del g  # collected unclosed: its cleanup raises ValueError where Python can only print it

    printed: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: printed.append(u.exc_value))
    with signals.Interrupts() as interrupts:
        left_open()
        gc.collect()
        assert [type(e) for e in printed] == [ValueError]
        interrupts.signum = signal.SIGINT
        left_open()
        gc.collect()
        assert len(printed) == 1
    with signals.Interrupts(linger=True) as interrupts:
        interrupts.signum = signal.SIGINT
    left_open()  # crosscheck run on its way out: the hook stays for what shutdown collects
    gc.collect()
    assert len(printed) == 1
