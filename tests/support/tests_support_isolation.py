"""Backends that crash, hang or decline inside the worker, for the isolation tests."""

from __future__ import annotations

import ctypes
import time

import numpy as np

from crosscheck.backends.numpy_backend import NumpyBackend
from crosscheck.core.problem import ConvProblem


class CrashingBackend(NumpyBackend):
    """Right, except that a grouped problem dereferences a null pointer (SIGSEGV)."""

    name = "crashing"

    def run(self, problem: ConvProblem) -> np.ndarray:
        if problem.spec.groups > 1:
            ctypes.string_at(0)
        return super().run(problem)


class HangingBackend(NumpyBackend):
    """Right, except that a 3-D problem never returns."""

    name = "hanging"

    def run(self, problem: ConvProblem) -> np.ndarray:
        if problem.spec.rank == 3:
            time.sleep(3600)
        return super().run(problem)


class RaisingBackend(NumpyBackend):
    name = "raising"

    def run(self, problem: ConvProblem) -> np.ndarray:
        if problem.spec.rank == 2:
            raise NotImplementedError("no 2-D here")
        raise ValueError("bad\nsecond line")


class CrashesOnLoad(NumpyBackend):
    name = "crashes-on-load"

    def check_available(self) -> None:
        ctypes.string_at(0)
