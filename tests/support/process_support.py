"""Helpers of the tests that start crosscheck, signal or kill it, and count what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from crosscheck.backends.processes import descendants

ROOT = Path(__file__).parents[2]
TESTS = Path(__file__).parent
START_S = 180.0  # importing frameworks takes seconds, more on a loaded 2-core machine


def marker() -> str:
    return f"crosscheck-test-{uuid.uuid4().hex}"


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def marked(mark: str) -> list[int]:
    """Running processes whose command line holds `mark` (as `ps` would list them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if mark.encode() in cmdline and alive(int(entry)):
            found.append(int(entry))
    return found


def ps_left(mark: str) -> list[str]:
    """`ps` lines of running processes whose command line or environment holds `mark`."""
    out = subprocess.run(["ps", "-e", "e", "-ww", "-o", "pid=,stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if mark in line and not line.split()[1].startswith("Z")]


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


class Crosscheck:
    """`python -m crosscheck ARGS` in a process group of its own (as a shell runs a job), stderr read as it
    comes so that a test can wait for a line."""

    def __init__(self, args: list[str], mark: str = "", cwd: Path | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])}
        # In the environment of crosscheck, its workers and what they start: `ps e` finds them all, even
        # re-parented, and only them (other test runs on the machine carry other marks).
        self.mark = mark or marker()
        env["CROSSCHECK_TEST_MARKER"] = self.mark
        env.pop("CI", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crosscheck", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.err: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def wait_err(self, text: str, timeout: float = START_S) -> None:
        ok = wait_for(lambda: any(text in line for line in self.err) or self.proc.poll() is not None, timeout)
        assert ok and self.proc.poll() is None, f"no {text!r} on stderr:\n{''.join(self.err)}"

    def workers(self) -> list[int]:
        return [pid for pid, state in descendants(self.proc.pid) if state != "Z"]

    def signal_group(self, signum: int) -> None:
        """As a terminal (Ctrl-C, hang-up) or a job runner does: to every process of the group."""
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def finish(self, timeout: float = 120.0) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(10)
        return code, "".join(self.out), "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(30)
