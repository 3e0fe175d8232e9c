"""The dtypes crosscheck generates, and the floating-point facts the error bound needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class DTypeInfo:
    name: str
    numpy: Any  # a NumPy dtype object; ml_dtypes' bfloat16 is not a builtin scalar type
    is_float: bool
    unit_roundoff: float  # u = 2^-p for a p-bit significand; 0 for integers
    significand_bits: int  # p, including the implicit bit; value bits for integers
    smallest_normal: float  # 0 for integers
    max_value: float
    # Complex dtypes: `unit_roundoff`, `significand_bits`, `smallest_normal` and `max_value` are those
    # of the real component type (complex64 holds two float32s); the bounds add the complex terms.
    is_complex: bool = False


def _float(name: str, dt: Any, p: int) -> DTypeInfo:
    fi = ml_dtypes.finfo(dt)  # type: ignore[no-untyped-call]
    return DTypeInfo(name, np.dtype(dt), True, 2.0**-p, p, float(fi.smallest_normal), float(fi.max))


def _complex(name: str, dt: Any, component: Any, p: int) -> DTypeInfo:
    fi = np.finfo(component)
    return DTypeInfo(name, np.dtype(dt), True, 2.0**-p, p, float(fi.smallest_normal), float(fi.max), True)


def _int(name: str, dt: Any) -> DTypeInfo:
    ii = np.iinfo(dt)
    return DTypeInfo(name, np.dtype(dt), False, 0.0, ii.bits - 1, 0.0, float(ii.max))


DTYPES: dict[str, DTypeInfo] = {
    "float64": _float("float64", np.float64, 53),
    "float32": _float("float32", np.float32, 24),
    "float16": _float("float16", np.float16, 11),
    "bfloat16": _float("bfloat16", ml_dtypes.bfloat16, 8),
    "int32": _int("int32", np.int32),
    "int64": _int("int64", np.int64),
    "complex64": _complex("complex64", np.complex64, np.float32, 24),
    "complex128": _complex("complex128", np.complex128, np.float64, 53),
}

FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
INT_DTYPES = ("int32", "int64")
# Not in any default capability: a backend declares complex only where it really computes it.
COMPLEX_DTYPES = ("complex64", "complex128")

# TF32 keeps float32's range but rounds matmul inputs to a 10-bit stored mantissa (p = 11).
TF32_UNIT_ROUNDOFF = 2.0**-11
BF16_UNIT_ROUNDOFF = 2.0**-8


def dtype_info(name: str) -> DTypeInfo:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype: unknown dtype {name!r}; expected one of {', '.join(DTYPES)}") from None


def default_accumulator(name: str) -> str:
    """The accumulator our contract expects: frameworks accumulate f16/bf16 in float32 on CPU."""
    if name in ("float16", "bfloat16", "float32"):
        return "float32"
    return name  # float64, the integers, and complex (summed in its own component precision)


def ulp(values: np.ndarray, name: str) -> np.ndarray:
    """The spacing of `name`'s floats at each value (float64 array), flooring at the subnormal step.

    For complex dtypes: the spacing of the component type at the value's modulus."""
    info = dtype_info(name)
    if not info.is_float:
        return np.ones_like(values, dtype=np.float64)
    mag = np.abs(values).astype(np.float64)  # the modulus for complex values
    with np.errstate(divide="ignore"):
        exp = np.floor(np.log2(np.where(mag > 0, mag, info.smallest_normal)))
    exp = np.maximum(exp, np.log2(info.smallest_normal))
    return np.asarray(2.0 ** (exp - (info.significand_bits - 1)), dtype=np.float64)
