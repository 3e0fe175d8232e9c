"""Right, but each call starts processes and leaves them running: a child in its own session (which a
process-group kill misses) and, through a child that exits at once, an orphaned grandchild. Each carries the
CROSSCHECK_TEST_MARKER of the environment in its command line, for the tests to find them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from verify_targets._conv import correlate

SLEEPER = "import time; time.sleep(600)"
# A child that starts a grandchild in a new session and exits: the grandchild is orphaned at once.
LAUNCHER = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], start_new_session=True)"
)


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    marker = os.environ.get("CROSSCHECK_TEST_MARKER", "crosscheck-test-child")
    subprocess.Popen([sys.executable, "-c", SLEEPER, marker], start_new_session=True)
    subprocess.run([sys.executable, "-c", LAUNCHER, SLEEPER, marker], check=True)
    return correlate(x, w, **kw)  # type: ignore[arg-type]
