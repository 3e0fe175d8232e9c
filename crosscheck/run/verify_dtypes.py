"""The dtypes `crosscheck verify` tries, each as a backend of its own with the full example budget.

Every float dtype is checked by default; an integer dtype only where the function takes it (a quick probe call),
since many float kernels cannot. A dtype whose probes the function declines (NotImplementedError) in every
requested rank is listed once as declined instead of failing each property on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from crosscheck.backends.base import Backend, Capabilities, PrecisionMode
from crosscheck.backends.isolated import WorkerDied
from crosscheck.core.dtypes import FLOAT_DTYPES, INT_DTYPES
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import make_problem

DEFAULT_DTYPES = FLOAT_DTYPES + INT_DTYPES
VERIFY_DTYPES = DEFAULT_DTYPES


class DtypeView(Backend):
    """One dtype of `inner` (and the accuracy model it is judged by), named `<inner> [dtype]`: the runner gives
    each backend its own example budget, so each dtype gets the full one."""

    def __init__(
        self,
        inner: Backend,
        dtype: str,
        accuracy: str,
        reproduce: Callable[[str, ConvProblem, str], str] | None = None,
        ranks: Sequence[int] | None = None,
    ) -> None:
        self.devices = inner.devices
        super().__init__(inner.device)
        self.inner = inner
        self.dtype = dtype
        self.accuracy = accuracy
        self.ranks = tuple(ranks) if ranks else None  # None: the inner backend's
        self.reproduce = reproduce  # (property, problem, accuracy model) -> code; else the inner backend's
        self.name = f"{inner.name} [{dtype}]"
        self.framework = inner.framework
        self.description = inner.description
        self.may_decline = inner.may_decline
        self.isa_switches = inner.isa_switches

    @property
    def plan_name(self) -> str:
        return f"{self.inner.plan_name} [{self.dtype}]"

    def capabilities(self) -> Capabilities:
        caps = replace(self.inner.capabilities(), dtypes=(self.dtype,), bound=self.accuracy)
        return replace(caps, ranks=self.ranks) if self.ranks else caps

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self.inner.run(problem)

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.vjp(problem, cotangent)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        return self.inner.conv_transpose(problem, g)

    def version(self) -> str:
        return self.inner.version()

    def precision_flags(self) -> dict[str, Any]:
        return self.inner.precision_flags()

    def native_snippet(self, problem: ConvProblem) -> str | None:
        return self.inner.native_snippet(problem)

    def dispatch(self) -> dict[str, Any]:
        return self.inner.dispatch()

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        return self.inner.precision_modes()

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        return self.inner.run_mode(problem, mode)

    def reproducer(self, prop: str, problem: ConvProblem) -> str | None:
        if self.reproduce:
            return self.reproduce(prop, problem, self.accuracy)
        return self.inner.reproducer(prop, problem)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "name": self.name, "capabilities": self.capabilities().to_dict()}


@dataclass(frozen=True)
class Declined:
    """A dtype left out (or some of its ranks, `ranks`), and why (the function's own words)."""

    dtype: str
    reason: str
    ranks: tuple[int, ...] = ()  # empty: the whole dtype

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "ranks": list(self.ranks), "reason": self.reason}


def _probes(dtype: str, rank: int) -> list[ConvProblem]:
    """Small ordinary problems of one rank: 3 taps with a pad of 1, and a 1×1 kernel (a function may take only one)."""
    out = []
    for kernel, pad in ((3, 1), (1, 0)):
        spec = ConvSpec(1, 2, 2, (6,) * rank, (kernel,) * rank, padding=((pad, pad),) * rank, dtype=dtype)
        out.append(make_problem(spec, seed=0, values="exact"))
    return out


def _refusal(backend: Backend, problem: ConvProblem, any_error: bool) -> str | None:
    """Why the function refuses `problem` (NotImplementedError; with `any_error`, any exception), else None.
    A worker that dies on a probe takes it: the check then reports the crash."""
    try:
        backend.run(problem)
    except WorkerDied:
        return None
    except NotImplementedError as exc:
        return f"NotImplementedError: {exc}".splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - the function's own error is what a probe reports
        return f"{type(exc).__name__}: {exc}".splitlines()[0] if any_error else None
    return None


def probe(backend: Backend, dtype: str, dims: Sequence[int], *, any_error: bool) -> tuple[tuple[int, ...], str | None]:
    """The ranks of `dims` the function takes in `dtype`, and the first refusal's reason (None if none).

    A rank is declined when each of its probes raises NotImplementedError, or (`any_error`: integers the user did
    not ask for) any exception at all; a dtype with no rank left is declined.
    """
    taken: list[int] = []
    first: str | None = None
    for rank in dims:
        reasons = [_refusal(backend, p, any_error) for p in _probes(dtype, rank)]
        if all(reasons):
            first = first or reasons[0]
        else:
            taken.append(rank)
    return tuple(taken), first


def parse_dtypes(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """'float16,bfloat16' or a sequence -> the dtypes (None: the default); ValueError naming the choices."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    bad = [n for n in names if n not in VERIFY_DTYPES]
    if bad or not names:
        raise ValueError(f"dtype {','.join(bad) or text!r}: expected one or more of {', '.join(VERIFY_DTYPES)}")
    return tuple(dict.fromkeys(names))
