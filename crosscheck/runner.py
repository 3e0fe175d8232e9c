"""Drive the properties with Hypothesis, one (backend, property) pair at a time, into results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import given

from crosscheck.backends.base import Backend
from crosscheck.findings import replay, stale
from crosscheck.profiles import profile_settings
from crosscheck.properties import Property, PropertyFailure
from crosscheck.stats import Tally

Progress = Callable[[str, str, int, int], None]  # backend, property, examples so far, failures


@dataclass
class PropertyResult:
    backend: str
    prop: str
    status: str  # passed | failed | unsupported | error | interrupted
    reason: str | None = None
    duration_s: float = 0.0
    tally: Tally = field(default_factory=Tally)
    failures: list[dict[str, Any]] = field(default_factory=list)
    known_findings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        t = self.tally
        return {
            "backend": self.backend,
            "property": self.prop,
            "status": self.status,
            "reason": self.reason,
            "examples": t.examples,
            "informative_examples": t.informative,
            "shrink_steps": t.shrink_steps,
            "duration_s": round(self.duration_s, 4),
            "examples_per_second": round(t.examples / self.duration_s, 2) if self.duration_s > 0 else None,
            "features": dict(sorted(t.features.items())),
            "by_dtype": {d: s.to_dict() for d, s in sorted(t.by_dtype.items())},
            "failures": self.failures,
            "known_findings": self.known_findings,
        }


def failure_record(exc: PropertyFailure, backend: Backend) -> dict[str, Any]:
    return {
        "message": exc.detail,
        "problem": exc.problem.to_dict(),
        "reproducer": exc.reproducer,
        "native_snippet": backend.native_snippet(exc.problem),
    }


def run_property(
    backend: Backend,
    prop: Property,
    *,
    profile: str = "dev",
    max_examples: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> PropertyResult:
    """Run `prop` on `backend` for the profile's example budget; never raises for a failing property."""
    reason = prop.applies(backend)
    if reason:
        return PropertyResult(backend.name, prop.name, "unsupported", reason)
    result = PropertyResult(backend.name, prop.name, "passed")
    tally = result.tally
    failing = False

    def example(problem: Any) -> None:
        nonlocal failing
        try:
            obs = prop.check(backend, problem)
        except PropertyFailure:
            failing = True
            raise
        if failing:  # Hypothesis is shrinking a failure: these are not fresh examples
            tally.shrink_steps += 1
            return
        tally.add(obs.dtype, obs.max_ratio, obs.max_ulp, obs.expected_ratio, obs.exact, obs.features, obs.informative)
        if progress:
            progress(backend.name, prop.name, tally.examples, 0)

    test = given(prop.strategy(backend))(example)
    conf = profile_settings(profile, max_examples)
    if seed is not None:
        conf = hypothesis.settings(conf, derandomize=False, database=None)
        test = hypothesis.seed(seed)(test)
    test = conf(test)
    start = time.perf_counter()
    try:
        test()
    except PropertyFailure as exc:
        result.status = "failed"
        result.failures.append(failure_record(exc, backend))
        if progress:
            progress(backend.name, prop.name, tally.examples, 1)
    except KeyboardInterrupt:
        # Keep what was observed; the caller sees `interrupted` and stops starting new work.
        result.status = "interrupted"
        result.reason = "interrupted by the user"
    except Exception as exc:  # noqa: BLE001 - a Hypothesis health check or a bug: record it, go on
        result.status = "error"
        result.reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        result.duration_s = time.perf_counter() - start
    if result.status != "interrupted":
        _replay_findings(backend, prop, result)
    return result


def _replay_findings(backend: Backend, prop: Property, result: PropertyResult) -> None:
    result.known_findings = replay(backend, prop)
    for finding_id in stale(result.known_findings):
        result.status = "failed"
        result.failures.append(
            {
                "message": f"known finding {finding_id} no longer reproduces on {backend.framework} "
                f"{backend.version()}: update crosscheck/data/known_findings.json (and the adapter's refusal)",
                "problem": {},
                "reproducer": "",
                "native_snippet": None,
            }
        )
