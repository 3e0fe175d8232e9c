"""What every reference view returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """y ≈ `value` + `low` (float64 pair, canonical layout), with |value + low − exact| ≤ `error_bound`.

    `magnitude` is M = |x| ⋆ |w| per output element, the scale the error bound needs (moduli for
    complex problems, whose `value` and `low` are complex128). Integer problems carry exact int64
    `value`s and a zero bound.
    """

    value: np.ndarray
    low: np.ndarray | None
    magnitude: np.ndarray
    error_bound: np.ndarray
    method: str

    def distance(self, actual: np.ndarray) -> np.ndarray:
        """|actual − y| in float64 (the modulus for complex), using the low part so float64 results
        are measured faithfully."""
        if self.value.dtype.kind in "iu" and actual.dtype.kind in "iu":
            return np.asarray(np.abs(actual.astype(np.int64) - self.value), dtype=np.float64)
        complex_ = np.iscomplexobj(actual) or np.iscomplexobj(self.value)
        a = np.asarray(actual, dtype=np.complex128 if complex_ else np.float64)
        d = a - self.value
        if self.low is not None:
            d = d - self.low
        return np.asarray(np.abs(d))

    @property
    def approx(self) -> np.ndarray:
        """The reference as one float64 (complex128) array, rounded once if a low part exists."""
        v = self.value.astype(np.complex128 if np.iscomplexobj(self.value) else np.float64)
        return v if self.low is None else v + self.low
