"""`crosscheck run` with the reference's own time measured: how much of a run the reference takes.

    python benchmarks/reference_share.py SECONDS_FILE -- run --shapes realistic --out reports/r

Runs the command line in this process with every function of the `crosscheck.reference` package timed (the
outermost call only, so a reference calling its own helpers counts once) and writes {"reference_s", "calls",
"wall_s", "exit", "by_function": seconds per outermost function} to SECONDS_FILE. Backends run in their worker
processes (the default isolation), so the main process's time is the reference, the comparisons and the run's
own bookkeeping; the reference's share is reference_s / wall_s.

The functions are wrapped in their modules before anything else of crosscheck is imported, so the modules that
import them by name (`from crosscheck.reference.gradients import input_gradient`) get the timed ones too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pkgutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_state = threading.local()
totals = {"seconds": 0.0, "calls": 0}
by_function: dict[str, float] = {}  # outermost function -> seconds: which part of the reference a run waits on
_lock = threading.Lock()


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_state, "depth", 0)
        if depth:
            return fn(*args, **kwargs)
        _state.depth = 1
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            _state.depth = 0
            name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}"
            with _lock:
                totals["seconds"] += elapsed
                totals["calls"] += 1
                by_function[name] = by_function.get(name, 0.0) + elapsed

    return wrapper


def instrument() -> int:
    """Wrap every function defined in a module of crosscheck.reference; returns how many were wrapped."""
    import crosscheck.reference as package

    names = [package.__name__] + [
        f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.ispkg
    ]
    modules = [importlib.import_module(n) for n in names]
    wrapped: dict[int, Callable[..., Any]] = {}
    for module in modules:
        for attr, obj in list(vars(module).items()):
            if inspect.isfunction(obj) and obj.__module__.startswith(package.__name__):
                if id(obj) not in wrapped:
                    wrapped[id(obj)] = _timed(obj)
                setattr(module, attr, wrapped[id(obj)])
    # reference() dispatches through METHODS, whose values were bound before the wrapping.
    package.METHODS.update({k: wrapped.get(id(v), v) for k, v in package.METHODS.items()})
    return len(wrapped)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("reference_share.py: error: usage: SECONDS_FILE -- CROSSCHECK_ARGS...", file=sys.stderr)
        return 2
    out = Path(argv[0])
    instrument()
    from crosscheck.cli.main import main as crosscheck_main

    start = time.perf_counter()
    code = crosscheck_main(argv[2:])
    wall = time.perf_counter() - start
    out.write_text(
        json.dumps(
            {
                "reference_s": totals["seconds"],
                "calls": totals["calls"],
                "wall_s": wall,
                "exit": code,
                "by_function": dict(sorted(by_function.items(), key=lambda kv: -kv[1])),
            }
        )
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
