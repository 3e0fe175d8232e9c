"""The oracle of the oracles: the element-wise-sum definition as a plain loop in exact arithmetic.

Every float is converted to a Fraction (exactly), every product and sum is exact, and only the
final answer is rounded (to a float64 pair). Slow; meant for small problems in the project's tests.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

from crosscheck.dtypes import dtype_info
from crosscheck.problem import ConvProblem
from crosscheck.reference.result import ReferenceResult


def direct(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    is_float = dtype_info(spec.dtype).is_float
    xp = np.pad(problem.x.astype(np.float64 if is_float else np.int64), [(0, 0), (0, 0), *spec.pads])
    w = problem.w.astype(np.float64 if is_float else np.int64)
    cin_g = spec.in_channels // spec.groups
    cout_g = spec.out_channels // spec.groups
    value = np.zeros(spec.y_shape, dtype=np.float64 if is_float else np.int64)
    low = np.zeros(spec.y_shape)
    magnitude = np.zeros(spec.y_shape)
    for n, o in itertools.product(range(spec.batch), range(spec.out_channels)):
        g = o // cout_g
        for m in itertools.product(*(range(k) for k in spec.out_size)):
            total: Fraction | int = Fraction(0) if is_float else 0
            mag = Fraction(0)
            for c in range(cin_g):
                for u in itertools.product(*(range(k) for k in spec.kernel)):
                    pos = tuple(mi * s + ui * d for mi, s, ui, d in zip(m, spec.stride, u, spec.dilation))
                    a = xp[(n, g * cin_g + c) + pos]
                    b = w[(o, c) + u]
                    if is_float:
                        prod = Fraction(float(a)) * Fraction(float(b))
                    else:
                        prod = int(a) * int(b)  # type: ignore[assignment]
                    total += prod
                    mag += abs(prod)
            idx = (n, o) + m
            if is_float:
                hi = float(total)
                value[idx] = hi
                low[idx] = float(total - Fraction(hi))
            else:
                value[idx] = int(total)
            magnitude[idx] = float(mag)
    bound = np.zeros(spec.y_shape) + (2.0**-1074 if is_float else 0.0)
    return ReferenceResult(value, low if is_float else None, magnitude, bound, "direct")
