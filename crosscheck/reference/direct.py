"""The oracle of the oracles: the element-wise-sum definition as a plain loop in exact arithmetic.

Every float is converted to a Fraction (exactly), every product and sum is exact, and only the
final answer is rounded (to a float64 pair). Complex values are pairs of Fractions multiplied by
the textbook rule. Slow; meant for small problems in the project's tests.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.result import ReferenceResult

Exact = tuple[Fraction, Fraction]  # (real, imaginary)


def _exact(v: complex) -> Exact:
    return Fraction(float(v.real)), Fraction(float(v.imag))


def _rounded(total: Fraction) -> tuple[float, float, float]:
    """(hi, lo, e): the exact sum as a float64 pair and an upper bound on |total − hi − lo|. A pair holds ~106 bits;
    a sum of float64 products can need more (the residual was up to 2⁻¹⁰² here, where the bound had said 2⁻¹⁰⁷⁴)."""
    hi = float(total)
    lo = float(total - Fraction(hi))
    residual = abs(total - Fraction(hi) - Fraction(lo))
    return hi, lo, float(residual) * (1 + 2.0**-52) + 2.0**-1074  # float() rounds to nearest: pushed past it


def direct(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    info = dtype_info(spec.dtype)
    is_float, is_complex = info.is_float, info.is_complex
    work = np.complex128 if is_complex else np.float64 if is_float else np.int64
    xp = np.pad(problem.x.astype(work), [(0, 0), (0, 0), *spec.pads])
    w = problem.w.astype(work)
    cin_g = spec.in_channels // spec.groups
    cout_g = spec.out_channels // spec.groups
    value = np.zeros(spec.y_shape, dtype=np.float64 if is_float and not is_complex else work)
    low = np.zeros(spec.y_shape, dtype=value.dtype)
    magnitude = np.zeros(spec.y_shape)
    bound = np.zeros(spec.y_shape)  # integers: exact
    for n, o in itertools.product(range(spec.batch), range(spec.out_channels)):
        g = o // cout_g
        for m in itertools.product(*(range(k) for k in spec.out_size)):
            re, im, total_int, mag = Fraction(0), Fraction(0), 0, 0.0
            for c in range(cin_g):
                for u in itertools.product(*(range(k) for k in spec.kernel)):
                    pos = tuple(mi * s + ui * d for mi, s, ui, d in zip(m, spec.stride, u, spec.dilation))
                    a = xp[(n, g * cin_g + c) + pos]
                    b = w[(o, c) + u]
                    if not is_float:
                        total_int += int(a) * int(b)
                        mag += abs(float(a) * float(b))
                        continue
                    (ar, ai), (br, bi) = _exact(complex(a)), _exact(complex(b))
                    re += ar * br - ai * bi
                    im += ar * bi + ai * br
                    # |a|·|b| in float64 (moduli are irrational in general): only the bound's scale.
                    mag += math.hypot(float(ar), float(ai)) * math.hypot(float(br), float(bi))
            idx = (n, o) + m
            if not is_float:
                value[idx] = total_int
            elif is_complex:
                (re_hi, re_lo, re_err), (im_hi, im_lo, im_err) = _rounded(re), _rounded(im)
                value[idx], low[idx] = complex(re_hi, im_hi), complex(re_lo, im_lo)
                bound[idx] = (re_err + im_err) * (1 + 2.0**-52)  # |error| ≤ |Re error| + |Im error|
            else:
                value[idx], low[idx], bound[idx] = _rounded(re)
            magnitude[idx] = mag
    return ReferenceResult(value, low if is_float else None, magnitude, bound, "direct")
