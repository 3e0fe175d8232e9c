"""Drive the properties with Hypothesis, one (backend, property) pair at a time, into results."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.strategies import SearchStrategy

from crosscheck.backends.base import NOTHING_EXPOSED, Backend, Capabilities
from crosscheck.backends.isolated import WorkerDied
from crosscheck.core.hardware import environment_line
from crosscheck.core.problem import ConvProblem
from crosscheck.core.values import VALUE_KINDS
from crosscheck.properties.base import Property, PropertyFailure, Unsupported, features
from crosscheck.run import signals
from crosscheck.run.diagnosis import diagnose
from crosscheck.run.findings import explains, failing, region_entry, regions_holding, replay
from crosscheck.run.profiles import prepare, profile_settings
from crosscheck.run.stats import Tally
from crosscheck.strategies import realistic
from crosscheck.strategies.coverage import Guide, classify, guiding

Progress = Callable[[str, str, int, int], None]  # backend, property, examples so far, failures

# A crash restarts the backend's worker on every shrink step (a second or more for a framework), so
# shrinking a crash stops after this long and reports the smallest crashing example found so far.
# A hang is not shrunk at all: every step would cost the full timeout; its first example is reported.
CRASH_SHRINK_BUDGET_S = 20.0
DEATHS = ("crash", "hang")


class _StopShrinking(BaseException):
    """Ends a Hypothesis run from inside the test: a BaseException, so Hypothesis does not shrink it."""

    def __init__(self, failure: PropertyFailure, why: str) -> None:
        self.failure = failure
        self.why = why


@dataclass
class PropertyResult:
    backend: str
    prop: str
    status: str  # passed | failed | unsupported | error | interrupted | skipped
    reason: str | None = None
    duration_s: float = 0.0
    tally: Tally = field(default_factory=Tally)
    failures: list[dict[str, Any]] = field(default_factory=list)
    known_findings: list[dict[str, Any]] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)  # NotImplementedError messages of declined examples
    caught_at: int | None = None  # the fresh example (1-based) on which the first failure showed
    repeats: int = 0  # failures of a bug already reported, met while searching for another
    interrupted: bool = False  # stopped by the user (status says "failed" where a failure was already found)
    # Random examples inside known findings' regions: finding id -> {"failed": explained failures, "passed": n},
    # and the first explained failure of each, kept as evidence.
    regions: dict[str, Counter[str]] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep_examples: int = 0  # examples of the backend's coverage sweep that ran (and passed), in `tally` too

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
            "by_mode": {m: {d: s.to_dict() for d, s in sorted(ds.items())} for m, ds in sorted(t.by_mode.items())},
            "failures": self.failures,
            "known_findings": self.known_findings,
            "unsupported_examples": sum(self.unsupported.values()),
            "unsupported_reasons": dict(self.unsupported.most_common(5)),
            "caught_at": self.caught_at,
            "sweep_examples": self.sweep_examples,
        }


TRIAGE = {"crash": "crash", "hang": "hang", "stale": "stale finding"}  # any other kind: "new discrepancy"


def triage(kind: str) -> str:
    """What a failure of this kind means for the run (each fails it): see crosscheck.run.findings for known ones."""
    return TRIAGE.get(kind, "new discrepancy")


def failure_record(exc: PropertyFailure, backend: Backend, note: str = "") -> dict[str, Any]:
    head = environment_line(backend.framework, backend.version(), backend.dispatch())
    layer = realistic.origin(exc.problem.spec)
    shape = f"\n(a realistic shape, scaled from {layer})" if layer else ""
    return {
        "message": exc.detail + (f"\n({note})" if note else "") + shape,
        "problem": exc.problem.to_dict(),
        "reproducer": head + "\n" + (backend.reproducer(exc.prop, exc.problem) or exc.reproducer),
        "native_snippet": backend.native_snippet(exc.problem),
        "kind": exc.kind,
        "triage": triage(exc.kind),
        **({"layer": layer} if layer else {}),
    }


def _flaky_failures(exc: BaseException, backend: Backend) -> list[dict[str, Any]]:
    """Every PropertyFailure inside Hypothesis' FlakyFailure (a failure that did not repeat when rerun: a
    framework whose results change between calls), each kept with its example and message."""
    found: list[dict[str, Any]] = []
    for sub in getattr(exc, "exceptions", ()):
        if isinstance(sub, PropertyFailure):
            record = failure_record(sub, backend, "flaky: the same example gave a different verdict when rerun")
            record["kind"] = "flaky"
            found.append(record)
        else:
            found += _flaky_failures(sub, backend)
    return found


def _declined(unsupported: Counter[str]) -> str:
    n = sum(unsupported.values())
    reason, _ = unsupported.most_common(1)[0]
    return f"{n} example{'s' if n != 1 else ''} declined with NotImplementedError, e.g. {reason!r}"


@dataclass(frozen=True)
class _Bug:
    """A failure this property already reported: a later failure it covers is the same bug again, not a second.

    Covered means the same diagnosis (the same kind, and the same cause where the message names one) on a problem
    that has every feature of the first minimal example beyond the simplest problem's (its trigger: shrinking
    keeps only what the failure needs). A failure without one of those features cannot be the same trigger.

    Shrinking is a search too, and may stop at an example with a feature the failure does not need (seen: a grouped
    minimal example for a backend wrong on every problem). A later bug whose trigger the earlier one's example has
    is then the same bug, found in a simpler form: it `subsumes` the earlier one, which is dropped.
    """

    signature: str
    trigger: frozenset[str]
    features: frozenset[str]
    record: dict[str, Any] = field(compare=False)  # its entry in the result's failures

    @staticmethod
    def signature_of(exc: PropertyFailure) -> str:
        return f"{exc.kind}: {diagnose(exc.detail, exc.kind) or 'wrong values'}"

    @classmethod
    def of(cls, exc: PropertyFailure, space: Capabilities | None, record: dict[str, Any]) -> _Bug:
        seen = frozenset(_features(exc.problem))
        return cls(cls.signature_of(exc), seen - _simplest(space), seen, record)

    def covers(self, exc: PropertyFailure) -> bool:
        return self.signature_of(exc) == self.signature and self.trigger <= set(_features(exc.problem))

    def subsumes(self, other: _Bug) -> bool:
        return self.signature == other.signature and self.trigger <= other.features


def _features(problem: ConvProblem) -> list[str]:
    return features(problem.spec, problem.values)


def _simplest(space: Capabilities | None) -> set[str]:
    """The features every minimal example has without needing them: the first option of each choice the
    strategies draw from `space` (Hypothesis shrinks a choice towards its first option), and none of the optional
    ones (stride > 1, groups, batch > 1, ...). A property whose strategy fixes one of these to another value has
    it on every example, so it never tells two bugs apart wrongly."""
    caps = space or Capabilities()
    return {
        f"rank={caps.ranks[0]}",
        f"dtype={caps.dtypes[0]}",
        f"values={VALUE_KINDS[0]}",
        f"layout={caps.layouts[0]}",
        f"padding={caps.padding[0]}",  # "explicit" or a named mode: the label features() gives it
    }


def run_property(
    backend: Backend,
    prop: Property,
    *,
    profile: str = "dev",
    max_examples: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    crash_shrink_budget_s: float = CRASH_SHRINK_BUDGET_S,
    distinct_bugs: int = 1,
    guide: Guide | None = None,
) -> PropertyResult:
    """Run `prop` on `backend` for the profile's example budget; never raises for a failing property.

    A backend that declines an example (NotImplementedError, see `Backend.may_decline`) gets another
    one; the declined ones are counted, and a backend that declined every example is "unsupported".

    With `distinct_bugs` > 1, a failure does not end the property: a further search, with the same example
    budget, treats failures of the bugs already reported as covered and reports (shrunk) the first failure of
    another, up to `distinct_bugs` in all. Crashes, hangs and flaky failures end the search (every further
    example would restart a worker or wait out its timeout).
    `guide` (the backend's feature-combination coverage, strategies.coverage) steers the draws and observes what ran.
    A property that `sweeps` first runs the guide's covering sweep as Hypothesis explicit examples, through the same
    check as every random example (known findings' regions included). After a sweep failure (not a crash or hang,
    which end the property as in a search) the first search runs as always; where its shrunk failure is not the same
    bug, one more search, planned on the failing problem's features, finds and shrinks it; only if that one misses it
    too is the sweep's problem reported as it is, in full with its reproducer, marked as not shrunk.
    """
    reason = prop.applies(backend)
    if reason:
        return PropertyResult(backend.name, prop.name, "unsupported", reason)
    result = PropertyResult(backend.name, prop.name, "passed")
    tally = result.tally
    failing = False
    deaths: list[PropertyFailure] = []  # crashes and hangs seen, the latest (smallest) last
    first_death = 0.0
    bugs: list[_Bug] = []  # the bugs already reported by this property's earlier searches

    def example(problem: Any) -> None:
        nonlocal failing, first_death
        signals.check()  # a stop signal whose KeyboardInterrupt was swallowed where it landed
        known = regions_holding(backend, prop.name, prop.specs(problem.spec))
        try:
            try:
                obs = prop.check(backend, problem)
            except WorkerDied as exc:  # from a backend call other than run_backend's (vjp, run_mode, ...)
                where = problem.where()
                raise PropertyFailure(f"{exc}\n{where}", backend.name, prop.name, problem, kind=exc.kind) from exc
            except PropertyFailure as exc:
                # Inside a known finding's region, a failure it explains is expected: counted, kept as
                # evidence, and the search goes on (it must not end Hypothesis' run, nor be shrunk).
                # While shrinking another failure, an explained one is no failure either: the shrinker must
                # not wander from a new discrepancy into a known finding's region.
                explained = next((k for k in known if explains(k, prop, backend, problem, exc)), None)
                if explained is not None:
                    if not failing:
                        result.regions.setdefault(explained.id, Counter())["failed"] += 1
                        result.evidence.setdefault(explained.id, failure_record(exc, backend))
                        if guide is not None:  # exercised, with the verdict its finding foretold: covered
                            guide.observe(problem.spec)
                    return
                if any(bug.covers(exc) for bug in bugs):  # a bug already reported, again: look for another
                    if not failing:
                        result.repeats += 1
                    return
                raise
        except Unsupported as exc:
            if not failing:
                result.unsupported[str(exc)] += 1
            hypothesis.reject()
        except PropertyFailure as exc:
            if not failing and result.caught_at is None:
                result.caught_at = tally.examples + 1
            failing = True
            if exc.kind in DEATHS:
                deaths.append(exc)
                now = time.perf_counter()
                first_death = first_death or now
                if exc.kind == "hang":
                    raise _StopShrinking(exc, "not shrunk: each retry of a hang costs the full timeout") from None
                if now - first_death > crash_shrink_budget_s:
                    raise _StopShrinking(
                        exc, f"shrinking stopped after {crash_shrink_budget_s:g} s: each crash restarts the worker"
                    ) from None
            raise
        if failing:  # Hypothesis is shrinking a failure: these are not fresh examples
            tally.shrink_steps += 1
            return
        for k in known:
            result.regions.setdefault(k.id, Counter())["passed"] += 1
        tally.add(obs.dtype, obs.max_ratio, obs.max_ulp, obs.expected_ratio, obs.exact, obs.features, obs.informative)
        if guide is not None:
            guide.observe(problem.spec)
            if exposes:  # steer toward the implementations this backend's run has reached least so far
                hypothesis.target(guide.ran(backend.implementations()), label="rarely reached implementation")
        for o in [obs, *obs.modes]:
            if o.mode:
                tally.add_mode(o.mode, o.dtype, o.max_ratio, o.max_ulp, o.expected_ratio, o.exact)
        if progress:
            progress(backend.name, prop.name, tally.examples, 0)

    strategy = prop.strategy(backend)
    if max_examples is None and prop.budget != 1.0:
        max_examples = max(1, round(hypothesis.settings.get_profile(profile).max_examples * prop.budget))
    conf = profile_settings(profile, max_examples)
    # Declined examples are rejected; that is a backend's answer, not a strategy that filters too much.
    conf = hypothesis.settings(conf, suppress_health_check=[*conf.suppress_health_check, HealthCheck.filter_too_much])
    key = f"{backend.name}/{prop.name}"
    start = time.perf_counter()
    exposes = guide is not None and backend.implementation_source != NOTHING_EXPOSED
    if guide is not None:
        guide.begin(prop.name, conf.max_examples)
        if exposes:
            backend.implementations()  # forget calls made outside this run (a failure shrunk before)
    sweep = guide.sweep() if guide is not None and prop.sweeps else ()
    space = prop.space(backend)

    def search_once(search_key: str, search_seed: int | None) -> PropertyFailure | None:
        nonlocal failing, first_death
        failing, first_death = False, 0.0
        deaths.clear()
        test = prepare(given(strategy)(example), example, conf, profile=profile, seed=search_seed, key=search_key)
        return _search(test, backend, result, deaths)

    def register(bug: _Bug) -> None:
        if any(b.subsumes(bug) for b in bugs):
            # Already reported in a simpler form (a sweep failure's focused search can shrink further than the
            # search that ran before it): the same bug, not a second.
            result.failures = [f for f in result.failures if f is not bug.record]
            return
        for older in [b for b in bugs if bug.subsumes(b)]:
            bugs.remove(older)
            result.failures = [f for f in result.failures if f is not older.record]
        bugs.append(bug)

    try:
        with guiding(guide):
            swept = _run_sweep(sweep, strategy, example, conf, profile, seed, key, backend, result, deaths)
            swept_record = result.failures[-1] if swept is not None else {}
            if guide is not None:
                guide.swept += result.sweep_examples
            for search in range(max(1, distinct_bugs) if swept is None or swept.kind not in DEATHS else 0):
                if result.interrupted:
                    break
                # Each further search has its own database entry: the first one's would replay the bug found.
                search_key = key if search == 0 else f"{key}#search{search + 1}"
                found = search_once(search_key, None if seed is None else seed + search)
                # Its entry in the failures, taken now: handling a sweep failure below may append after it.
                found_record = result.failures[-1] if found is not None else {}
                if search == 0 and swept is not None and not result.interrupted:
                    if found is not None and (
                        distinct_bugs <= 1 or _Bug.of(found, space, found_record).covers(swept)
                    ):  # the search's shrunk failure is the report (the only one, where one bug is asked for)
                        result.failures = [f for f in result.failures if f is not swept_record]
                    else:
                        # The search did not meet the sweep's failure: one more, planned on its features, shrinks it.
                        if guide is not None:
                            guide.begin(prop.name, conf.max_examples, focus=classify(swept.problem.spec))
                        again = search_once(f"{key}#sweep-shrink", seed)
                        again_bug = _Bug.of(again, space, result.failures[-1]) if again is not None else None
                        if guide is not None:
                            guide.begin(prop.name, conf.max_examples)
                        if again_bug is not None and again_bug.covers(swept):
                            result.failures = [f for f in result.failures if f is not swept_record]
                        else:
                            note = "a coverage-sweep example, not shrunk: a search planned on its features missed it"
                            at = next(i for i, f in enumerate(result.failures) if f is swept_record)
                            result.failures[at] = failure_record(swept, backend, note)
                            register(_Bug.of(swept, space, result.failures[at]))
                        if again_bug is not None:  # a failure it found is a bug like any other (or a repeat)
                            register(again_bug)
                if found is None or found.kind in DEATHS or result.interrupted:
                    break
                register(_Bug.of(found, space, found_record))
    finally:
        result.duration_s = time.perf_counter() - start
    if result.status == "failed":
        first = result.failures[0]
        if first.get("kind") in DEATHS:
            result.reason = "crashed" if first["kind"] == "crash" else "hung"
        if progress:
            progress(backend.name, prop.name, tally.examples, len(result.failures))
    elif result.status == "passed" and result.unsupported:
        result.reason = _declined(result.unsupported)
    if not result.interrupted:
        _replay_findings(backend, prop, result)
    return result


def _run_sweep(
    sweep: tuple[ConvProblem, ...],
    strategy: SearchStrategy[Any],
    example: Callable[[Any], None],
    conf: hypothesis.settings,
    profile: str,
    seed: int | None,
    key: str,
    backend: Backend,
    result: PropertyResult,
    deaths: list[PropertyFailure],
) -> PropertyFailure | None:
    """Run the sweep's problems, in order, as explicit examples of `example` (Hypothesis' context, so `target` and
    `reject` work as in the search); the failure it stopped at, recorded in `result`, or None."""
    if not sweep:
        return None
    test = given(strategy)(example)
    for problem in reversed(sweep):  # Hypothesis runs the outermost @example first
        test = hypothesis.example(problem)(test)
    before = result.tally.examples
    only_explicit = hypothesis.settings(conf, phases=(Phase.explicit,))
    with warnings.catch_warnings():
        # A failing explicit example's repr (its arrays) is long; the failure record has the problem already.
        warnings.filterwarnings("ignore", "Generating overly large repr", hypothesis.errors.HypothesisWarning)
        found = _search(
            prepare(test, example, only_explicit, profile=profile, seed=seed, key=f"{key}#sweep"),
            backend,
            result,
            deaths,
        )
    result.sweep_examples = result.tally.examples - before
    return found


def _search(
    test: Callable[[], None], backend: Backend, result: PropertyResult, deaths: list[PropertyFailure]
) -> PropertyFailure | None:
    """Run one Hypothesis search into `result`; the failure it reported (None: none, or only flaky ones)."""
    tally = result.tally
    found: PropertyFailure | None = None
    try:
        test()
    except _StopShrinking as stop:
        result.status = "failed"
        result.failures.append(failure_record(stop.failure, backend, stop.why))
        found = stop.failure
    except PropertyFailure as exc:
        result.status = "failed"
        result.failures.append(failure_record(exc, backend))
        found = exc
        if deaths and exc.kind not in DEATHS:
            # Shrinking wandered from a crash to a smaller wrong answer; the crash is the graver news.
            result.failures.insert(
                len(result.failures) - 1, failure_record(deaths[-1], backend, "the smallest crash seen while shrinking")
            )
            found = deaths[-1]
    except hypothesis.errors.Unsatisfiable as exc:
        if result.status == "failed":
            pass  # a further search that found nothing new to draw: the failures stand
        elif result.unsupported and not tally.examples:
            result.status = "unsupported"
            result.reason = "every example was declined: " + _declined(result.unsupported)
        else:
            result.status = "error"
            result.reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    except KeyboardInterrupt:
        # Keep what was observed; the caller sees `interrupted` and stops starting new work. A failure an
        # earlier search reported stands: the property failed, and was interrupted looking for more.
        result.interrupted = True
        if result.status != "failed":
            result.status = "interrupted"
            result.reason = "interrupted by the user"
    except hypothesis.errors.FlakyFailure as exc:
        result.status = "failed"
        result.failures += _flaky_failures(exc, backend) or [
            {
                "message": f"FlakyFailure: {exc}",
                "problem": {},
                "reproducer": "",
                "kind": "flaky",
                "triage": triage("flaky"),
            }
        ]
    except Exception as exc:  # noqa: BLE001 - a Hypothesis health check or a bug: record it, go on
        if result.status != "failed":
            result.status = "error"
            result.reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return found


def _replay_findings(backend: Backend, prop: Property, result: PropertyResult) -> None:
    entries = {e["id"]: e for e in replay(backend, prop)}
    # Findings whose region this property's random search reached (a region can span several properties).
    for finding_id, counts in result.regions.items():
        entry = entries.get(finding_id)
        if entry is None:
            entry = entries[finding_id] = region_entry(finding_id, backend)
        entry["region_examples"] = {"failed": counts["failed"], "passed": counts["passed"]}
        if counts["failed"]:
            entry["evidence"] = result.evidence[finding_id]
            if entry.get("outcome") in ("not reproduced here", "stale", "no example", None):
                # The minimal example passed here, but random examples of its region did not: it reproduces.
                entry["outcome"] = "reproduced"
                entry["reproduced"] = True
    result.known_findings = list(entries.values())
    for entry in failing(result.known_findings):
        result.status = "failed"
        if entry["outcome"] == "stale":
            message = (
                f"known finding {entry['id']} no longer reproduces on {backend.framework} {entry['here']['version']} "
                f"with {entry['here']['isa_class']} kernels, where it was recorded reproducing ({entry['where']}): "
                "update crosscheck/data/known_findings.json (and crosscheck/core/finding_regions.py)"
            )
        else:
            message = f"known finding {entry['id']}: {entry['message']}"
        result.failures.append(
            {
                "message": message,
                "problem": entry.get("problem", {}),
                "reproducer": environment_line(backend.framework, backend.version(), backend.dispatch())
                + "\n"
                + entry["reproducer"],
                "native_snippet": None,
                "kind": "stale" if entry["outcome"] == "stale" else "mismatch",
                "triage": triage("stale" if entry["outcome"] == "stale" else "mismatch"),
                "finding": entry["id"],
            }
        )
