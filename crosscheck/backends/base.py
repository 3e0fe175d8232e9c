"""What a backend adapter is: a framework's convolution behind one call, plus what it can do."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crosscheck.dtypes import FLOAT_DTYPES, INT_DTYPES, default_accumulator, dtype_info
from crosscheck.padding import NAMED_MODES
from crosscheck.problem import ConvProblem, ConvSpec

Constraint = Callable[[ConvSpec], "str | None"]

ALL_PADDING = ("explicit", *NAMED_MODES)


@dataclass(frozen=True)
class Capabilities:
    """The part of the problem space a backend supports; strategies draw only from it.

    `unsupported` lists (feature, reason) pairs so that the record shows what is left out and why;
    `constraints` refuse combinations that the per-field lists cannot express (each returns a
    reason or None).
    """

    ranks: tuple[int, ...] = (1, 2, 3)
    dtypes: tuple[str, ...] = FLOAT_DTYPES + INT_DTYPES
    padding: tuple[str, ...] = ALL_PADDING
    layouts: tuple[str, ...] = ("channels_first",)
    groups: bool = True
    max_stride: int = 4
    max_dilation: int = 3
    accumulators: Mapping[str, str] = field(default_factory=dict)
    bound: str = "elementwise"
    unsupported: tuple[tuple[str, str], ...] = ()
    constraints: tuple[Constraint, ...] = ()

    def accumulator(self, dtype: str) -> str:
        return self.accumulators.get(dtype, default_accumulator(dtype))

    def u_acc(self, dtype: str) -> float:
        return dtype_info(self.accumulator(dtype)).unit_roundoff

    def refuses(self, spec: ConvSpec) -> str | None:
        """Why this backend cannot run `spec`, or None if it declares it supported."""
        if spec.rank not in self.ranks:
            return f"rank {spec.rank} is not supported"
        if spec.dtype not in self.dtypes:
            return f"dtype {spec.dtype} is not supported"
        mode = spec.padding if isinstance(spec.padding, str) else "explicit"
        if mode not in self.padding:
            return f"padding {mode} is not supported"
        if spec.layout not in self.layouts:
            return f"layout {spec.layout} is not supported"
        if spec.groups > 1 and not self.groups:
            return "groups > 1 are not supported"
        if max(spec.stride) > self.max_stride:
            return f"stride > {self.max_stride} is not supported"
        if max(spec.dilation) > self.max_dilation:
            return f"dilation > {self.max_dilation} is not supported"
        for rule in self.constraints:
            reason = rule(spec)
            if reason:
                return reason
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranks": list(self.ranks),
            "dtypes": list(self.dtypes),
            "padding": list(self.padding),
            "layouts": list(self.layouts),
            "groups": self.groups,
            "max_stride": self.max_stride,
            "max_dilation": self.max_dilation,
            "accumulators": {d: self.accumulator(d) for d in self.dtypes},
            "bound": self.bound,
            "unsupported": [{"feature": f, "reason": r} for f, r in self.unsupported],
        }


class BackendUnavailable(Exception):
    """The framework behind a backend is not installed or cannot run here."""


class Backend(abc.ABC):
    """One framework's convolution. Subclasses import their framework inside methods, never at
    module import, so that `import crosscheck` stays free of deep-learning frameworks."""

    name: str = ""
    framework: str = ""  # the distribution whose version is reported
    module: str = ""  # what must import for the backend to be available
    description: str = ""
    devices: tuple[str, ...] = ("cpu",)

    def __init__(self, device: str = "cpu") -> None:
        if device not in self.devices:
            raise BackendUnavailable(
                f"{self.name}: device {device!r} is not supported (runs on {', '.join(self.devices)})"
            )
        self.device = device

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abc.abstractmethod
    def run(self, problem: ConvProblem) -> np.ndarray:
        """The convolution of `problem`, as a NumPy array (N, C_out, *out) in the problem's dtype."""

    def check_available(self) -> None:
        """Raise BackendUnavailable with the reason if the framework cannot be used."""
        if self.module:
            import importlib

            try:
                importlib.import_module(self.module)
            except ImportError as exc:
                raise BackendUnavailable(
                    f"{self.name}: {self.framework} is not installed ({exc}); pip install {self.framework}"
                ) from exc

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.framework)
        except PackageNotFoundError:
            return "not installed"

    def precision_flags(self) -> dict[str, Any]:
        """Flags that change numerical results (TF32, default precision, ...), as pinned."""
        return {}

    def native_snippet(self, problem: ConvProblem) -> str | None:
        """A snippet that calls the framework directly on `problem`'s arrays, if the adapter has one."""
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "framework": self.framework,
            "description": self.description,
            "version": self.version(),
            "device": self.device,
            "capabilities": self.capabilities().to_dict(),
            "precision_flags": self.precision_flags(),
        }
