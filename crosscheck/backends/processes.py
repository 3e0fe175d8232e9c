"""Processes a worker leaves behind: found through /proc and ended, on Linux.

A process group kill misses a child that started its own session (`start_new_session=True`), and a
grandchild whose parent exited is re-parented away from the tree. A worker therefore makes itself a child
subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): every orphan below it becomes its own child, so that walking
/proc from its pid finds everything it started, whatever session it is in. It also asks to be sent SIGTERM
when its parent dies (`prctl(PR_SET_PDEATHSIG)`), so that a parent killed with SIGKILL leaves no worker
behind. Elsewhere (no /proc, no prctl) these are no-ops and only the process group is ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from crosscheck.core.hardware import libc

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_ROUNDS = 20  # scan-and-kill rounds: a process forking as fast as it is killed still ends within a few
_REAP_WAIT_S = 2.0  # for a killed child to become a zombie that can be reaped


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(libc().prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphans among this process's descendants are re-parented to it (Linux 3.4+)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def signal_on_parent_death(signum: int = signal.SIGTERM) -> bool:
    """The kernel sends `signum` to this process when the thread that started it ends."""
    return _prctl(_PR_SET_PDEATHSIG, signum)


def _table() -> dict[int, list[tuple[int, str]]]:
    """parent pid -> [(pid, state)] of every process /proc shows."""
    children: dict[int, list[tuple[int, str]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append((int(entry), fields[0]))
    return children


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process below `pid`, zombies ("Z") included; [] without /proc."""
    table = _table()
    out: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def end_descendants() -> int:
    """Kill (SIGKILL) every process below this one and reap them; returns how many were still running when first
    looked at (zombies do not count)."""
    pid = os.getpid()
    first = descendants(pid)
    running = sum(state != "Z" for _, state in first)
    found = first
    for _ in range(_ROUNDS):
        if not found:
            break
        for child, state in found:
            if state != "Z":
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
        _reap([child for child, _ in found])
        found = descendants(pid)
    return running


def _reap(pids: list[int]) -> None:
    deadline = time.monotonic() + _REAP_WAIT_S
    for child in pids:
        while True:
            try:
                done, _ = os.waitpid(child, os.WNOHANG)
            except ChildProcessError:  # not ours (a grandchild, reaped by its own parent) or reaped already
                break
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.005)


def kill_tree(pid: int) -> None:
    """SIGKILL process `pid`, its process group (when it leads one) and every process below it. The tree is
    frozen (SIGSTOP) first, so that none of it can start a process that the kill would miss."""
    if not hasattr(signal, "SIGSTOP"):  # Windows: no process groups nor signals to freeze with
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        return
    frozen: set[int] = set()
    todo = [pid]
    for _ in range(_ROUNDS):
        for p in todo:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGSTOP)
        frozen.update(todo)
        todo = [child for child, state in descendants(pid) if state != "Z" and child not in frozen]
        if not todo:
            break
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    for p in frozen:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
