"""Small real records for the report tests: a passing NumPy/SciPy run and one with failures."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from crosscheck.backends import registry
from crosscheck.run.session import RunOptions, run

Record = dict[str, Any]

# Framework error text is untrusted: both payloads must end up as visible text, never run.
EVIL = "<script>window.__xss = 1; console.error('xss ran')</script><img src=x onerror=\"window.__xss = 2\">"


def passing_record(seed: int = 1, backends: tuple[str, ...] = ("numpy", "scipy.correlate")) -> Record:
    return run(RunOptions(backends=list(backends), max_examples=8, seed=seed, command=["pytest"]))


def failing_record() -> Record:
    """numpy and the textbook-convolution `broken` backend, with an error message carrying markup."""
    sys.path.insert(0, str(Path(__file__).parent))
    registry.BUILTIN["broken"] = "tests_support_broken:BrokenBackend"
    try:
        record = run(RunOptions(backends=["broken", "numpy"], max_examples=8, seed=2, command=["pytest"]))
    finally:
        del registry.BUILTIN["broken"]
        sys.path.remove(str(Path(__file__).parent))
    record = copy.deepcopy(record)
    failed = next(r for r in record["results"] if r["failures"])
    failed["failures"][0]["message"] = f"backend raised RuntimeError: {EVIL}\n" + failed["failures"][0]["message"]
    return record


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error the command printed, checked to be one line without a traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err
