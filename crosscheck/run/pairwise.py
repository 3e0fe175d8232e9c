"""Pairwise agreement: on the same problem, every two backends agree within the sum of their bounds.

Each example is one problem from the whole space; every backend that declares it supported (in its
own preferred layout) runs it once, and every pair that ran is compared. This is implied by each
backend matching the reference, and checks the chain the other way round: no reference in between.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Any

import hypothesis
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from crosscheck.backends.base import Backend
from crosscheck.checks.forward import bound_for
from crosscheck.core.problem import LAYOUTS, ConvProblem
from crosscheck.core.reproducer import problem_code
from crosscheck.properties.base import PropertyFailure
from crosscheck.reference import reference
from crosscheck.reference.geometry import work_dtype
from crosscheck.run import signals
from crosscheck.run.findings import regions_holding
from crosscheck.run.profiles import prepare, profile_settings
from crosscheck.run.runner import Progress
from crosscheck.strategies import conv_problems


class PairDisagreement(AssertionError):
    def __init__(self, a: str, b: str, problem: ConvProblem, message: str) -> None:
        self.pair = (a, b)
        self.problem = problem
        super().__init__(message)


@dataclass
class PairStats:
    examples: int = 0
    max_ratio: float = 0.0


@dataclass
class PairwiseResult:
    backends: list[str]
    examples: int = 0
    duration_s: float = 0.0
    pairs: dict[tuple[str, str], PairStats] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    status: str = "passed"
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backends": self.backends,
            "status": self.status,
            "examples": self.examples,
            "duration_s": round(self.duration_s, 3),
            "matrix": [
                {"a": a, "b": b, "examples": s.examples, "max_ratio": s.max_ratio}
                for (a, b), s in sorted(self.pairs.items())
            ],
            "backend_errors": self.errors,
            "failures": self.failures,
        }


def _problems(backends: list[Backend]) -> st.SearchStrategy[ConvProblem]:
    """Problems from one backend's space at a time (a different lead each example), so that every
    backend takes part often, and every other backend that supports the problem joins in."""
    return st.sampled_from(backends).flatmap(lambda lead: conv_problems(lead.capabilities()))


def _as_backend_sees_it(backend: Backend, problem: ConvProblem) -> ConvProblem | None:
    """The problem in the backend's first supported layout, or None if it cannot run it or the problem lies in
    one of its known findings' regions (its own properties judge those, by the finding's contract)."""
    caps = backend.capabilities()
    for layout in sorted(caps.layouts, key=LAYOUTS.index):
        candidate = replace(problem, spec=problem.spec.with_(layout=layout))
        if caps.refuses(candidate.spec) is None:
            return None if regions_holding(backend, "matches_reference", candidate.spec) else candidate
    return None


def run_pairwise(
    backends: list[Backend],
    *,
    profile: str = "dev",
    max_examples: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> PairwiseResult:
    names = [b.name for b in backends]
    result = PairwiseResult(names)
    failing = False

    def example(problem: ConvProblem) -> None:
        nonlocal failing
        signals.check()  # a stop signal whose KeyboardInterrupt was swallowed where it landed
        ref = reference(problem)
        outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for b in backends:
            mine = _as_backend_sees_it(b, problem)
            if mine is None:
                continue
            try:
                y: np.ndarray = np.asarray(b.run(mine), dtype=work_dtype(problem.x))
            except Exception:  # noqa: BLE001 - counted here; the backend's own properties report it
                result.errors[b.name] = result.errors.get(b.name, 0) + 1
                continue
            caps = b.capabilities()
            u_acc = caps.u_acc(problem.spec.dtype)
            outputs[b.name] = (y, bound_for(problem, ref, u_acc, caps.bound, complex_method=caps.complex_method))
        hypothesis.assume(len(outputs) >= 2)
        ratios = {}
        for (na, (ya, ba)), (nb, (yb, bb)) in itertools.combinations(outputs.items(), 2):
            allowed = ba + bb
            err = np.abs(ya - yb)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                r = np.where(allowed > 0, err / allowed, np.where(err > 0, np.inf, 0.0))
            worst = float(np.max(r, initial=0.0))
            if not np.all(err <= allowed):
                failing = True
                idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(r)), r.shape))
                raise PairDisagreement(
                    na,
                    nb,
                    problem,
                    f"{na} and {nb} disagree beyond the sum of their bounds: ratio {worst:.4g} at index {idx}\n"
                    f"  {na}: {ya[idx]!r}, {nb}: {yb[idx]!r}, allowed {allowed[idx]:.6g}\n" + problem.where(),
                )
            ratios[(na, nb)] = worst
        if failing:
            return
        result.examples += 1
        for pair, worst in ratios.items():
            s = result.pairs.setdefault(pair, PairStats())
            s.examples += 1
            s.max_ratio = max(s.max_ratio, worst)
        if progress:
            progress("pairwise", "agreement", result.examples, 0)

    test = given(_problems(backends))(example)
    conf = profile_settings(profile, max_examples)
    test = prepare(test, example, conf, profile=profile, seed=seed, key="pairwise/" + ",".join(sorted(names)))
    start = time.perf_counter()
    try:
        test()
    except PairDisagreement as exc:
        result.status = "failed"
        result.failures.append(
            {
                "pair": list(exc.pair),
                "message": str(exc),
                "problem": exc.problem.to_dict(),
                "reproducer": problem_code(exc.problem),
            }
        )
    except KeyboardInterrupt:
        result.status = "interrupted"
    except (PropertyFailure, hypothesis.errors.HypothesisException) as exc:
        result.status = "error"
        result.failures.append({"pair": [], "message": f"{type(exc).__name__}: {exc}", "problem": {}, "reproducer": ""})
    finally:
        result.duration_s = time.perf_counter() - start
    return result
