"""Known upstream discrepancies (crosscheck/data/known_findings.json) as expectations, not exclusions.

A finding is a function of the framework version *and* the ISA class its kernels dispatch to
(`crosscheck.core.hardware`): the same torch release sums float16 gradients in float16 on AVX-512 kernels
and in float32 on AVX-512 FP16 ones. So each finding lists the environments it was seen in, each as
(version, ISA class, reproduced or not), and its region (`crosscheck.core.finding_regions`) stays in the
random search. Every run then says, per finding:

- *reproduced here*: its minimal example still fails here (or the random search hit its region and
  failed as it explains);
- *not reproduced here*: it passed, in an environment where it was never recorded as reproducing —
  information, not a failure;
- *stale*: it passed in an environment whose version and ISA class match one where it was recorded
  reproducing — the run fails, the data file (or the adapter) is out of date.

A finding of kind "weaker-contract" (a float16 sum kept in float16) is not garbage: inside its region
the backend must still meet the bound of that weaker contract, so a second, different bug there is
still caught. A finding of kind "crash" is replayed only in a worker process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from crosscheck.backends.base import Backend, weaker_contract
from crosscheck.core.finding_regions import REGIONS, Region
from crosscheck.core.hardware import isa_rank
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import reproducer
from crosscheck.core.values import make_problem
from crosscheck.properties.base import Property, PropertyFailure
from crosscheck.run.record import FAILING_OUTCOMES

# Each kind of finding, and what its failures look like (PropertyFailure.kind); weaker-contract: see `explains`.
_EXPLAINED_KINDS = {
    "weaker-contract": ("mismatch",),
    "wrong": ("mismatch",),
    "exception": ("exception",),
    "crash": ("crash",),
}
KINDS = tuple(_EXPLAINED_KINDS)


@cache
def known_findings() -> tuple[dict[str, Any], ...]:
    text = resources.files("crosscheck.data").joinpath("known_findings.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["findings"])


def _version_matches(have: str, version: str) -> bool:
    return have == version or have.startswith(version + ".")


def backends_of(finding: dict[str, Any]) -> tuple[str, ...]:
    """The backend `finding` was recorded on, then those that reach the same bug one level up (`through`: e.g. a
    Keras backend whose layer calls that framework's op): the same finding, replayed and searched there too."""
    return (str(finding["backend"]), *finding.get("through", {}))


def version_for(backend: Backend, finding: dict[str, Any]) -> str:
    """The version `finding`'s environments are compared with on `backend`: its own, or, one level up, that of the
    framework below it (a backend that is a layer over it reports it in `dispatch()["framework_versions"]`)."""
    if backend.name == finding["backend"]:
        return backend.version()
    below = backend.dispatch().get("framework_versions", {})
    return str(below.get(finding.get("framework"), backend.version()))


def isa_class_of(backend: Backend) -> str:
    return str(backend.dispatch().get("isa_class") or "unknown")


def recorded_here(finding: dict[str, Any], version: str, isa_class: str) -> bool:
    """Was `finding` recorded reproducing with this framework version on this ISA class (on any, when the
    finding does not depend on the ISA)?"""
    for env in finding.get("environments", ()):
        if not env.get("reproduced") or not _version_matches(version, str(env["version"])):
            continue
        if not finding.get("isa_dependent", True) or env.get("isa_class") == isa_class:
            return True
    return False


def environments_text(finding: dict[str, Any]) -> str:
    """'reproduced: avx512-bf16, avx2 (torch 2.13); not reproduced: amx' — for messages and reports."""
    if not finding.get("isa_dependent", True):
        versions = sorted({str(e["version"]) for e in finding.get("environments", ()) if e.get("reproduced")})
        return f"any ISA (versions {', '.join(versions)})"
    seen: dict[bool, list[str]] = {True: [], False: []}
    for e in finding.get("environments", ()):
        label = f"{e.get('isa_class')} ({e['version']})"
        if label not in seen[bool(e.get("reproduced"))]:
            seen[bool(e.get("reproduced"))].append(label)
    parts = [f"reproduced on {', '.join(seen[True])}"] if seen[True] else []
    parts += [f"not reproduced on {', '.join(seen[False])}"] if seen[False] else []
    return "; ".join(parts) or "no environment recorded"


@dataclass(frozen=True)
class Known:
    """A finding whose region holds a problem here: its data and its region."""

    finding: dict[str, Any]
    region: Region

    @property
    def id(self) -> str:
        return str(self.finding["id"])

    @property
    def kind(self) -> str:
        return str(self.finding.get("kind", "wrong"))


def regions_holding(backend: Backend, prop: str, spec: ConvSpec | list[ConvSpec]) -> list[Known]:
    """The findings of `backend` whose region holds `spec` (or any of a list: the geometries one check runs, see
    Property.specs) for property `prop` on this backend's ISA class."""
    specs = spec if isinstance(spec, list) else [spec]
    out = []
    for f in known_findings():
        for region in REGIONS.get(str(f["id"]), ()):
            if region.backend != backend.name or prop not in region.properties:
                continue
            if region.min_isa_class and isa_rank(isa_class_of(backend)) < isa_rank(region.min_isa_class):
                continue
            if any(region.contains(s) for s in specs):
                out.append(Known(f, region))
                break
    # Where regions overlap, a finding recorded reproducing here explains first, and a garbage finding before
    # a weaker contract (a bfloat16 accumulator's bound is wide enough to swallow garbage of another bug).
    if len(out) > 1:
        isa_class = isa_class_of(backend)
        out.sort(
            key=lambda k: (
                not recorded_here(k.finding, version_for(backend, k.finding), isa_class),
                k.kind == "weaker-contract",
            )
        )
    return out


def contract_of(finding: dict[str, Any]) -> dict[str, str]:
    """dtype -> accumulator of a weaker-contract finding (e.g. {"float16": "float16"})."""
    return dict(finding.get("contract", {}).get("accumulators", {}))


def explains(known: Known, prop: Property, backend: Backend, problem: ConvProblem, failure: PropertyFailure) -> bool:
    """Does `known` explain `failure` of `problem`? A weaker-contract finding does when the same check passes
    under its weaker contract; if that fails too, the failure is something else, raised as it is then."""
    if failure.kind not in _EXPLAINED_KINDS.get(known.kind, ()):
        return False
    if known.kind == "weaker-contract":
        beyond = beyond_contract(known.finding, prop, backend, problem)
        if beyond is not None:
            raise PropertyFailure(
                f"inside the region of known finding {known.id}, and beyond even its weaker contract "
                f"({_contract_text(known.finding)}): a different discrepancy\n{beyond.detail}",
                backend.name,
                prop.name,
                beyond.problem,
                kind=beyond.kind,
            )
    return True


def beyond_contract(
    finding: dict[str, Any], prop: Property, backend: Backend, problem: ConvProblem
) -> PropertyFailure | None:
    """How `problem` fails even the weaker contract of `finding` (e.g. float16 sums in float16), or None."""
    with weaker_contract(contract_of(finding)):
        try:
            prop.check(backend, problem)
        except PropertyFailure as exc:
            return exc
    return None


def _contract_text(finding: dict[str, Any]) -> str:
    return ", ".join(f"{d} sums in {a}" for d, a in contract_of(finding).items()) or "none"


# ------------------------------------------------------------------------------------------ replay


def example_problem(finding: dict[str, Any]) -> ConvProblem:
    ex = finding["example"]
    problem = make_problem(ConvSpec.from_dict(ex["spec"]), ex["seed"], ex["values"])
    if ex.get("meta"):  # e.g. the precision mode of a precision_modes finding
        problem = replace(problem, meta={**problem.meta, **ex["meta"]})
    return problem


def finding_reproducer(finding: dict[str, Any], backend: str) -> str:
    """The finding's minimal example as a reproducer, headed by where it was and was not seen."""
    head = f"# known finding {finding['id']} ({finding.get('framework', backend)}): {environments_text(finding)}"
    return head + "\n" + reproducer(backend, str(finding["property"]), example_problem(finding))


@functools.cache
def _isolated(name: str, device: str) -> Backend:
    """A worker-process twin of an in-process backend, for replaying a crash finding without dying of it."""
    from crosscheck.backends.isolated import IsolatedBackend
    from crosscheck.backends.registry import instantiate, resolve

    return IsolatedBackend(functools.partial(instantiate, resolve(name), name, device), name)


def _replay_backend(backend: Backend, finding: dict[str, Any]) -> Backend:
    from crosscheck.backends.isolated import IsolatedBackend

    if finding.get("kind") != "crash" or isinstance(backend, IsolatedBackend):
        return backend
    return _isolated(backend.name, backend.device)


def entry_for(finding: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """What a record says of `finding` on `backend` before anything is replayed: its data, where it was seen,
    and where it is now (this framework version and ISA class)."""
    version = version_for(backend, finding)
    keep = ("id", "explanation", "observed", "kind", "upstream")
    entry: dict[str, Any] = {k: finding[k] for k in keep if k in finding}
    if backend.name != finding["backend"]:
        entry["through"] = f"{finding['backend']}, one level down: {finding['through'][backend.name]}"
    entry["environments"] = list(finding.get("environments", ()))
    entry["where"] = environments_text(finding)
    entry["version_matches"] = any(_version_matches(version, v) for v in finding["versions"])
    entry["here"] = {"version": version, "isa_class": isa_class_of(backend)}
    entry["expected_here"] = recorded_here(finding, version, entry["here"]["isa_class"])
    return entry


def region_entry(finding_id: str, backend: Backend) -> dict[str, Any]:
    """The entry of a finding whose region another property's random search reached (its example is replayed
    under its own property)."""
    f = next(f for f in known_findings() if f["id"] == finding_id)
    message = f"its region was reached by this property's random search (recorded under {f['property']})"
    return {**entry_for(f, backend), "reproduced": False, "outcome": "not reproduced here", "message": message}


def replay(backend: Backend, prop: Property) -> list[dict[str, Any]]:
    """Replay the findings recorded for (backend, property): each entry says what happened here."""
    out = []
    for f in known_findings():
        if backend.name not in backends_of(f) or f["property"] != prop.name:
            continue
        entry = entry_for(f, backend)
        out.append(entry)
        if "example" not in f:
            pinned = f.get("pinned_by")
            entry.update(reproduced=None, pinned_by=pinned, message="", reproducer="")
            entry["outcome"] = "pinned by a test" if pinned else "no example"
            continue
        problem = example_problem(f)
        entry["problem"] = problem.to_dict()
        entry["reproducer"] = finding_reproducer(f, backend.name)
        refused = _refusal(backend, prop, f, problem)
        if refused:
            entry.update(reproduced=None, message=f"its example cannot run here: {refused}", outcome="not applicable")
            continue
        try:
            prop.check(_replay_backend(backend, f), problem)
        except PropertyFailure as exc:
            entry.update(reproduced=True, message=exc.detail, outcome="reproduced")
            kind = str(f.get("kind", "wrong"))
            beyond = beyond_contract(f, prop, backend, problem) if kind == "weaker-contract" else None
            if exc.kind not in _EXPLAINED_KINDS.get(kind, ("mismatch",)):
                # Not the failure the finding describes (a framework error where it records wrong values).
                entry.update(reproduced=False, outcome="fails differently")
                entry["message"] = f"expected a {kind} failure, got a {exc.kind}: {exc.detail}"
            elif beyond is not None:
                entry["outcome"] = "beyond its contract"
                entry["message"] = f"fails even its weaker contract ({_contract_text(f)}): {beyond.detail}"
        else:
            entry.update(reproduced=False, message="the minimal example now passes")
            entry["outcome"] = "stale" if entry["expected_here"] else "not reproduced here"
    return out


def failing(entries: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The replayed findings that fail the run (FAILING_OUTCOMES)."""
    return (e for e in entries if e.get("outcome") in FAILING_OUTCOMES)


def _refusal(backend: Backend, prop: Property, finding: dict[str, Any], problem: ConvProblem) -> str | None:
    """Why the backend cannot run the finding's example here (a dtype its kernels refuse under this ISA, say),
    or None. A crash finding's own exclusion does not count: replaying it is the point."""
    reason = prop.applies(backend)
    if reason is None:
        caps = prop.space(backend)
        reason = caps.refuses(problem.spec) if caps is not None else "the property has no space here"
        mode = problem.meta.get("precision_mode")
        if reason is None and mode:
            modes = {m.name: m for m in backend.precision_modes()}
            reason = modes[mode].unsupported or modes[mode].refuses(problem.spec) if mode in modes else "no such mode"
    if reason and reason.startswith(f"finding {finding['id']}"):
        return None
    return reason
