"""A backend that computes the textbook (flipped-kernel) convolution, for CLI tests."""

from __future__ import annotations

import numpy as np

from crosscheck.backends.numpy_backend import NumpyBackend
from crosscheck.core.problem import ConvProblem


class BrokenBackend(NumpyBackend):
    name = "broken"

    def run(self, problem: ConvProblem) -> np.ndarray:
        return super().run(problem.flipped())
