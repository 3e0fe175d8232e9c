"""What the report shows, computed from a (merged) record as plain data for the template.

Nothing here runs a backend or the reference: every number comes from the record.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from crosscheck.core.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES, INT_DTYPES
from crosscheck.run.diagnosis import diagnose
from crosscheck.run.record import FAILING_OUTCOMES
from crosscheck.run.stats import HIST_BINS

DTYPE_ORDER = FLOAT_DTYPES + INT_DTYPES + COMPLEX_DTYPES
# The dtypes whose error-to-bound ratios are charted (integers are always exact).
RATIO_DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES


@dataclass
class Cell:
    """One backend × property × dtype: how many examples held, failed, or why none could run."""

    kind: str  # passed | failed | unsupported | none (supported, none drawn) | error | interrupted
    passed: int = 0
    failed: int = 0
    exact: int = 0
    max_ratio: float | None = None
    reason: str | None = None


@dataclass
class Row:
    backend: str
    prop: str
    title: str
    status: str
    reason: str | None
    examples: int
    duration_s: float
    cells: list[Cell]
    known: int = 0  # known upstream findings replayed for this row


@dataclass
class BackendRows:
    """One backend's part of the matrix: a one-line summary, opened to its rows when it needs a look."""

    backend: str
    rows: list[Row]  # the properties that apply to this backend
    not_applicable: list[Row]  # properties this backend cannot run (reasons in the "why n/a" table)
    status: str  # the worst row status: failed > error > interrupted > passed
    examples: int
    duration_s: float
    known: int
    held: int  # properties that held
    worst: float | None  # the largest error ÷ bound among the examples that held

    @property
    def opened(self) -> bool:
        """Open where a reader has something to look at: a failure or an error (known findings have their cards)."""
        return self.status not in ("passed", "unsupported")


@dataclass
class Matrix:
    dtypes: list[str]
    rows: list[Row]
    missing: list[tuple[str, str]]  # backends not installed, and why
    counts: dict[str, int] = field(default_factory=dict)
    backends: list[BackendRows] = field(default_factory=list)


@dataclass
class Dist:
    """The error-to-bound distribution of one backend in one dtype, over all its properties."""

    backend: str
    dtype: str
    histogram: list[int]
    below: int = 0
    above: int = 0
    zero: int = 0
    exact: int = 0
    examples: int = 0
    max_ratio: float | None = 0.0
    expected: float | None = None
    failed: int = 0  # minimal failing examples: not in the histogram, which counts examples that held

    @property
    def measured(self) -> int:
        """Examples with a non-zero error to place on the log axis."""
        return self.below + sum(self.histogram) + self.above


@dataclass
class FailureView:
    backend: str
    prop: str
    title: str
    message: str
    problem: str
    spec: list[tuple[str, str]]
    reproducer: str
    reproducer_label: str
    native_snippet: str | None
    framework: str
    shard: str | None
    anchor: str
    kind: str = "mismatch"  # mismatch | exception | crash | hang | stale | flaky (records before isolation: mismatch)
    triage: str = "new discrepancy"  # new discrepancy | stale finding | crash | hang (crosscheck.run.runner.triage)

    # Other properties whose failure has the same diagnosis on the same backend (`group_root_causes`).
    also: list[str] = field(default_factory=list)

    @property
    def diagnosis(self) -> str | None:
        """A root cause that explains this failure whatever the property, when the message names one."""
        return diagnose(self.message, self.kind)

    @property
    def headline(self) -> str:
        """What failed, in one line: the message's first."""
        return self.message.splitlines()[0] if self.message else ""

    @property
    def ratio(self) -> str:
        """The worst error ÷ bound (or ÷ allowed) the message reports, if it reports one."""
        found = re.search(r"(?:error-to-bound|error-to-allowed) ratio:? ([0-9.e+-]+|inf)", self.message)
        return found.group(1) if found else ""


def _backend_index(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in record["backends"]}


def ordered_dtypes(record: dict[str, Any]) -> list[str]:
    seen: set[str] = set()
    for b in record["backends"]:
        seen.update((b.get("capabilities") or {}).get("dtypes", []))
    for r in record["results"]:
        seen.update(r["by_dtype"])
    return [d for d in DTYPE_ORDER if d in seen] + sorted(seen - set(DTYPE_ORDER))


def _dtype_of(failure: dict[str, Any]) -> str | None:
    spec = (failure.get("problem") or {}).get("spec") or {}
    dtype = spec.get("dtype")
    return dtype if isinstance(dtype, str) else None


def _unsupported_reason(backend: dict[str, Any] | None, dtype: str) -> str | None:
    caps = (backend or {}).get("capabilities")
    if not caps or dtype in caps.get("dtypes", []):
        return None
    for u in caps.get("unsupported", []):
        if u.get("feature") == f"dtype {dtype}":
            return str(u.get("reason"))
    return f"the adapter does not declare {dtype}"


def _cell(result: dict[str, Any], backend: dict[str, Any] | None, dtype: str) -> Cell:
    if result["status"] == "unsupported":
        return Cell("unsupported", reason=result.get("reason") or "not applicable to this backend")
    if result["status"] == "skipped":
        return Cell("none", reason=result.get("reason") or "not run")
    reason = _unsupported_reason(backend, dtype)
    if reason:
        return Cell("unsupported", reason=reason)
    stats = result["by_dtype"].get(dtype) or {}
    failed = sum(1 for f in result["failures"] if _dtype_of(f) == dtype)
    passed = int(stats.get("examples", 0))
    cell = Cell("none", passed, failed, int(stats.get("exact_examples", 0)), stats.get("max_ratio"))
    if failed:
        cell.kind = "failed"
    elif passed:
        cell.kind = "passed"
    elif result["status"] in ("error", "interrupted"):
        cell.kind, cell.reason = result["status"], result.get("reason")
    else:
        cell.reason = "supported, but no example of this dtype was drawn"
    return cell


def verdict_matrix(record: dict[str, Any]) -> Matrix:
    backends = _backend_index(record)
    props = record["run"].get("properties") or {}
    dtypes = ordered_dtypes(record)
    rows: list[Row] = []
    for r in record["results"]:
        b = backends.get(r["backend"])
        rows.append(
            Row(
                r["backend"],
                r["property"],
                str((props.get(r["property"]) or {}).get("title", r["property"])),
                r["status"],
                r.get("reason"),
                r["examples"],
                float(r.get("duration_s") or 0.0),
                [_cell(r, b, d) for d in dtypes],
                known=len(r.get("known_findings") or []),
            )
        )
    # Group rows of one backend together (results may arrive interleaved from merged shards).
    order = list(dict.fromkeys(row.backend for row in rows))
    rows.sort(key=lambda row: order.index(row.backend))
    counts: dict[str, int] = {"passed": 0, "failed": 0, "unsupported": 0, "none": 0, "error": 0, "interrupted": 0}
    for row in rows:
        for c in row.cells:
            counts[c.kind] = counts.get(c.kind, 0) + 1
    counts["examples"] = sum(row.examples for row in rows)
    counts["failures"] = sum(c.failed for row in rows for c in row.cells)
    missing = [(b["name"], str(b.get("reason") or "not installed")) for b in record["backends"] if not b["available"]]
    return Matrix(dtypes, rows, missing, counts, [_backend_rows(name, rows) for name in order])


_STATUS_ORDER = ("failed", "error", "interrupted", "passed", "skipped", "unsupported")


def _backend_rows(backend: str, all_rows: list[Row]) -> BackendRows:
    rows = [r for r in all_rows if r.backend == backend]
    applicable = [r for r in rows if r.status != "unsupported"]
    statuses = {r.status for r in applicable} or {"unsupported"}
    ratios = [c.max_ratio for r in applicable for c in r.cells if c.kind == "passed" and c.max_ratio is not None]
    return BackendRows(
        backend,
        applicable,
        [r for r in rows if r.status == "unsupported"],
        next((s for s in _STATUS_ORDER if s in statuses), "error"),
        sum(r.examples for r in rows),
        sum(r.duration_s for r in rows),
        sum(r.known for r in rows),
        sum(1 for r in applicable if r.status == "passed"),
        max(ratios) if ratios else None,
    )


def distributions(record: dict[str, Any]) -> dict[str, list[Dist]]:
    """Per float dtype, one Dist per backend that ran examples of it (properties summed)."""
    out: dict[str, dict[str, Dist]] = {}
    medians: dict[tuple[str, str], list[float]] = {}
    for r in record["results"]:
        for dtype, s in r["by_dtype"].items():
            if dtype not in RATIO_DTYPES or not s.get("examples"):
                continue
            hist = list(s["histogram"])
            d = out.setdefault(dtype, {}).setdefault(r["backend"], Dist(r["backend"], dtype, [0] * len(hist)))
            d.histogram = [a + b for a, b in zip(d.histogram, hist)]
            d.below += int(s.get("below") or 0)
            d.above += int(s.get("above") or 0)
            d.zero += int(s.get("zero_error") or 0)
            d.exact += int(s.get("exact_examples") or 0)
            d.examples += int(s["examples"])
            d.max_ratio = (
                None if d.max_ratio is None or s.get("max_ratio") is None else max(d.max_ratio, s["max_ratio"])
            )
            if s.get("expected_ratio_median") is not None:
                medians.setdefault((r["backend"], dtype), []).append(float(s["expected_ratio_median"]))
        for f in r["failures"]:
            dtype = _dtype_of(f)
            if dtype in RATIO_DTYPES:
                bins = [len(s["histogram"]) for s in r["by_dtype"].values()]
                empty = Dist(r["backend"], dtype, [0] * (bins[0] if bins else HIST_BINS))
                d = out.setdefault(dtype, {}).setdefault(r["backend"], empty)
                d.failed += 1
    for (backend, dtype), values in medians.items():
        out[dtype][backend].expected = statistics.median(values)
    return {d: list(out[d].values()) for d in RATIO_DTYPES if d in out}


def _spec_rows(spec: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("dtype", "batch", "in_channels", "out_channels", "in_size", "kernel", "stride", "dilation", "padding")
    rows = [(k, str(spec[k])) for k in keys if k in spec]
    rows += [(k, str(spec[k])) for k in ("groups", "layout") if k in spec]
    return rows


def _describe(problem: dict[str, Any]) -> str:
    from crosscheck.core.problem import ConvSpec

    try:
        text = ConvSpec.from_dict(problem["spec"]).describe()
    except Exception:  # noqa: BLE001 - a record from elsewhere may hold a spec this version refuses
        return ""
    return f"{text} seed={problem.get('seed')} values={problem.get('values')}"


def failures(record: dict[str, Any]) -> list[FailureView]:
    backends = _backend_index(record)
    props = record["run"].get("properties") or {}
    out: list[FailureView] = []
    for r in record["results"]:
        for f in r["failures"]:
            problem = f.get("problem") or {}
            out.append(
                FailureView(
                    r["backend"],
                    r["property"],
                    str((props.get(r["property"]) or {}).get("title", r["property"])),
                    str(f.get("message", "")),
                    _describe(problem) if problem.get("spec") else "",
                    _spec_rows(problem.get("spec") or {}),
                    str(f.get("reproducer", "")),
                    "Reproduce with crosscheck (re-runs the check; raises PropertyFailure)",
                    f.get("native_snippet"),
                    str((backends.get(r["backend"]) or {}).get("framework") or r["backend"]),
                    f.get("shard"),
                    f"failure-{len(out) + 1}",
                    str(f.get("kind") or "mismatch"),
                    str(
                        f.get("triage") or {"crash": "crash", "hang": "hang"}.get(str(f.get("kind")), "new discrepancy")
                    ),
                )
            )
    pw = record.get("pairwise") or {}
    for f in pw.get("failures", []):
        problem = f.get("problem") or {}
        pair = " and ".join(f.get("pair") or []) or "pairwise"
        out.append(
            FailureView(
                pair,
                "pairwise agreement",
                "two backends agree within the sum of their bounds",
                str(f.get("message", "")),
                _describe(problem) if problem.get("spec") else "",
                _spec_rows(problem.get("spec") or {}),
                str(f.get("reproducer", "")),
                "Rebuild the problem with crosscheck (then run it on both backends)",
                None,
                "crosscheck",
                f.get("shard"),
                f"failure-{len(out) + 1}",
            )
        )
    # Triage order: possible framework bugs first, then findings the data file no longer describes, then deaths.
    return group_root_causes(sorted(out, key=lambda f: _TRIAGE_ORDER.get(f.triage, 0)))


_TRIAGE_ORDER = {"new discrepancy": 0, "stale finding": 1, "crash": 2, "hang": 2}


def group_root_causes(views: list[FailureView]) -> list[FailureView]:
    """One card per (backend, diagnosis): a backend wrong in one way fails many properties, and each says the same;
    the first failure stands for them, listing the others. Failures without a diagnosis stay one card each."""
    out: list[FailureView] = []
    first: dict[tuple[str, str], FailureView] = {}
    for v in views:
        cause = v.diagnosis
        key = (v.backend, cause) if cause else None
        # A second bug of one property is its own card, even with the same diagnosis (another trigger).
        if key is not None and key in first and v.triage == first[key].triage and v.prop != first[key].prop:
            first[key].also.append(v.prop)
            continue
        if key is not None:
            first[key] = v
        out.append(v)
    return out


@dataclass
class KnownFinding:
    """An upstream discrepancy the project knows about: kept out of the random search, replayed every run."""

    backend: str
    prop: str
    id: str
    explanation: str
    observed: str
    outcome: str  # crosscheck.run.record.FINDING_OUTCOMES (older records: reproduced | no longer reproduces | pinned)
    stale: bool  # an outcome that fails the run (stale, beyond its contract, fails differently)
    message: str
    reproducer: str
    shards: list[str]
    where: str = ""  # the environments where it was recorded reproducing and not
    here: str = ""  # this run's framework version and ISA class
    region: dict[str, int] | None = None  # random examples in its region: failed (explained) / passed
    upstream: str = ""  # the framework's own issue about it, where one exists


def known_findings(record: dict[str, Any]) -> list[KnownFinding]:
    out = []
    for r in record["results"]:
        for f in r.get("known_findings") or []:
            reproduced = f.get("reproduced")
            if f.get("outcome"):
                outcome = str(f["outcome"])
                if outcome == "pinned by a test" and f.get("pinned_by"):
                    outcome = f"pinned by {f['pinned_by']}"
                stale = outcome in FAILING_OUTCOMES
            elif reproduced is None:  # records before findings had outcomes
                outcome, stale = f"pinned by {f.get('pinned_by') or 'a test'}", False
            else:
                outcome = "reproduced" if reproduced else "no longer reproduces"
                stale = reproduced is False and bool(f.get("version_matches"))
            here = f.get("here") or {}
            out.append(
                KnownFinding(
                    r["backend"],
                    r["property"],
                    str(f.get("id", "")),
                    str(f.get("explanation", "")),
                    str(f.get("observed", "")),
                    outcome,
                    stale,
                    str(f.get("message") or ""),
                    str(f.get("reproducer") or ""),
                    list(f.get("shards") or []),
                    str(f.get("where") or ""),
                    f"{here.get('version', '')} on {here.get('isa_class', '')}" if here else "",
                    f.get("region_examples"),
                    str(f.get("upstream") or ""),
                )
            )
    return out


def property_verdicts(record: dict[str, Any], prop: str) -> list[tuple[str, str, str | None, int]]:
    """(backend, status, reason, examples) of one property, for the semantics section."""
    return [
        (r["backend"], r["status"], r.get("reason"), r["examples"]) for r in record["results"] if r["property"] == prop
    ]


@dataclass
class ModeRow:
    """One precision mode of one backend: what it is, and what property precision_modes saw of it."""

    backend: str
    mode: str
    description: str
    model: str
    status: str  # passed | failed | not run | unsupported (offered elsewhere, with `reason`)
    reason: str | None = None
    stats: list[tuple[str, int, int, float | None]] = field(default_factory=list)  # dtype, examples, exact, max


def _mode_model(m: dict[str, Any]) -> str:
    u_in = m.get("u_in") or 0.0
    parts = [f"inputs rounded to u = 2^{round(math.log2(u_in))}" if u_in else "inputs as given"]
    parts.append(f"sums in {m.get('accumulator') or 'the default accumulator'}")
    out = m.get("output_rounding") or m.get("output_dtype")
    if out:
        parts.append(f"result rounded to {out}")
    return ", ".join(parts)


def precision_modes(record: dict[str, Any]) -> list[ModeRow]:
    """The default mode and every declared precision mode per backend, with property precision_modes' results."""
    results = {r["backend"]: r for r in record["results"] if r["property"] == "precision_modes"}
    rows: list[ModeRow] = []
    for b in record["backends"]:
        r = results.get(b["name"])
        if not b.get("available") or r is None:
            continue
        by_mode = r.get("by_mode") or {}
        failed_modes = {
            ((f.get("problem") or {}).get("meta") or {}).get("precision_mode", "default") for f in r["failures"]
        }
        declared = [{"name": "default", "description": "the adapter's pinned default (float32 bound)"}]
        declared += list(b.get("precision_modes") or [])
        for m in declared:
            name = m["name"]
            stats = [
                (d, int(s.get("examples", 0)), int(s.get("exact_examples", 0)), s.get("max_ratio"))
                for d, s in sorted((by_mode.get(name) or {}).items())
            ]
            if m.get("unsupported"):
                status, reason = "unsupported", str(m["unsupported"])
            elif name in failed_modes:
                status, reason = "failed", None
            elif stats:
                status, reason = "passed", None
            else:
                status, reason = "none", r.get("reason") or "no example of this mode was drawn"
            model = "the backend's own bound" if name == "default" else _mode_model(m)
            rows.append(ModeRow(b["name"], name, str(m.get("description", "")), model, status, reason, stats))
    return rows
