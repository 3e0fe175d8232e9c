"""The default reference: the element-wise-sum definition evaluated as matrix products (BLAS).

Each output element is the dot product of its flattened window with the flattened filter, so the
whole convolution is one product per group of the im2col matrix X (one row per output position,
K = C_in/G · prod(kernel) columns) with the filter matrix W (K × C_out/G). BLAS runs that at the
machine's float64 FLOP rate; what the view must add is an error model as strict as the element-wise
loop's:

- float32, float16, bfloat16: every product of two ≤24-bit significands is exact in float64, so a
  float64 GEMM is off by at most γ_K(2⁻⁵³)·M, whatever order BLAS sums in (Higham §3.1).
- complex64: complex128 GEMM; the real products are exact, the sums are covered by the any-order
  complex bound.
- float64: error-free slices (Ozaki, Ogita, Oishi & Rump 2012). Each row of X and column of W is
  cut into s slices of b bits, aligned to that row's (column's) largest power of two, with
  2b + log2 K ≤ 53: then every product of slices X_i·W_j is a sum of K integers (in units of one
  quantum) below 2⁵³, which float64 GEMM computes *exactly* in any order, FMA or not. The slice
  products with i + j ≤ s + 1 are summed as a double-double; the dropped products and the
  remainders below the last slice are bounded per element, and s grows until that bound is below
  2⁻¹⁰ of the float64 bound being judged (γ_K(2⁻⁵³)·M). Values whose slices would overflow or
  underflow take the element-wise double-double path instead.
  Before that, `_stacked_float64` tries two cheaper forms in the canonical layout (`crosscheck.reference.stacked`):
  one exact slice product A1·B1 plus the rest A1·B' + A'·B as one rounded GEMM of 2K terms, whose error
  γ_2K(u)·K·2^(e+f−b) per element must itself be below that share (4K multiply-adds per element with M, where
  the slices take 7K); else the slices cut on the padded input with one exact GEMM per level i + j.
- complex128: the four real sliced products (Re = ac − bd, Im = ad + bc), each within its own share.
- integers take the element-wise path: they must stay exact in int64, which BLAS does not offer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from crosscheck.core.bounds import F64_U, accumulation_factor, gamma
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.elementwise import elementwise, two_sum
from crosscheck.reference.geometry import grouped_input, grouped_weight, tap_windows
from crosscheck.reference.result import ReferenceResult
from crosscheck.reference.stacked import canonical as stacked_canonical
from crosscheck.reference.stacked import magnitude_float64, narrow, product, stacked_columns

# The reference's own error may use at most this fraction of the float64 bound γ_K(u)·M it judges.
ACCURACY_SHARE = 2.0**-10
MAX_SLICES = 5
# Slicing scales values by up to 2^52 and down to 2^(−(s + 1)·b): σ must stay below 2^900 and each
# side's lowest quantum above 2^−500, so that a product's quantum (their sum) is a normal number.
_SAFE_EXPONENT = 900


def columns(problem: ConvProblem, dtype: type) -> np.ndarray:
    """The im2col matrix per group, (G, K, N·prod(out)), K ordered (channel, kernel taps) like the filter.

    One row per (channel, tap): copying it reads the padded input along its rows at the stride, which is
    several times faster than gathering one window per output position.
    """
    spec = problem.spec
    xg = grouped_input(problem.x, spec, dtype)  # (N, G, Cg, *padded)
    rank = spec.rank
    v = tap_windows(xg, spec)  # (N, G, Cg, *kernel, *out)
    v = v.transpose(1, 2, *range(3, 3 + rank), 0, *range(3 + rank, 3 + 2 * rank))  # (G, Cg, *kernel, N, *out)
    return np.ascontiguousarray(v).reshape(spec.groups, spec.terms, -1)


def filters(problem: ConvProblem, dtype: type) -> np.ndarray:
    """The filter matrix per group, (G, C_out/G, K)."""
    spec = problem.spec
    wg = grouped_weight(problem.w, spec, dtype)
    return np.ascontiguousarray(wg).reshape(spec.groups, spec.out_channels // spec.groups, spec.terms)


def canonical(spec: ConvSpec, y: np.ndarray) -> np.ndarray:
    """(G, C_out/G, N·prod(out)) -> (N, C_out, *out)."""
    og = spec.out_channels // spec.groups
    y = y.reshape(spec.groups, og, spec.batch, *spec.out_size)
    y = np.moveaxis(y, 2, 0)  # (N, G, Og, *out)
    return np.ascontiguousarray(y).reshape(spec.batch, spec.out_channels, *spec.out_size)


def magnitude_product(a: np.ndarray, b: np.ndarray, terms: int) -> np.ndarray:
    """|A|·|B| rounded up past its own float64 error (sums of non-negative terms: γ_{K+1} relative)."""
    return np.asarray(np.matmul(np.abs(a), np.abs(b)) * (1 + gamma(terms + 1, F64_U)))


def slice_bits(terms: int) -> int:
    """b with 2b + log2 K ≤ 53: a K-term dot product of b-bit slices is exact in float64."""
    return (53 - math.ceil(math.log2(max(terms, 1)))) // 2


def _exponents(a: np.ndarray, axis: int) -> np.ndarray:
    """e with max |a| ≤ 2^e along `axis` (kept as a size-1 axis); 0 for all-zero lines."""
    _, e = np.frexp(np.max(np.abs(a), axis=axis, keepdims=True))
    return np.asarray(e, dtype=np.float64)


def split(
    a: np.ndarray, axis: int, bits: int, count: int, exponents: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """`count` slices of `a` and the remainder: slice i holds multiples of 2^(e − i·bits), |slice| ≤ 2|a|,
    with e = `exponents` (default `_exponents(a, axis)`).

    fl((r + σ) − σ) with σ = 1.5·2^(t + 52) rounds r to the nearest multiple of 2^t = ulp(σ), exactly
    (|r| < 2^(t + 51) keeps r + σ inside σ's binade); r minus that is exact as well.
    """
    e = _exponents(a, axis) if exponents is None else exponents
    rest: np.ndarray | None = None
    slices = []
    for i in range(1, count + 1):
        sigma = np.ldexp(1.5, (e - i * bits + 52).astype(np.int64))
        head = (a if rest is None else rest) + sigma
        head -= sigma
        slices.append(head)
        if rest is None:
            rest = a - head
        else:
            rest -= head  # in place: these arrays are the size of the im2col matrix
    return slices, a.copy() if rest is None else rest


def _exponent_range(*lines: tuple[np.ndarray, np.ndarray]) -> tuple[int, int] | None:
    """(lowest, highest) exponent over the non-zero lines of each side — given as (max |line|, its
    exponent) pairs — with the lowest taken per side; None when a side is all zeros."""
    lowest, highest = [], []
    for m, e in lines:
        nonzero = m > 0
        if not np.any(nonzero):
            return None
        lowest.append(int(e[nonzero].min()))
        highest.append(int(e[nonzero].max()))
    return min(lowest), max(highest)


def _slices_are_safe(exponents: tuple[int, int] | None, bits: int, count: int) -> bool:
    """σ stays finite and normal, and every slice product's quantum stays a normal number."""
    if exponents is None:
        return True  # an all-zero side: every product is an exact zero
    lowest, highest = exponents
    return highest + 52 < _SAFE_EXPONENT and lowest - (count + 1) * bits > -_SAFE_EXPONENT // 2 - 50


def _truncation_factor(bits: int, count: int) -> float:
    """κ with |A·B − Σ_{i+j≤s+1} A_i·B_j| ≤ K·κ·2^(e_r + f_c) per element (see `_float64_products`)."""
    grow = (1 + 2.0**-bits) ** 2
    dropped = sum(
        2.0 ** (-(i + j - 2) * bits) * grow
        for i in range(1, count + 1)
        for j in range(1, count + 1)
        if i + j > count + 1
    )
    rest = 2.0 ** (-count * bits - 1)
    return (dropped + rest * (1 + 2.0**-bits) + (1 + rest) * rest) * (1 + 2.0**-40)


def _float64_products(
    a: np.ndarray, b: np.ndarray, mag: np.ndarray, terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(hi, lo, bound) of A·B for float64 A (G, R, K) and B (G, K, C), or None to use double-double."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    bits = slice_bits(terms)
    # One pass over each side for its lines' largest magnitudes: exponents, safety and slicing share it.
    ma, mb = np.max(np.abs(a), axis=2, keepdims=True), np.max(np.abs(b), axis=1, keepdims=True)
    ea, eb = (np.asarray(np.frexp(m)[1], dtype=np.float64) for m in (ma, mb))  # (G, R, 1), (G, 1, C)
    exponents = _exponent_range((ma, ea), (mb, eb))
    scale = np.ldexp(1.0, (ea + eb).astype(np.int64))  # 2^(e_r + f_c) per element
    target = ACCURACY_SHARE * gamma(terms, F64_U) * mag
    for count in range(3, MAX_SLICES + 1):
        if not _slices_are_safe(exponents, bits, count):
            return None
        # |X_i| ≤ 2|x| and |remainder| ≤ |x| elementwise, so c·M bounds the truncation as well:
        # that keeps elements whose windows are mostly zeros (M ≪ 2^(e+f)) from needing more slices.
        pairs = sum(1 for i in range(1, count + 1) for j in range(1, count + 1) if i + j > count + 1)
        per_element = min(terms * _truncation_factor(bits, count), 1.0)
        truncation = np.minimum(per_element * scale, (4 * pairs + 4) * mag)
        if not np.all(truncation <= target):
            continue
        a_slices, _ = split(a, 2, bits, count, ea)
        b_slices, _ = split(b, 1, bits, count, eb)
        hi = np.zeros(mag.shape)
        lo = np.zeros(mag.shape)
        n = 0
        for total in range(2, count + 2):  # largest products first: the double-double sum stays tight
            for i in range(1, total):
                p = np.matmul(a_slices[i - 1], b_slices[total - i - 1])  # exact (see the module docstring)
                hi, e = two_sum(hi, p)
                lo = lo + e
                n += 1
        # Σ|products| ≤ (Σ_i|X_i|)·(Σ_j|W_j|) ≤ (1 + 2^(1−b))²·M + the remainders: 2·M is generous.
        summed = gamma(n, F64_U) ** 2 * 2 * mag
        hi, lo = two_sum(hi, lo)
        bound = (truncation + summed) * (1 + 2.0**-40) + 2.0**-1074
        return hi, lo, bound
    return None


def _complex128_products(a: np.ndarray, b: np.ndarray, terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(hi, lo, bound) of complex A·B from the four real sliced products: Re = pr − qs, Im = ps + qr
    for A = p + iq, B = r + is."""
    p_, q_, r_, s_ = a.real.copy(), a.imag.copy(), b.real.copy(), b.imag.copy()
    parts = {}
    for name, (p, q) in {"pr": (p_, r_), "qs": (q_, s_), "ps": (p_, s_), "qr": (q_, r_)}.items():
        got = _float64_products(p, q, magnitude_product(p, q, terms), terms)
        if got is None:
            return None
        parts[name] = got
    components = []
    for first, second, sign in (("pr", "qs", -1.0), ("ps", "qr", 1.0)):
        (h1, l1, b1), (h2, l2, b2) = parts[first], parts[second]
        hi, e = two_sum(h1, sign * h2)
        lo = (l1 + sign * l2) + e  # two roundings of terms already below u·|hi|: 2u·(|l1| + |l2| + |e|)
        hi, lo2 = two_sum(hi, lo)
        bound = b1 + b2 + 4 * F64_U * (np.abs(l1) + np.abs(l2) + np.abs(e))
        components.append((hi, lo2, bound))
    (rh, rl, rb), (ih, il, ib) = components
    # |error| of the complex value ≤ |Re error| + |Im error|.
    return rh + 1j * ih, rl + 1j * il, (rb + ib) * (1 + 4 * F64_U)


def gemm(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    info = dtype_info(spec.dtype)
    if not info.is_float or spec.terms == 0:
        return elementwise(problem)
    if spec.dtype in NARROW_REAL:
        return _narrow(problem)
    if spec.dtype == "float64":
        fast = _stacked_float64(problem)
        if fast is not None:
            return fast
    work = np.complex128 if info.is_complex else np.float64
    # A = filters (G, Og, K) times B = columns (G, K, N·P): the sliced paths split A's rows and B's columns.
    a, b = filters(problem, work), columns(problem, work)
    mag_g = magnitude_product(a, b, spec.terms)
    if info.is_complex:
        mag_g = mag_g * (1 + 4 * F64_U)  # np.abs of complex128 is within an ulp
    mag = canonical(spec, mag_g)
    if spec.dtype == "complex64":
        # The real products of complex64 parts are exact in float64; the any-order complex bound covers the sums.
        y = canonical(spec, np.matmul(a, b))
        bound = accumulation_factor(spec.terms, F64_U, complex_method="conventional") * mag
        return ReferenceResult(y, None, mag, bound, "gemm")
    got = (
        _float64_products(a, b, mag_g, spec.terms)
        if spec.dtype == "float64"
        else _complex128_products(a, b, spec.terms)
    )
    if got is None:
        return elementwise(problem)
    hi, lo, bound = got
    return ReferenceResult(canonical(spec, hi), canonical(spec, lo), mag, canonical(spec, bound), "gemm")


NARROW_REAL = ("float32", "float16", "bfloat16")


def _narrow(problem: ConvProblem) -> ReferenceResult:
    """float32 and narrower: values exact in float32, products exact in float64, one float64 GEMM."""
    spec = problem.spec
    a32 = filters(problem, np.float32)
    # The columns hold the input's values and padding zeros: checking x and w is enough, and 9x cheaper.
    safe = spec.terms < 2**16 and _float32_within(_FLOAT32_RANGE, problem.x.astype(np.float32, copy=False), a32)
    y, mag = narrow(problem, a32, float32_moduli=safe)  # K·2^112 < float32's 2^128: K below 2^16
    # Products of ≤24-bit significands are exact in float64; only the K additions round.
    return ReferenceResult(y, None, mag, gamma(spec.terms, F64_U) * mag, "gemm")


# Non-zero moduli inside [2^-60, 2^56]: every float32 product is a normal number and K of them cannot overflow.
_FLOAT32_RANGE = (2.0**-60, 2.0**56)


@functools.cache
def _float32_bits(limits: tuple[float, float]) -> tuple[int, int]:
    low, high = (int(np.float32(v).view(np.int32)) for v in limits)
    return low, high


def _float32_within(limits: tuple[float, float], *arrays: np.ndarray) -> bool:
    """Every non-zero value of the float32 `arrays` has its modulus inside [low, high] (NaN and ±inf do not). Read on
    the bits: without its sign bit, a float32's bit pattern orders like its modulus, and one less than it turns zero
    into the largest unsigned integer, so one maximum and one minimum decide, with no moduli taken: 14 µs for x and w of
    a 2.6·10⁶-multiply-add problem (18k and 2k elements) where the moduli and `_moduli_within` took 18 µs."""
    low, high = _float32_bits(limits)
    for a in arrays:
        if not a.size:
            continue
        bits = a.view(np.int32) & np.int32(0x7FFFFFFF)
        if int(bits.max()) > high:  # NaN and ±inf lie above every finite bit pattern
            return False
        bits -= 1
        if int(bits.view(np.uint32).min()) < low - 1:
            return False
    return True


def _moduli_within(limits: tuple[float, float], *moduli: np.ndarray) -> bool:
    """Every non-zero one of `moduli` (float64 arrays of |values|) inside [low, high]. Element-wise comparisons only:
    gathering the elements below `low` first (every zero among them) cost 0.4 ms on a 2·10⁵-element input with 10 %
    zeros, 8× the rest, and counting them with count_nonzero (twice) costs 2× the rest."""
    low, high = limits
    for m in moduli:
        if m.size and (float(m.max()) > high or bool(np.any((m < low) & (m > 0)))):
            return False
    return True


def _stacked_float64(
    problem: ConvProblem, tail: bool = True, target_of: Callable[[np.ndarray], np.ndarray] | None = None
) -> ReferenceResult | None:
    """The float64 result from slices of the padded input (`crosscheck.reference.stacked`), or None where the
    image-wide alignment would truncate some element past its share (then the per-column slices decide). `tail`
    False skips the one-slice path, as values outside its range do (the tests prove each path on its own).
    `target_of(M)` (M in the (N, G, C_out/G, P) layout) replaces the share as the error each element may carry:
    the gradients demand their own, stricter one (`crosscheck.reference.gradients`)."""
    spec = problem.spec
    terms = spec.terms
    a = filters(problem, np.float64)  # (G, Og, K)
    xg = grouped_input(problem.x, spec, np.float64)  # (N, G, Cg, *padded)
    # One modulus pass per side serves the finiteness test, the exponents, the range test and M.
    moduli_a, moduli_x = np.abs(a), np.abs(xg)
    ma = np.max(moduli_a, axis=2, keepdims=True)  # (G, Og, 1)
    mx = np.max(moduli_x.reshape(spec.batch, spec.groups, -1), axis=2)  # (N, G)
    if not (np.all(np.isfinite(ma)) and np.all(np.isfinite(mx))):  # a NaN or an infinity is its line's maximum
        return None
    mag = magnitude_float64(moduli_a, moduli_x, spec)  # (N, G, Og, P)
    ea = np.asarray(np.frexp(ma)[1], dtype=np.float64)
    ex = np.asarray(np.frexp(mx)[1], dtype=np.float64)
    target = ACCURACY_SHARE * gamma(terms, F64_U) * mag if target_of is None else target_of(mag)
    exponents = _exponent_range((ma, ea), (mx, ex))
    shift = (ea[None] + ex[:, :, None, None]).astype(np.int64)  # e_row + f_image, (N, G, Og, 1)
    pad = (slice(None), slice(None)) + (None,) * (xg.ndim - 2)
    if tail and _moduli_within(_TAIL_RANGE, moduli_x, moduli_a):
        bits = slice_bits(terms)
        # A = A1 + A', B = B1 + B' (one slice, exact remainders): A·B = A1·B1 + (A·B' + A'·B1). A1·B1 is exact
        # (K products of b-bit slices); the rest, 2K terms, rounds by at most γ_2K(u)·Σ(|A||B'| + |A'||B1|)
        # (Higham §3.1, products included, any order), and |A| < 2^e, |B'| ≤ 2^(f−b−1), |A'| ≤ 2^(e−b−1),
        # |B1| ≤ 2^f (|B| < 2^f rounded to a multiple of 2^(f−b)) make that sum at most K·2^(e+f−b).
        # An element with M = 0 has a zero in every term: exact. The columns of B1 serve both products, so the
        # path gathers three im2col matrices (|B|, B1, B'), not four.
        rounded = gamma(2 * terms, F64_U) * terms * np.ldexp(1.0, shift - bits) * (1 + 2.0**-40)
        rounded = np.where(mag > 0, rounded, 0.0)
        if np.all(rounded <= target):
            (x1,), x_rest = split(xg, 2, bits, 1, ex[pad])
            (a1,), a_rest = split(a, 2, bits, 1, ea)
            # One im2col per operand rather than one stacked: the same copies, and none at all for a 1×1 layer of
            # stride 1, whose columns are the input itself. fl(fl(A·B') + fl(A'·B1)) is one summation order of the
            # 2K products, inside the same γ_2K bound.
            b1 = stacked_columns([x1], spec)
            p1 = product(a1, b1)
            rest = product(a_rest, b1)
            del b1
            rest += product(a, stacked_columns([x_rest], spec))
            hi, lo = two_sum(p1, rest)
            return _stacked_result(spec, hi, lo, mag, rounded + 2.0**-1074)
    for count in range(3, MAX_SLICES + 1):
        bits = slice_bits(count * terms)  # every level's sum of up to count·K slice products is exact
        if not _slices_are_safe(exponents, bits, count):
            return None
        pairs = sum(1 for i in range(1, count + 1) for j in range(1, count + 1) if i + j > count + 1)
        per_element = min(terms * _truncation_factor(bits, count), 1.0)
        truncation = np.minimum(per_element * np.ldexp(1.0, shift), (4 * pairs + 4) * mag)
        if np.all(truncation <= target):
            break
    else:
        return None
    x_slices, _ = split(xg, 2, bits, count, ex[pad])
    a_slices, _ = split(a, 2, bits, count, ea)
    b = stacked_columns(x_slices, spec)  # (N, G, count·K, P) = [B1; B2; B3]
    hi = np.zeros(mag.shape)
    lo = np.zeros(mag.shape)
    for level in range(1, count + 1):  # level t + 1 = i + j: largest first, the double-double sum stays tight
        a_level = a_slices[level - 1] if level == 1 else np.concatenate(a_slices[level - 1 :: -1], axis=2)
        p = product(a_level, b[:, :, : level * terms])  # Σ_{i+j=level+1} A_i·B_j: exact (module docstring)
        hi, e = two_sum(hi, p)
        lo += e
    # Σ|levels| ≤ Σ|products| ≤ (Σ_i|X_i|)·(Σ_j|W_j|) ≤ (1 + 2^(1−b))²·M + the remainders: 2·M is generous.
    summed = gamma(count, F64_U) ** 2 * 2 * mag
    hi, lo = two_sum(hi, lo)
    bound = (truncation + summed) * (1 + 2.0**-40) + 2.0**-1074
    return _stacked_result(spec, hi, lo, mag, bound)


def _stacked_result(
    spec: ConvSpec, hi: np.ndarray, lo: np.ndarray, mag: np.ndarray, bound: np.ndarray
) -> ReferenceResult:
    def c(a: np.ndarray) -> np.ndarray:
        return stacked_canonical(spec, a)

    return ReferenceResult(c(hi), c(lo), c(mag), c(bound), "gemm")


# Non-zero moduli of x and w inside [2^-400, 2^400]: every product in the one-slice path, its remainders' included,
# is a normal number far from overflow, so the rounded GEMM's error is relative (no underflow term).
_TAIL_RANGE = (2.0**-400, 2.0**400)
