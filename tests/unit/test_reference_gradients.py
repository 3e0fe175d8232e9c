"""The gradient and transposed-convolution references agree with their definitions, computed exactly.

The oracle is a plain loop over the forward convolution's terms in rational arithmetic: every
product x·w that the forward sum uses contributes g·w to grad_x at x's position and x·g to grad_w at
w's position. Nothing in it is shared with the vectorised references it judges.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosscheck import ConvProblem, ConvSpec, make_problem
from crosscheck.core.adjoint import (
    cotangent,
    cotangent_limit,
    input_gradient_terms,
    output_padding,
    weight_gradient_terms,
)
from crosscheck.core.values import VALUE_KINDS
from crosscheck.reference import direct, gradients
from crosscheck.reference.gradients import input_gradient, weight_gradient
from crosscheck.reference.result import ReferenceResult
from crosscheck.reference.transposed import conv_transpose
from crosscheck.strategies import conv_specs

Exact = dict[tuple[int, ...], Fraction]


def _fr(a: object) -> Fraction:
    return Fraction(float(a))  # type: ignore[arg-type]


Counts = dict[tuple[int, ...], int]


def exact_vjp(problem: ConvProblem, g: np.ndarray) -> tuple[Exact, Exact, Exact, Exact, Counts, Counts, Exact]:
    """(grad_x, grad_w, their magnitudes Σ|products|, their counts of terms that can be nonzero,
    and the forward y), exactly, by visiting every term of the forward sum once."""
    spec = problem.spec
    y: Exact = {}
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    gx: Exact = {}
    gw: Exact = {}
    mx: Exact = {}
    mw: Exact = {}
    kx: dict[tuple[int, ...], int] = {}
    kw: dict[tuple[int, ...], int] = {}
    for n, o in itertools.product(range(spec.batch), range(spec.out_channels)):
        grp = o // og
        for m in itertools.product(*(range(k) for k in spec.out_size)):
            gv = _fr(g[(n, o, *m)])
            for c in range(cg):
                for u in itertools.product(*(range(k) for k in spec.kernel)):
                    pos = tuple(
                        mi * s + ui * d - lo
                        for mi, s, ui, d, (lo, _) in zip(m, spec.stride, u, spec.dilation, spec.pads)
                    )
                    if not all(0 <= p < size for p, size in zip(pos, spec.in_size)):
                        continue  # the padding: a zero that contributes nothing to either gradient
                    xi = (n, grp * cg + c, *pos)
                    wi = (o, c, *u)
                    xv, wv = _fr(problem.x[xi]), _fr(problem.w[wi])
                    gx[xi] = gx.get(xi, Fraction(0)) + gv * wv
                    mx[xi] = mx.get(xi, Fraction(0)) + abs(gv * wv)
                    kx[xi] = kx.get(xi, 0) + 1
                    gw[wi] = gw.get(wi, Fraction(0)) + xv * gv
                    mw[wi] = mw.get(wi, Fraction(0)) + abs(xv * gv)
                    kw[wi] = kw.get(wi, 0) + 1
                    y[(n, o, *m)] = y.get((n, o, *m), Fraction(0)) + xv * wv
    return gx, gw, mx, mw, kx, kw, y


def assert_matches_exact(ref: ReferenceResult, exact: Exact, magnitude: Exact) -> None:
    for idx in np.ndindex(*ref.value.shape):
        want = exact.get(idx, Fraction(0))
        got = Fraction(float(ref.value[idx])) + (Fraction(float(ref.low[idx])) if ref.low is not None else 0)
        assert abs(got - want) <= Fraction(float(ref.error_bound[idx])), (idx, float(got), float(want))
        # M is rounded up past its own error: never below the exact magnitude, and close to it.
        m = magnitude.get(idx, Fraction(0))
        assert Fraction(float(ref.magnitude[idx])) >= m
        assert float(ref.magnitude[idx]) <= float(m) * (1 + 1e-12)


small = st.builds(
    lambda spec, seed, values: (spec, seed, values),
    conv_specs(max_macs=600, dtypes=["float64", "float32", "float16", "bfloat16"]),
    st.integers(0, 2**32 - 1),
    st.sampled_from(VALUE_KINDS),
)


def build(drawn: tuple[ConvSpec, int, str]) -> ConvProblem:
    spec, seed, values = drawn
    if values == "exact" and cotangent_limit(spec) is None:
        values = "uniform"
    return make_problem(spec, seed, values)


@given(small)
def test_gradients_agree_with_the_exact_definition(drawn: tuple[ConvSpec, int, str]) -> None:
    problem = build(drawn)
    g = cotangent(problem)
    gx, gw, mx, mw, kx, kw, _ = exact_vjp(problem, g)
    assert_matches_exact(input_gradient(problem, g), gx, mx)
    assert_matches_exact(weight_gradient(problem, g), gw, mw)
    # The bound's K per element is at least the number of terms that can be nonzero.
    kx_ref = np.broadcast_to(input_gradient_terms(problem.spec), problem.spec.x_shape)
    kw_ref = np.broadcast_to(weight_gradient_terms(problem.spec), problem.spec.w_shape)
    for idx, k in kx.items():
        assert kx_ref[idx] == k
    for idx, k in kw.items():
        assert kw_ref[idx] == k


def inner(a: dict[tuple[int, ...], Fraction], b: np.ndarray) -> Fraction:
    return sum((v * _fr(b[idx]) for idx, v in a.items()), Fraction(0))


@given(small)
def test_the_definitions_are_adjoint_exactly(drawn: tuple[ConvSpec, int, str]) -> None:
    """⟨conv(x, w), g⟩ = ⟨x, grad_x⟩ = ⟨w, grad_w⟩ in exact arithmetic: the oracle's own sanity."""
    problem = build(drawn)
    g = cotangent(problem)
    gx, gw, *_, y = exact_vjp(problem, g)
    lhs = inner(y, g)
    assert inner(gx, problem.x) == lhs
    assert inner(gw, problem.w) == lhs
    # And the forward oracle of the project's tests computes the same y.
    fwd = direct(problem)
    for idx in np.ndindex(*problem.spec.y_shape):
        want = y.get(idx, Fraction(0))
        got = _fr(fwd.value[idx]) + (_fr(fwd.low[idx]) if fwd.low is not None else 0)
        assert abs(got - want) <= _fr(fwd.error_bound[idx])


@given(conv_specs(max_macs=3_000, dtypes=["int32", "int64"]), st.integers(0, 2**32 - 1))
def test_integer_gradients_are_exact_and_adjoint(spec: ConvSpec, seed: int) -> None:
    """Integers: the vectorised references are exact, so the adjoint identity holds to the last bit."""
    problem = make_problem(spec, seed, "exact")
    g = cotangent(problem).astype(np.int64)
    gx, gw = input_gradient(problem, g).value, weight_gradient(problem, g).value
    assert gx.dtype == gw.dtype == np.int64
    y = direct(problem).value
    lhs = int(np.sum(y * g))
    assert int(np.sum(problem.x.astype(np.int64) * gx)) == lhs
    assert int(np.sum(problem.w.astype(np.int64) * gw)) == lhs


@given(
    conv_specs(max_macs=3_000, dtypes=["float64"]).filter(lambda s: max(s.stride) > 1 or s.batch > 1),
    st.integers(0, 2**32 - 1),
)
def test_float64_gradients_are_more_accurate_than_float64(spec: ConvSpec, seed: int) -> None:
    problem = make_problem(spec, seed, "uniform")
    g = cotangent(problem)
    gx, gw, *_ = exact_vjp(problem, g)
    for ref, exact in ((input_gradient(problem, g), gx), (weight_gradient(problem, g), gw)):
        assert ref.low is not None
        for idx in np.ndindex(*ref.value.shape):
            err = abs(_fr(ref.value[idx]) + _fr(ref.low[idx]) - exact.get(idx, Fraction(0)))
            # Double-double: far below one float64 ulp of the result, not just below γ_K·M.
            assert err <= Fraction(2.0**-60) * Fraction(
                max(abs(float(exact.get(idx, 0))), float(ref.magnitude[idx]))
            ) + Fraction(2.0**-1074)


def test_transposed_reference_is_the_input_gradient() -> None:
    problem = make_problem(
        ConvSpec(2, 4, 6, (9, 8), (3, 2), stride=(2, 3), dilation=(1, 2), padding=((2, 0), (1, 1)), groups=2), 3
    )
    g = cotangent(problem)
    t, gx = conv_transpose(problem, g), input_gradient(problem, g)
    assert t.value.shape == problem.spec.x_shape and t.method == "transposed"
    np.testing.assert_array_equal(t.value, gx.value)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize(("kernel", "dilation"), [(1, 1), (3, 1), (2, 3), (4, 2)])
@pytest.mark.parametrize("pads", [(0, 0), (1, 0), (0, 2), (2, 1)])
def test_output_padding_reaches_every_input_size(
    stride: int, kernel: int, dilation: int, pads: tuple[int, int]
) -> None:
    """The sizes whose forward convolution has `out` outputs are exactly the transposed-convolution
    formula's for output_padding in [0, stride): output_padding recovers each one."""
    lo, hi = pads
    eff = (kernel - 1) * dilation + 1
    for out in range(1, 6):
        sizes = []
        for n in range(1, 40):
            if n + lo + hi < eff:
                continue
            spec = ConvSpec(1, 1, 1, (n,), (kernel,), stride=(stride,), dilation=(dilation,), padding=(pads,))
            if spec.out_size == (out,):
                sizes.append(n)
                (p,) = output_padding(spec)
                assert n == (out - 1) * stride - lo - hi + dilation * (kernel - 1) + 1 + p
        formula = [(out - 1) * stride - lo - hi + eff + p for p in range(stride)]
        assert sizes == [n for n in formula if n >= 1]


def _through_loops(monkeypatch: pytest.MonkeyPatch, problem: ConvProblem, g: np.ndarray) -> list[ReferenceResult]:
    with monkeypatch.context() as m:
        m.setattr(gradients, "_FAST_DTYPES", ())  # the per-tap loops, as before the GEMM paths
        return [input_gradient(problem, g), weight_gradient(problem, g)]


@given(small)
def test_the_gemm_gradients_are_as_accurate_as_the_loops(drawn: tuple[ConvSpec, int, str]) -> None:
    # The GEMM paths may only be faster: same values within both bounds, a bound never above the loops' one (M
    # may differ in its last bits: both are rounded up past their own error, test_..._exact_definition).
    problem = build(drawn)
    g = cotangent(problem)
    fast = [input_gradient(problem, g), weight_gradient(problem, g)]
    with pytest.MonkeyPatch.context() as m:
        loops = _through_loops(m, problem, g)
    for f, slow in zip(fast, loops):
        assert np.all(f.distance(slow.approx) <= f.error_bound + slow.error_bound + 2 * 2.0**-53 * np.abs(slow.approx))
        assert np.all(f.error_bound <= slow.error_bound * (1 + 1e-12) + 2.0**-1074)


REALISTIC = [
    ConvSpec(2, 16, 32, (20, 20), (3, 3), padding=((1, 1), (1, 1))),
    ConvSpec(1, 24, 24, (14, 14), (5, 5), groups=24, padding=((2, 2), (2, 2))),  # depthwise
    ConvSpec(2, 64, 16, (7, 7), (1, 1)),
    ConvSpec(2, 8, 8, (21, 19), (3, 3), stride=(2, 3), dilation=(2, 1), padding=((2, 1), (0, 2))),
    ConvSpec(1, 8, 6, (6, 5, 7), (3, 3, 3), padding=((1, 1), (0, 0), (1, 2))),
]
# Not here: float64 input gradients of strided 3-D layers with few channels. Their border elements sum so few
# nonzero products (K) that the loops' γ_2K²·M is below what five slices reach, so they keep the loops.


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", REALISTIC, ids=lambda s: s.describe()[:40])
def test_layers_of_real_networks_take_the_gemm_gradients(spec: ConvSpec, dtype: str) -> None:
    problem = make_problem(spec.with_(dtype=dtype), 3)
    g = cotangent(problem)
    fast_x = gradients._fast_input_gradient(problem, g, input_gradient_terms(problem.spec))
    fast_w = gradients._fast_weight_gradient(problem, g, weight_gradient_terms(problem.spec)[0, 0][None, None])
    assert fast_x is not None and fast_w is not None
    with pytest.MonkeyPatch.context() as m:
        loop_x, loop_w = _through_loops(m, problem, g)
    for f, slow in ((fast_x, loop_x), (fast_w, loop_w)):
        assert f.value.shape == slow.value.shape
        assert np.all(f.distance(slow.approx) <= f.error_bound + slow.error_bound + 2 * 2.0**-53 * np.abs(slow.approx))
        assert np.all(f.error_bound <= slow.error_bound * (1 + 1e-12) + 2.0**-1074)


def test_a_cotangent_in_another_dtype_is_not_rounded_into_the_problems() -> None:
    problem = make_problem(REALISTIC[0].with_(dtype="float32"), 3)
    g = cotangent(problem).astype(np.float64) + 2.0**-40  # not a float32 value: the GEMM paths would round it
    with pytest.MonkeyPatch.context() as m:
        loops = _through_loops(m, problem, g)
    for fast, slow in zip([input_gradient(problem, g), weight_gradient(problem, g)], loops):
        np.testing.assert_array_equal(fast.value, slow.value)  # the loops, which take g in float64
