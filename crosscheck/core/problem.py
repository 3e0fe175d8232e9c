"""One convolution problem: its geometry (ConvSpec) and the arrays and seed that instantiate it."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from crosscheck.core.dtypes import dtype_info
from crosscheck.core.errors import ProblemError
from crosscheck.core.padding import NAMED_MODES, Pads, effective_kernel, resolve_padding

# channels_first: (N, C, *spatial) contiguous; channels_last: (N, *spatial, C) in memory (NHWC);
# strided: the canonical order handed over as a non-contiguous view (sliced and permuted storage).
LAYOUTS = ("channels_first", "channels_last", "strided")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProblemError(f"{name}: must be a positive integer, got {value!r}")


def _per_dim(name: str, values: tuple[int, ...], rank: int) -> None:
    if len(values) != rank:
        raise ProblemError(f"{name}: needs one entry per spatial dimension ({rank}), got {values!r}")
    for v in values:
        _positive(name, v)


@dataclass(frozen=True)
class ConvSpec:
    """Geometry and dtype of an N-d convolution in the canonical (N, C, *spatial) layout.

    `padding` is either explicit `((lo, hi), ...)` per spatial dimension or a named mode
    (VALID, SAME, SAME_LOWER); `layout` is the memory layout a backend is asked to use.
    """

    batch: int
    in_channels: int
    out_channels: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    padding: Pads | str = "VALID"
    groups: int = 1
    dtype: str = "float32"
    layout: str = "channels_first"

    def __post_init__(self) -> None:
        rank = len(self.in_size)
        # Accept lists (from JSON or users) but store tuples so the spec stays hashable.
        object.__setattr__(self, "in_size", tuple(self.in_size))
        object.__setattr__(self, "kernel", tuple(self.kernel))
        object.__setattr__(self, "stride", tuple(self.stride) or (1,) * rank)
        object.__setattr__(self, "dilation", tuple(self.dilation) or (1,) * rank)
        if not isinstance(self.padding, str):
            object.__setattr__(self, "padding", tuple(tuple(p) for p in self.padding))
        self._validate()

    def _validate(self) -> None:
        rank = self.rank
        if rank not in (1, 2, 3):
            raise ProblemError(f"in_size: rank must be 1, 2 or 3 spatial dimensions, got {rank}")
        for name in ("batch", "in_channels", "out_channels", "groups"):
            _positive(name, getattr(self, name))
        _per_dim("in_size", self.in_size, rank)
        _per_dim("kernel", self.kernel, rank)
        _per_dim("stride", self.stride, rank)
        _per_dim("dilation", self.dilation, rank)
        if self.in_channels % self.groups:
            raise ProblemError(f"groups: {self.groups} does not divide in_channels={self.in_channels}")
        if self.out_channels % self.groups:
            raise ProblemError(f"groups: {self.groups} does not divide out_channels={self.out_channels}")
        dtype_info(self.dtype)
        if self.layout not in LAYOUTS:
            raise ProblemError(f"layout: expected one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if isinstance(self.padding, str):
            if self.padding not in NAMED_MODES:
                raise ProblemError(f"padding: unknown mode {self.padding!r}; expected one of {', '.join(NAMED_MODES)}")
        else:
            if len(self.padding) != rank or any(len(p) != 2 for p in self.padding):
                raise ProblemError(f"padding: needs one (lo, hi) pair per spatial dimension, got {self.padding!r}")
            for lo, hi in self.padding:
                if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (lo, hi)):
                    raise ProblemError(f"padding: pads must be non-negative integers, got {self.padding!r}")
        for d, (n, (lo, hi), k, dil) in enumerate(zip(self.in_size, self.pads, self.kernel, self.dilation)):
            eff = effective_kernel(k, dil)
            if n + lo + hi < eff:
                raise ProblemError(
                    f"kernel: dilated window {eff} in dimension {d} is larger than the padded input {n + lo + hi}"
                )

    @property
    def rank(self) -> int:
        return len(self.in_size)

    # Cached: the reference asks for the geometry once per kernel tap (a frozen spec never changes it).
    @functools.cached_property
    def pads(self) -> Pads:
        if isinstance(self.padding, str):
            return resolve_padding(self.padding, self.in_size, self.kernel, self.stride, self.dilation)
        return self.padding

    @functools.cached_property
    def out_size(self) -> tuple[int, ...]:
        return tuple(
            (n + lo + hi - effective_kernel(k, d)) // s + 1
            for n, (lo, hi), k, s, d in zip(self.in_size, self.pads, self.kernel, self.stride, self.dilation)
        )

    @property
    def terms(self) -> int:
        """K: the number of products summed into each output element."""
        return (self.in_channels // self.groups) * math.prod(self.kernel)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.in_size)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.out_size)

    @property
    def macs(self) -> int:
        return math.prod(self.y_shape) * self.terms

    def with_(self, **changes: Any) -> ConvSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("in_size", "kernel", "stride", "dilation"):
            d[key] = list(d[key])
        if not isinstance(self.padding, str):
            d["padding"] = [list(p) for p in self.padding]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConvSpec:
        d = dict(d)
        if not isinstance(d.get("padding", "VALID"), str):
            d["padding"] = tuple(tuple(p) for p in d["padding"])
        return cls(**d)

    def describe(self) -> str:
        pad = self.padding if isinstance(self.padding, str) else list(map(list, self.padding))
        return (
            f"{self.rank}-D {self.dtype} x{list(self.x_shape)} w{list(self.w_shape)} groups={self.groups} "
            f"stride={list(self.stride)} dilation={list(self.dilation)} padding={pad} layout={self.layout}"
        )


@dataclass(frozen=True, eq=False)
class ConvProblem:
    """A ConvSpec with its input `x` (N, C_in, *in_size) and weight `w` (C_out, C_in/groups, *kernel).

    Arrays are in the spec's dtype; `seed` and `values` regenerate them exactly (see `make_problem`).
    """

    spec: ConvSpec
    x: np.ndarray
    w: np.ndarray
    seed: int = 0
    values: str = "uniform"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = dtype_info(self.spec.dtype).numpy
        for name, arr, shape in (("x", self.x, self.spec.x_shape), ("w", self.w, self.spec.w_shape)):
            if not isinstance(arr, np.ndarray):
                raise ProblemError(f"{name}: expected a NumPy array, got {type(arr).__name__}")
            if arr.shape != shape:
                raise ProblemError(f"{name}: shape {arr.shape} does not match the spec's {shape}")
            if arr.dtype != want:
                raise ProblemError(f"{name}: dtype {arr.dtype} does not match the spec's {self.spec.dtype}")

    @property
    def exact(self) -> bool:
        """True when the values make every partial sum exact, so backends must agree bit for bit."""
        return self.values == "exact" or not dtype_info(self.spec.dtype).is_float

    def where(self) -> str:
        """The line every failure message ends its location with: what regenerates this problem."""
        return f"Problem: {self.spec.describe()} seed={self.seed} values={self.values}"

    def with_weight(self, w: np.ndarray, **meta: Any) -> ConvProblem:
        """The same input with weight `w`; `meta` records how w was derived (for reproducers)."""
        return replace(self, w=np.ascontiguousarray(w), meta={**self.meta, **meta})

    def flipped(self) -> ConvProblem:
        """The same problem with the kernel reversed along every spatial axis."""
        axes = tuple(range(2, 2 + self.spec.rank))
        return self.with_weight(np.flip(self.w, axis=axes), flipped=not self.meta.get("flipped", False))

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "seed": self.seed, "values": self.values, "meta": dict(self.meta)}
