"""NumPy: strided windows (sliding_window_view) contracted with the filter by `np.tensordot`.

This is how a NumPy user writes a convolution; it is independent of the reference's code path
(which never calls tensordot on the problem's own dtype).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES, INT_DTYPES
from crosscheck.core.layouts import strided_view
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem


def windows(problem: ConvProblem) -> np.ndarray:
    """(N, C_in, *out, *kernel) view of the padded input: every window the filter visits."""
    spec = problem.spec
    rank = spec.rank
    xp = np.pad(problem.x, [(0, 0), (0, 0), *spec.pads])
    eff = tuple(effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation))
    v = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + rank)))
    index = (
        (slice(None), slice(None))
        + tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride))
        + tuple(slice(None, None, d) for d in spec.dilation)
    )
    return v[index]


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"
    description = "numpy.lib.stride_tricks.sliding_window_view + numpy.tensordot"

    isa_switches = ("OPENBLAS_CORETYPE",)

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import openblas_dispatch

        return openblas_dispatch()  # tensordot is a BLAS GEMM

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=(*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES), layouts=("channels_first", "strided"))

    def run(self, problem: ConvProblem) -> np.ndarray:
        spec = problem.spec
        rank = spec.rank
        if spec.layout == "strided":
            problem = replace(problem, x=strided_view(problem.x), w=strided_view(problem.w))
        v = windows(problem)
        cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        tap_axes = [1] + list(range(2 + rank, 2 + 2 * rank))  # channel, then kernel taps
        outs = []
        for g in range(spec.groups):
            vg = v[:, g * cg : (g + 1) * cg]
            wg = problem.w[g * og : (g + 1) * og]
            y = np.tensordot(vg, wg, axes=(tap_axes, [1] + list(range(2, 2 + rank))))  # (N, *out, og)
            outs.append(np.moveaxis(y, -1, 1))
        return np.concatenate(outs, axis=1)
