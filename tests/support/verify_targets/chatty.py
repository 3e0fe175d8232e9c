"""Prints a flood (about 1 MB a call, on stdout and stderr) before answering: `right` answers correctly,
`wrong` doubles every output, `crashes` dies after printing."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from verify_targets._conv import correlate

FLOOD = ("x" * 1023 + "\n") * 1024


def _chatter() -> None:
    sys.stdout.write(FLOOD)
    sys.stderr.write("last words of this call\n")


def right(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    _chatter()
    return correlate(x, w, **kw)


def wrong(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    _chatter()
    return correlate(x, w, **kw) * 2


def crashes(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    _chatter()
    sys.stderr.flush()
    os.abort()
