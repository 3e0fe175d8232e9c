"""The properties, defined once; `crosscheck run` and the pytest suite both drive these objects.

A property has a strategy (which problems it draws for a backend) and a check (which raises
PropertyFailure with an assert_close-style message and a reproducer, or returns an Observation
that the record aggregates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
from hypothesis import event
from hypothesis import strategies as st

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.backends.isolated import WorkerDied
from crosscheck.checks.forward import Verdict, compare
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import reproducer as builtin_reproducer
from crosscheck.core.values import make_asymmetric
from crosscheck.reference import ReferenceResult, reference
from crosscheck.strategies import conv_problems

T = TypeVar("T")

# What went wrong, for the record: a wrong answer, an exception, or the backend's worker died.
FAILURE_KINDS = ("mismatch", "exception", "crash", "hang")


class PropertyFailure(AssertionError):
    """A property does not hold on `problem`; the message says where, how much and how to rerun."""

    def __init__(
        self,
        message: str,
        backend: str,
        prop: str,
        problem: ConvProblem,
        kind: str = "mismatch",
        *,
        reproducer: str | None = None,
    ) -> None:
        self.backend = backend
        self.prop = prop
        self.problem = problem
        self.detail = message
        self.kind = kind
        # A backend that get_backend() cannot rebuild (a user's function) passes its own.
        self.reproducer = reproducer or builtin_reproducer(backend, prop, problem)
        super().__init__(f"{backend} / {prop}: {message}\n\nReproduce with:\n{self.reproducer}")


@dataclass
class Observation:
    """What one passing example measured, for the record's statistics."""

    dtype: str
    max_ratio: float
    max_ulp: float
    expected_ratio: float
    exact: bool
    features: list[str] = field(default_factory=list)
    informative: bool = True
    mode: str | None = None  # the precision mode the example ran in (property `precision_modes`)
    modes: list[Observation] = field(default_factory=list)  # one per mode an example ran in, each with `mode`


def features(spec: ConvSpec, values: str) -> list[str]:
    """Coverage labels of a problem: what parts of the space this example exercised."""
    out = [f"rank={spec.rank}", f"dtype={spec.dtype}", f"values={values}", f"layout={spec.layout}"]
    out.append(f"padding={spec.padding if isinstance(spec.padding, str) else 'explicit'}")
    if spec.groups > 1:
        out.append("depthwise" if spec.in_channels == spec.groups else "grouped")
    if max(spec.stride) > 1:
        out.append("stride>1")
    if max(spec.dilation) > 1:
        out.append("dilation>1")
    if spec.batch > 1:
        out.append("batch>1")
    if not isinstance(spec.padding, str) and any(lo != hi for lo, hi in spec.padding):
        out.append("asymmetric-padding")
    if len(set(spec.kernel)) > 1:
        out.append("non-square-kernel")
    return out


class Unsupported(Exception):
    """The backend declined this problem (NotImplementedError from a backend that `may_decline`).

    Not a failure: the runner counts it and asks Hypothesis for another example.
    """


def call_backend(backend: Backend, prop: str, problem: ConvProblem, fn: Callable[[], T]) -> T:
    """`fn()` (a call into `backend`), with any framework error on a supported configuration turned into a
    failure, a declined problem into Unsupported, and a dead worker into a failure of its kind."""
    where = problem.where()
    try:
        return fn()
    except PropertyFailure:
        raise
    except NotImplementedError as exc:
        if not backend.may_decline:
            raise PropertyFailure(
                f"backend raised NotImplementedError: {exc}".splitlines()[0] + f"\n{where}",
                backend.name,
                prop,
                problem,
                kind="exception",
            ) from exc
        raise Unsupported(str(exc).splitlines()[0] if str(exc) else "NotImplementedError") from exc
    except WorkerDied as exc:
        raise PropertyFailure(f"{exc}\n{where}", backend.name, prop, problem, kind=exc.kind) from exc
    except Exception as exc:
        message = f"backend raised {type(exc).__name__}: {exc}".splitlines()[0]
        raise PropertyFailure(f"{message}\n{where}", backend.name, prop, problem, kind="exception") from exc


def run_backend(backend: Backend, prop: str, problem: ConvProblem) -> np.ndarray:
    """backend.run, with any framework error on a supported configuration turned into a failure."""
    return call_backend(backend, prop, problem, lambda: np.asarray(backend.run(problem)))


class Property:
    name = ""
    title = ""
    description = ""
    # Fraction of the profile's max_examples this property runs (properties that make several
    # framework calls per example take a smaller share, to keep CI time in check).
    budget: float = 1.0
    # Whether this property runs the backend's coverage sweep (strategies.coverage.Guide.sweep) before its random
    # search: one property a backend, whose strategy draws from the backend's whole space, so that the sweep's
    # problems are its own examples.
    sweeps: bool = False

    def applies(self, backend: Backend) -> str | None:
        """Why this property cannot be checked on `backend`, or None."""
        return None

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        raise NotImplementedError

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        raise NotImplementedError

    def space(self, backend: Backend) -> Capabilities | None:
        """The part of the backend's problem space this property draws from (None: the backend has none for it)."""
        return backend.capabilities()

    def specs(self, spec: ConvSpec) -> list[ConvSpec]:
        """Every geometry the check runs the backend on for a problem of `spec` (a metamorphic property's second
        problem too): a known finding's region holds the example when it holds any of them."""
        return [spec]

    def _compare(
        self, backend: Backend, problem: ConvProblem, y: np.ndarray, ref: ReferenceResult | None = None
    ) -> Verdict:
        """`y` against `problem`'s reference (`ref` when the caller already computed it)."""
        caps = backend.capabilities()
        ref = ref if ref is not None else reference(problem)
        u_acc = caps.u_acc(problem.spec.dtype)
        return compare(problem, y, ref, u_acc=u_acc, bound_kind=caps.bound, complex_method=caps.complex_method)

    def _observe(self, problem: ConvProblem, v: Verdict, informative: bool = True) -> Observation:
        return Observation(
            problem.spec.dtype,
            v.max_ratio,
            v.max_ulp,
            v.expected_ratio,
            v.exact,
            features(problem.spec, problem.values),
            informative,
        )


class MatchesReference(Property):
    name = "matches_reference"
    title = "matches the element-wise-sum reference"
    description = (
        "Every output element is within the floating-point error bound of the literal sum of "
        "element-wise products (bit-for-bit on exact-mode inputs)."
    )
    sweeps = True

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        return conv_problems(backend.capabilities())

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        y = run_backend(backend, self.name, problem)
        v = self._compare(backend, problem, y)
        if not v.passed:
            raise PropertyFailure(v.message, backend.name, self.name, problem)
        return self._observe(problem, v)


class IsCrossCorrelation(Property):
    name = "is_cross_correlation"
    title = "is cross-correlation, not convolution"
    description = (
        "On an asymmetric kernel the backend equals correlate(x, w) and differs from the textbook "
        "convolution (the flipped kernel); given flip(w) it equals convolve(x, w)."
    )

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        return conv_problems(backend.capabilities(), values=("exact",), min_taps=2).map(make_asymmetric)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        flipped = problem.flipped()
        corr, conv = reference(problem), reference(flipped)
        informative = not np.array_equal(corr.approx, conv.approx)
        if not informative:
            event("kernel flip is invisible on this input")
        y = run_backend(backend, self.name, problem)
        v = self._compare(backend, problem, y, corr)
        if not v.passed:
            raise PropertyFailure("conv(x, w) is not correlate(x, w):\n" + v.message, backend.name, self.name, problem)
        if informative:
            as_convolution = self._compare(backend, flipped, y, conv)
            if as_convolution.passed and backend.capabilities().bound != "elementwise":
                # A looser accuracy model (normwise, Winograd: crosscheck.checks.accuracy) cannot tell these two
                # apart on this input; exact-mode values under the element-wise bound always can.
                event("kernel flip is within the accuracy model's bound on this input")
                informative = False
            elif as_convolution.passed:
                raise PropertyFailure(
                    "conv(x, w) also equals the flipped-kernel convolution; the kernel flip went undetected",
                    backend.name,
                    self.name,
                    problem,
                )
        y_flip = run_backend(backend, self.name, flipped)
        vf = self._compare(backend, flipped, y_flip, conv)
        if not vf.passed:
            raise PropertyFailure(
                "conv(x, flip(w)) is not the textbook convolution of x and w:\n" + vf.message,
                backend.name,
                self.name,
                flipped,
            )
        return self._observe(problem, v, informative)


class NamedPadding(Property):
    name = "named_padding"
    title = "named padding equals the resolved pads"
    description = (
        "Each named mode the backend accepts (VALID, SAME, SAME_LOWER) gives the result of the explicit "
        "(lo, hi) pads crosscheck resolves: output ceil(n / stride), the odd extra pad at the end for "
        "SAME and at the start for SAME_LOWER."
    )

    def _named(self, backend: Backend) -> tuple[str, ...]:
        return tuple(m for m in backend.capabilities().padding if m != "explicit")

    def applies(self, backend: Backend) -> str | None:
        return None if self._named(backend) else "the backend accepts no named padding mode"

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        caps = replace(backend.capabilities(), padding=self._named(backend))
        return conv_problems(caps)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        y = run_backend(backend, self.name, problem)
        ref = reference(problem)
        v = self._compare(backend, problem, y, ref)
        if not v.passed:
            raise PropertyFailure(
                f"padding {spec.padding!r} is not the pads crosscheck resolves, {list(map(list, spec.pads))}"
                f"{self._diagnose(backend, problem, y)}:\n{v.message}",
                backend.name,
                self.name,
                problem,
            )
        if "explicit" in backend.capabilities().padding:
            explicit = replace(problem, spec=spec.with_(padding=spec.pads))
            # The same geometry and values: the named problem's reference is the explicit one's.
            ve = self._compare(backend, explicit, run_backend(backend, self.name, explicit), ref)
            if not ve.passed:
                raise PropertyFailure(
                    "the same pads given explicitly fail:\n" + ve.message, backend.name, self.name, explicit
                )
        return self._observe(problem, v)

    def _diagnose(self, backend: Backend, problem: ConvProblem, y: np.ndarray) -> str:
        """Name another padding convention that the backend's output does match, if one does."""
        for mode in ("SAME", "SAME_LOWER", "VALID"):
            if mode == problem.spec.padding:
                continue
            try:
                other = replace(problem, spec=problem.spec.with_(padding=mode))
            except ValueError:
                continue
            if self._compare(backend, other, y).passed:
                return f" (the output matches {mode}'s pads {list(map(list, other.spec.pads))} instead)"
        return ""


FORWARD: dict[str, Property] = {p.name: p for p in (MatchesReference(), IsCrossCorrelation(), NamedPadding())}
