"""Starts a process in its own session (marked with CROSSCHECK_TEST_MARKER), then hangs: for the tests that
stop or kill crosscheck while a worker is busy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    marker = os.environ.get("CROSSCHECK_TEST_MARKER", "crosscheck-test-child")
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True)
    n = 0
    while True:  # busy in Python, at 100 % CPU, as a runaway loop would be
        n += 1
