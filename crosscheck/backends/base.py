"""What a backend adapter is: a framework's convolution behind one call, plus what it can do."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crosscheck.core.dtypes import FLOAT_DTYPES, INT_DTYPES, default_accumulator, dtype_info
from crosscheck.core.padding import NAMED_MODES
from crosscheck.core.problem import ConvProblem, ConvSpec

Constraint = Callable[[ConvSpec], "str | None"]


def first_refusal(constraints: tuple[Constraint, ...], spec: ConvSpec) -> str | None:
    """The reason of the first constraint that refuses `spec`, or None."""
    for rule in constraints:
        reason = rule(spec)
        if reason:
            return reason
    return None


ALL_PADDING = ("explicit", *NAMED_MODES)

# A known finding's weaker contract (e.g. float16 sums kept in float16) while its region is judged by it:
# dtype -> the accumulator the bound then assumes, whatever the backend declares (crosscheck.run.findings).
_CONTRACT: ContextVar[Mapping[str, str] | None] = ContextVar("crosscheck_contract", default=None)


@contextlib.contextmanager
def weaker_contract(accumulators: Mapping[str, str]) -> Iterator[None]:
    """Judge every bound computed inside by `accumulators` (dtype -> accumulator dtype)."""
    token = _CONTRACT.set(accumulators)
    try:
        yield
    finally:
        _CONTRACT.reset(token)


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
    # Every built-in backend runs the largest stride and dilation of the realistic layers (wav2vec 2.0's k10/s5,
    # ConvNeXt's 4×4/s4 stem, DeepLab's ASPP rates up to 36): tests/frameworks/test_backends.py probes them on each.
    # Free draws stay at stride ≤ 4 and dilation ≤ 3 (crosscheck.strategies): these bound what is declared.
    max_stride: int = 8
    max_dilation: int = 36
    accumulators: Mapping[str, str] = field(default_factory=dict)
    bound: str = "elementwise"
    # How complex products are formed (crosscheck.core.bounds): "conventional" (any order of the real
    # products) or "3m" (the Gauss method: three real convolutions). Only complex dtypes use it.
    complex_method: str = "conventional"
    unsupported: tuple[tuple[str, str], ...] = ()
    constraints: tuple[Constraint, ...] = ()
    # The backward pass, each as the forward problems (x, w, geometry) it is computed for; None when the
    # backend has no such call (the reason is then an `unsupported` entry named "gradients" or
    # "transposed convolution"). See Backend.vjp and Backend.conv_transpose.
    gradients: Capabilities | None = None
    transposed: Capabilities | None = None
    # Convolution + bias + activation in one call (Backend.fused, property `fused_bias_activation`): the
    # problems it runs, with the activations it offers in `activations`; None when the backend has no such
    # call (the reason is then an `unsupported` entry named "fused bias and activation").
    fused: Capabilities | None = None
    activations: tuple[str, ...] = ()

    def accumulator(self, dtype: str) -> str:
        override = _CONTRACT.get()
        return (override or {}).get(dtype) or self.accumulators.get(dtype, default_accumulator(dtype))

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
        return first_refusal(self.constraints, spec)

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
            "complex_method": self.complex_method,
            "unsupported": [{"feature": f, "reason": r} for f, r in self.unsupported],
            "gradients": self.gradients.to_dict() if self.gradients else None,
            "transposed": self.transposed.to_dict() if self.transposed else None,
            **({"fused": self.fused.to_dict()} if self.fused else {}),
            **({"activations": list(self.activations)} if self.activations else {}),
        }

    def reason_for(self, feature: str) -> str | None:
        """The `unsupported` reason recorded for `feature`, if any."""
        return next((r for f, r in self.unsupported if f == feature), None)


@dataclass(frozen=True)
class PrecisionMode:
    """A reduced-precision setting a framework offers beyond its default, and the error model it is
    judged by: inputs rounded to `u_in` before they are multiplied, sums in `accumulator`, the result
    rounded to `output_rounding` and returned in `output_dtype` (crosscheck.core.bounds derives the bound).
    `unsupported` says, in the framework's words, why the mode cannot run on this device; such a mode
    is recorded, never run. `constraints` refuse problems the mode cannot run (each returns a reason
    or None; module-level functions, so that a mode pickles into an isolated worker and back).
    """

    name: str
    description: str
    dtypes: tuple[str, ...]  # the input dtypes the mode applies to
    u_in: float = 0.0  # 0: the inputs are multiplied as given
    accumulator: str | None = None  # None: the backend's accumulator for the input dtype
    output_dtype: str | None = None  # None: the input dtype
    output_rounding: str | None = None  # None: output_dtype (a Cast back to float32 keeps bfloat16's error)
    unsupported: str | None = None
    constraints: tuple[Constraint, ...] = ()

    def refuses(self, spec: ConvSpec) -> str | None:
        """Why this mode cannot run `spec` (on top of the backend's own capabilities), or None."""
        return first_refusal(self.constraints, spec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dtypes": list(self.dtypes),
            "u_in": self.u_in,
            "accumulator": self.accumulator,
            "output_dtype": self.output_dtype,
            "output_rounding": self.output_rounding,
            "unsupported": self.unsupported,
        }


NOTHING_EXPOSED = "nothing exposed: the adapter does not ask the framework which kernel it ran"
# Set by a run (crosscheck.run.session) in its worker processes' environment: a framework that names its kernels only
# when told so before it loads (TensorFlow's oneDNN, ONEDNN_VERBOSE) may then do so there, off the terminal.
NAME_IMPLEMENTATIONS_ENV = "CROSSCHECK_NAME_IMPLEMENTATIONS"


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
    # The environment variables that cap the ISA this backend's kernels dispatch to (crosscheck.core.hardware.SWITCHES);
    # none: it has no switch, and `crosscheck run --isa` runs it natively only.
    isa_switches: tuple[str, ...] = ()
    # True when run() may raise NotImplementedError for a problem it does not support: that example
    # is then counted as unsupported rather than failed (user functions; built-in adapters declare
    # their capabilities instead, so for them NotImplementedError stays a failure).
    may_decline: bool = False
    # Where `implementations` reads which implementation a call ran, or why nothing tells (strategies.coverage).
    implementation_source: str = NOTHING_EXPOSED
    # A converted model (crosscheck.backends.converted_backends): the layer `run` runs after conversion was built in
    # this framework first, and `run_source` runs it there (property `conversion_end_to_end`); empty: no conversion.
    converted_from: str = ""

    @property
    def plan_name(self) -> str:
        """What seeds this backend's coverage plans and sweep (crosscheck.strategies.coverage.Guide): a name that is
        the same on every machine, so that a run with `--seed` draws the same problems wherever it runs."""
        return self.name

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

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grad_x, grad_w): the vector-Jacobian product of run() at (x, w) with `cotangent` (y's shape),
        in the canonical layouts (N, C_in, *in_size) and (C_out, C_in/groups, *kernel), the problem's dtype.
        Only for problems inside `capabilities().gradients`."""
        raise NotImplementedError(f"{self.name} computes no gradients")

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        """convᵀ(g, w): the transposed convolution of `problem`'s geometry and weight applied to g
        (N, C_out, *out_size), as (N, C_in, *in_size) in the problem's dtype: the adjoint of run().
        Its output_padding is `crosscheck.core.adjoint.output_padding(problem.spec)`. Only for problems
        inside `capabilities().transposed`."""
        raise NotImplementedError(f"{self.name} has no transposed convolution")

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        """activation(conv(x, w) + bias) in one call as the framework composes it (`bias` of shape (C_out,),
        `activation` one of `capabilities().fused.activations`, crosscheck.core.bounds.ACTIVATIONS), in the
        canonical layout and the problem's dtype. Only for problems inside `capabilities().fused`."""
        raise NotImplementedError(f"{self.name} has no fused convolution, bias and activation")

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        """The layer of `problem` in `converted_from`'s framework, before conversion; same shape and dtype as run()."""
        raise NotImplementedError(f"{self.name} converts no model")

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

        if not self.framework:  # a backend of no distribution (a test's, a user's own class)
            return "unknown"
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

    def implementations(self) -> list[str]:
        """The implementations the calls since the previous `implementations()` ran, each `source:name` (e.g.
        `torch:Mkldnn`, `onednn:brg_conv_fwd:avx512_core`); empty where the framework tells nothing."""
        return []

    def dispatch(self) -> dict[str, Any]:
        """What this backend's kernels dispatch to here (`crosscheck.core.hardware`): always an `isa_class` and
        its `source`, plus what the framework reports. Known findings are keyed on the ISA class."""
        from crosscheck.core import hardware

        return hardware.native_dispatch(f"{self.framework} reports no dispatch ISA")

    # ---- reduced-precision modes (property `precision_modes`) ----------------------------------

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        """The reduced-precision modes the framework offers on this device besides `run`'s pinned
        default, including those it offers only elsewhere (with `unsupported` set)."""
        return ()

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        """`run` in precision mode `mode` (a name from `precision_modes`); the result is in the
        mode's output dtype. The framework's global settings are restored afterwards."""
        raise NotImplementedError(f"{self.name}: no precision mode {mode!r}")

    def reproducer(self, prop: str, problem: ConvProblem) -> str | None:
        """Code that reruns `prop` on `problem`, when `get_backend(self.name)` cannot rebuild this backend."""
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
            "precision_modes": [m.to_dict() for m in self.precision_modes()],
            "dispatch": self.dispatch(),
        }
