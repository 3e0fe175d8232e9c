"""The seed question's worked example: a 5×5 input and a 3×3 kernel whose cross-correlation is the
answer, and an asymmetric kernel on which correlation and convolution differ. The report renders it
on its first screen; `crosscheck explain` steps through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED_A = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=np.int64)
SEED_B = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.int64)
# Asymmetric, so flipping it changes the result: correlation and convolution can be told apart.
ASYM_B = np.array([[1, 2, 0], [0, 1, 0], [0, 0, 0]], dtype=np.int64)


def correlate_valid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C[m, n] = Σ_u Σ_v a[m+u, n+v]·b[u, v]: the literal sum of element-wise products."""
    kh, kw = b.shape
    out = np.zeros((a.shape[0] - kh + 1, a.shape[1] - kw + 1), dtype=np.int64)
    for m in range(out.shape[0]):
        for n in range(out.shape[1]):
            out[m, n] = sum(int(a[m + u, n + v]) * int(b[u, v]) for u in range(kh) for v in range(kw))
    return out


def convolve_valid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The textbook convolution: the correlation with the kernel flipped along both axes."""
    return correlate_valid(a, b[::-1, ::-1])


@dataclass(frozen=True)
class SeedExample:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray  # correlation of a and b (the seed's answer)
    b2: np.ndarray
    corr2: np.ndarray  # correlate(a, b2): what CNN layers compute
    conv2: np.ndarray  # convolve(a, b2): the flipped kernel


def seed_example() -> SeedExample:
    return SeedExample(
        SEED_A,
        SEED_B,
        correlate_valid(SEED_A, SEED_B),
        ASYM_B,
        correlate_valid(SEED_A, ASYM_B),
        convolve_valid(SEED_A, ASYM_B),
    )
