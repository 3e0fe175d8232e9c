"""The error model's extensions (crosscheck.core.bounds): inputs rounded before the products (precision
modes), complex products in any order, and the 3M (Gauss) method. Each bound is checked against
simulated arithmetic that realises it, and each extension is shown to be needed."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosscheck.core.bounds import accumulation_factor, elementwise_bound, gamma, rounded_product_error
from crosscheck.core.dtypes import dtype_info

F32 = np.float32
U32 = 2.0**-24
BF16 = dtype_info("bfloat16")


def bf16(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def autocast_like(x: np.ndarray, w: np.ndarray, order: np.ndarray) -> float:
    """What a bfloat16 autocast does: round x and w to bfloat16, sum the products in float32 in
    `order`, round the sum to bfloat16."""
    acc = F32(0)
    for i in order:
        acc = F32(acc + F32(bf16(x[i]) * bf16(w[i])))
    return float(bf16(np.array(acc)))


def mode_bound(y: float, m: float, k: int, u_in: float) -> float:
    b = elementwise_bound(np.array(y), np.array(m), k, BF16.unit_roundoff, U32, BF16.smallest_normal, u_in=u_in)
    return float(b)


@given(st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_rounded_inputs_stay_within_the_input_rounding_bound(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-2, 2, k).astype(F32), rng.uniform(-2, 2, k).astype(F32)
    got = autocast_like(x, w, rng.permutation(k))
    exact = math.fsum(float(a) * float(b) for a, b in zip(x, w))
    m = math.fsum(abs(float(a) * float(b)) for a, b in zip(x, w))
    assert abs(got - exact) <= mode_bound(exact, m, k, BF16.unit_roundoff)


def test_the_input_rounding_term_is_needed() -> None:
    """Without u_in the bound of a bfloat16-autocast result fails: the inputs' own rounding, up to
    2u_in·|x||w| per product, is not covered by u_out·|y| + γ_K(u_acc)·M."""
    rng = np.random.default_rng(0)
    worst_without, worst_with = 0.0, 0.0
    for _ in range(2000):
        x, w = rng.uniform(-2, 2, 4).astype(F32), rng.uniform(-2, 2, 4).astype(F32)
        got = autocast_like(x, w, np.arange(4))
        exact = math.fsum(float(a) * float(b) for a, b in zip(x, w))
        m = math.fsum(abs(float(a) * float(b)) for a, b in zip(x, w))
        worst_without = max(worst_without, abs(got - exact) / mode_bound(exact, m, 4, 0.0))
        worst_with = max(worst_with, abs(got - exact) / mode_bound(exact, m, 4, BF16.unit_roundoff))
    assert worst_without > 1 >= worst_with


def test_accumulation_factor_composes_the_input_rounding() -> None:
    u_in, k = 2.0**-8, 9
    eps = rounded_product_error(u_in)
    assert eps == 2 * u_in + u_in**2
    assert accumulation_factor(k, U32, u_in=u_in) == pytest.approx((1 + eps) * (1 + gamma(k, U32)) - 1, rel=1e-15)
    assert accumulation_factor(k, U32) == gamma(k, U32)


def _rounded_complex_products(
    x: np.ndarray, w: np.ndarray, rng: np.random.Generator, separate: bool
) -> tuple[float, float]:
    """Σ x·w in float32 arithmetic: complex products then complex sums in a random order, or each
    component as one 2K-term real sum in a random order (`separate`)."""
    a, b, c, d = (v.astype(F32) for v in (x.real, x.imag, w.real, w.imag))
    if separate:
        re_terms = [F32(p) for p in np.concatenate([a * c, -(b * d)])]
        im_terms = [F32(p) for p in np.concatenate([a * d, b * c])]
        re = im = F32(0)
        for i in rng.permutation(len(re_terms)):
            re = F32(re + re_terms[i])
        for i in rng.permutation(len(im_terms)):
            im = F32(im + im_terms[i])
        return float(re), float(im)
    re = im = F32(0)
    for i in rng.permutation(len(a)):
        re = F32(re + F32(F32(a[i] * c[i]) - F32(b[i] * d[i])))
        im = F32(im + F32(F32(a[i] * d[i]) + F32(b[i] * c[i])))
    return float(re), float(im)


def _gauss(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """The 3M method in float32: T1 = Σac, T2 = Σbd, T3 = Σ(a+b)(c+d); Re = T1 − T2, Im = T3 − T1 − T2."""
    a, b, c, d = (v.astype(F32) for v in (x.real, x.imag, w.real, w.imag))
    t1 = t2 = t3 = F32(0)
    for i in range(len(a)):
        t1 = F32(t1 + F32(a[i] * c[i]))
        t2 = F32(t2 + F32(b[i] * d[i]))
        t3 = F32(t3 + F32(F32(a[i] + b[i]) * F32(c[i] + d[i])))
    return float(F32(t1 - t2)), float(F32(F32(t3 - t1) - t2))


def _exact_and_m(x: np.ndarray, w: np.ndarray) -> tuple[complex, float]:
    a, b, c, d = (v.astype(np.float64) for v in (x.real, x.imag, w.real, w.imag))
    re = math.fsum([*(a * c), *(-(b * d))])
    im = math.fsum([*(a * d), *(b * c)])
    return complex(re, im), math.fsum(np.hypot(a, b) * np.hypot(c, d))


@given(st.integers(1, 32), st.integers(0, 2**32 - 1), st.booleans())
def test_complex_sums_in_any_order_stay_within_the_conventional_bound(k: int, seed: int, separate: bool) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-2, 2, k) + 1j * rng.uniform(-2, 2, k)).astype(np.complex64)
    w = (rng.uniform(-2, 2, k) + 1j * rng.uniform(-2, 2, k)).astype(np.complex64)
    re, im = _rounded_complex_products(x, w, rng, separate)
    exact, m = _exact_and_m(x, w)
    assert abs(complex(re, im) - exact) <= accumulation_factor(k, U32, complex_method="conventional") * m


@given(st.integers(1, 32), st.integers(0, 2**32 - 1))
def test_the_3m_method_stays_within_its_bound(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-2, 2, k) + 1j * rng.uniform(-2, 2, k)).astype(np.complex64)
    w = (rng.uniform(-2, 2, k) + 1j * rng.uniform(-2, 2, k)).astype(np.complex64)
    exact, m = _exact_and_m(x, w)
    assert abs(complex(*_gauss(x, w)) - exact) <= accumulation_factor(k, U32, complex_method="3m") * m


# Found by a random search: one complex product by the 3M method, off by 2.16 × the conventional bound.
GAUSS_X = np.array([1.6057287 + 1.1194015j], dtype=np.complex64)
GAUSS_W = np.array([-1.0977291 - 1.0184429j], dtype=np.complex64)


def test_the_3m_method_needs_its_own_bound() -> None:
    exact, m = _exact_and_m(GAUSS_X, GAUSS_W)
    err = abs(complex(*_gauss(GAUSS_X, GAUSS_W)) - exact)
    assert err > 2 * accumulation_factor(1, U32, complex_method="conventional") * m
    assert err <= accumulation_factor(1, U32, complex_method="3m") * m


def test_complex_bounds_cover_higham_for_conventional_arithmetic() -> None:
    # √2·γ_2K ≥ γ_{K+2} for K ≥ 2 (Higham §3.6's conventional bound), and = Lemma 3.5's √2·γ_2 at K = 1.
    for k in (2, 3, 10, 1000):
        assert accumulation_factor(k, U32, complex_method="conventional") >= gamma(k + 2, U32)
    assert accumulation_factor(1, U32, complex_method="conventional") == math.sqrt(2) * gamma(2, U32)
