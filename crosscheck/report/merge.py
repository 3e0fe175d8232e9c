"""Records (one run, or the shards of a CI matrix) merged into one record-shaped view.

The result keeps the record schema (version 1) so that it validates and can be written and rendered
again, plus a `shards` list that keeps each shard's own run metadata and environment: a merged
report must still say which machine and versions produced which numbers.

Results of the same (backend, property) combine: examples and histograms add up, worst ratios take
the maximum, failures are the union, and the status is the worst one seen.

Records of `crosscheck run --shard I/N` say which shard of which plan they are; `sharding` lists each
plan's shards, those present and those missing, so that a report built from an incomplete set says so
instead of passing for the whole run. Two records claiming the same shard of one plan are refused: their
work would be counted twice.
"""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import Any

from crosscheck.core.errors import CrosscheckError
from crosscheck.run.record import SCHEMA_VERSION, summarize
from crosscheck.strategies import coverage

# Worst first: a failure in any shard makes the merged result fail.
STATUS_ORDER = ("failed", "error", "interrupted", "passed", "expected_failure", "skipped", "unsupported")

_SUMMED = ("examples", "exact_examples", "zero_error", "below", "above")


def shard_label(source: str) -> str:
    """A short name for a shard: nox writes reports/shards/<session>/crosscheck.json."""
    p = PurePath(source)
    return p.parent.name if p.name == "crosscheck.json" and p.parent.name else p.stem or source


def worst_status(statuses: Iterable[str]) -> str:
    ranked = [s for s in statuses if s in STATUS_ORDER]
    return min(ranked, key=STATUS_ORDER.index) if ranked else "unsupported"


def _max_or_none(values: Iterable[float | None]) -> float | None:
    # The record writes non-finite statistics as null; null then stays "unknown/infinite".
    vals = list(values)
    if any(v is None for v in vals):
        return None
    return max((v for v in vals if v is not None), default=0.0)


def _merge_dtype(stats: list[dict[str, Any]], where: str) -> dict[str, Any]:
    bins = {len(s["histogram"]) for s in stats}
    if len(bins) > 1:
        raise CrosscheckError(f"{where}: shards use different histogram bins ({sorted(bins)}); cannot merge them")
    out: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in stats) for k in _SUMMED}
    out["max_ratio"] = _max_or_none(s.get("max_ratio") for s in stats)
    out["max_ulp"] = _max_or_none(s.get("max_ulp") for s in stats)
    out["histogram"] = [sum(col) for col in zip(*(s["histogram"] for s in stats))]
    medians = [s["expected_ratio_median"] for s in stats if s.get("expected_ratio_median") is not None]
    # A median of medians: the shards' raw samples are not in the record; good enough for a guide line.
    out["expected_ratio_median"] = statistics.median(medians) if medians else None
    return out


def _union_failures(groups: Iterable[tuple[str, list[dict[str, Any]]]], tag: bool) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for label, failures in groups:
        for f in failures:
            key = json.dumps([f.get("message"), f.get("problem"), f.get("pair")], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            out.append({**f, "shard": label} if tag else dict(f))
    return out


def _union_findings(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    # One entry per finding, outcome and ISA class: a finding that reproduced in one shard (or on one machine's
    # kernels) and not in another shows both; the region's random examples add up within one entry.
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for label, r in entries:
        for f in r.get("known_findings") or []:
            key = (f.get("id"), f.get("outcome", f.get("reproduced")), (f.get("here") or {}).get("isa_class"))
            if key in seen:
                seen[key]["shards"].append(label)
                region, more = seen[key].get("region_examples"), f.get("region_examples")
                if region is not None and more is not None:
                    seen[key]["region_examples"] = {k: region.get(k, 0) + more.get(k, 0) for k in ("failed", "passed")}
                elif more is not None:
                    seen[key]["region_examples"] = dict(more)
            else:
                seen[key] = {**copy.deepcopy(f), "shards": [label]}
    return list(seen.values())


def _merge_results(shards: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for label, record in shards:
        for r in record["results"]:
            groups.setdefault((r["backend"], r["property"]), []).append((label, r))
    tag = len(shards) > 1
    merged = []
    for (backend, prop), entries in groups.items():
        if len(entries) == 1 and not tag:
            merged.append(copy.deepcopy(entries[0][1]))
            continue
        rs = [r for _, r in entries]
        examples = sum(r["examples"] for r in rs)
        duration = sum(float(r.get("duration_s") or 0.0) for r in rs)
        dtypes: dict[str, list[dict[str, Any]]] = {}
        modes: dict[str, dict[str, list[dict[str, Any]]]] = {}
        features: dict[str, int] = {}
        for r in rs:
            for d, s in r["by_dtype"].items():
                dtypes.setdefault(d, []).append(s)
            for m, by_dtype in (r.get("by_mode") or {}).items():
                for d, s in by_dtype.items():
                    modes.setdefault(m, {}).setdefault(d, []).append(s)
            for k, n in (r.get("features") or {}).items():
                features[k] = features.get(k, 0) + int(n)
        reasons = list(dict.fromkeys(r["reason"] for r in rs if r.get("reason")))
        merged.append(
            {
                "backend": backend,
                "property": prop,
                "status": worst_status(r["status"] for r in rs),
                "reason": "; ".join(reasons) or None,
                "examples": examples,
                "informative_examples": sum(int(r.get("informative_examples") or 0) for r in rs),
                "shrink_steps": sum(int(r.get("shrink_steps") or 0) for r in rs),
                "duration_s": round(duration, 4),
                "examples_per_second": round(examples / duration, 2) if duration > 0 else None,
                "features": dict(sorted(features.items())),
                "by_dtype": {d: _merge_dtype(ss, f"{backend}/{prop}/{d}") for d, ss in sorted(dtypes.items())},
                "by_mode": {
                    m: {d: _merge_dtype(ss, f"{backend}/{prop}/{m}/{d}") for d, ss in sorted(ds.items())}
                    for m, ds in sorted(modes.items())
                },
                "failures": _union_failures(((label, r["failures"]) for label, r in entries), tag),
                "known_findings": _union_findings(entries),
                "shards": [label for label, _ in entries],
                # The ISA level the row ran at (crosscheck run --isa): part of its backend name already.
                **({"isa": rs[0]["isa"]} if "isa" in rs[0] else {}),
            }
        )
    return merged


def _merge_backends(shards: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for label, record in shards:
        for b in record["backends"]:
            have = by_name.get(b["name"])
            if have is None or (b["available"] and not have["available"]):
                by_name[b["name"]] = {**copy.deepcopy(b), "shards": [label] if b["available"] else []}
                if have is not None:
                    by_name[b["name"]]["shards"] = have["shards"] + by_name[b["name"]]["shards"]
            elif b["available"]:
                have["shards"].append(label)
                if b.get("version") and b.get("version") != have.get("version"):
                    have["version"] = f"{have.get('version')}, {b['version']}"
    # Backends that ran somewhere first, in the order they were met; those installed nowhere last.
    names = list(by_name)
    return [by_name[n] for n in names if by_name[n]["available"]] + [
        by_name[n] for n in names if not by_name[n]["available"]
    ]


def _merge_coverage(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each backend's feature-combination coverage (strategies.coverage), united over the shards that split its
    properties (a shard's record lists the combinations it covered)."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        for name, c in (r.get("coverage") or {}).items():
            parts.setdefault(name, []).append(c)
    return {name: coverage.union(entries) for name, entries in parts.items()}


def _merge_pairwise(shards: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    parts = [(label, r["pairwise"]) for label, r in shards if r.get("pairwise")]
    if not parts:
        return None
    if len(parts) == 1 and len(shards) == 1:
        return dict(copy.deepcopy(parts[0][1]))
    matrix: dict[tuple[str, str], dict[str, Any]] = {}
    errors: dict[str, int] = {}
    for _, pw in parts:
        for m in pw["matrix"]:
            cell = matrix.setdefault((m["a"], m["b"]), {"a": m["a"], "b": m["b"], "examples": 0, "max_ratio": 0.0})
            cell["examples"] += m["examples"]
            cell["max_ratio"] = _max_or_none([cell["max_ratio"], m["max_ratio"]])
        for name, n in (pw.get("backend_errors") or {}).items():
            errors[name] = errors.get(name, 0) + int(n)
    return {
        "backends": list(dict.fromkeys(b for _, pw in parts for b in pw["backends"])),
        "status": worst_status(pw["status"] for _, pw in parts),
        "examples": sum(pw["examples"] for _, pw in parts),
        "duration_s": round(sum(float(pw.get("duration_s") or 0.0) for _, pw in parts), 3),
        "matrix": [matrix[k] for k in sorted(matrix)],
        "backend_errors": errors,
        "failures": _union_failures(((label, pw["failures"]) for label, pw in parts), tag=True),
    }


def _same_or_none(values: list[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else None


def _merge_run(shards: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    runs = [r["run"] for _, r in shards]
    properties: dict[str, Any] = {}
    for run in runs:
        properties.update(run.get("properties") or {})
    return {
        "started": min(run["started"] for run in runs),
        "finished": max(run["finished"] for run in runs),
        # Shards run in parallel in CI; the sum is the machine time, not the wall time.
        "duration_s": round(sum(float(run["duration_s"]) for run in runs), 3),
        "profile": ", ".join(dict.fromkeys(run["profile"] for run in runs)),
        "seed": _same_or_none([run["seed"] for run in runs]),
        "max_examples": _same_or_none([run["max_examples"] for run in runs]),
        "interrupted": any(run["interrupted"] for run in runs),
        "device": ", ".join(dict.fromkeys(str(run.get("device", "cpu")) for run in runs)),
        "command": runs[0].get("command", []) if len(runs) == 1 else [],
        "properties": properties,
    }


def merge_records(records: Sequence[dict[str, Any]], sources: Sequence[str] | None = None) -> dict[str, Any]:
    """One record-shaped view of `records` (already validated), with each shard kept in `shards`."""
    if not records:
        raise CrosscheckError("report: no records to merge")
    sources = list(sources) if sources is not None else [f"record {i + 1}" for i in range(len(records))]
    _refuse_repeated_runs(records, sources)
    labels = [shard_label(s) for s in sources]
    # Two shards with one name (two crosscheck.json in folders of one name) must stay apart.
    labels = [lab if labels.count(lab) == 1 else f"{lab} ({src})" for lab, src in zip(labels, sources)]
    shards = list(zip(labels, records))
    results = _merge_results(shards)
    pairwise = _merge_pairwise(shards)
    first = records[0]
    entries = [s for (label, r), src in zip(shards, sources) for s in _shard_entries(label, src, r)]
    return {
        "schema": "crosscheck-record",
        "schema_version": SCHEMA_VERSION,
        "tool": dict(first["tool"]),
        "run": _merge_run(shards),
        "environment": copy.deepcopy(first["environment"]),
        "backends": _merge_backends(shards),
        "results": results,
        "pairwise": pairwise,
        "coverage": _merge_coverage(records),
        "summary": summarize(results, pairwise),
        "shards": entries,
        "sharding": shard_sets(entries),
    }


def _refuse_repeated_runs(records: Sequence[dict[str, Any]], sources: Sequence[str]) -> None:
    """Two copies of one unsharded record (its run metadata, to the second, identical) would count its results
    twice; sharded records are checked per shard by shard_sets."""
    seen: dict[str, str] = {}
    for record, source in zip(records, sources):
        run = record.get("run") or {}
        if run.get("shard"):
            continue
        key = json.dumps([run, record.get("environment")], sort_keys=True, default=str)
        if key in seen:
            raise CrosscheckError(f"{source}: the same run as {seen[key]}; merging it again would count it twice")
        seen[key] = source


def shard_sets(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each plan that sharded records split (`run.shard`, `run.shard_plan`): which shards are here,
    which are missing, and whether the set is complete. Raises CrosscheckError for a shard given twice."""
    groups: dict[tuple[str, int], dict[int, str]] = {}
    for e in entries:
        run = e.get("run") or {}
        if not run.get("shard"):
            continue
        index, count = (int(t) for t in str(run["shard"]).split("/"))
        if not 1 <= index <= count:
            raise CrosscheckError(f"{e['label']}: shard {index}/{count} does not exist (expected 1 <= I <= N)")
        have = groups.setdefault((str(run.get("shard_plan") or ""), count), {})
        if index in have:
            raise CrosscheckError(
                f"shard {index}/{count} given twice ({have[index]} and {e['label']}): its work would be counted twice"
            )
        have[index] = str(e["label"])
    out = []
    for (digest, count), have in sorted(groups.items()):
        missing = [i for i in range(1, count + 1) if i not in have]
        out.append(
            {
                "plan": digest,
                "count": count,
                "present": sorted(have),
                "missing": missing,
                "complete": not missing,
                "labels": [have[i] for i in sorted(have)],
            }
        )
    return out


def incomplete_note(sharding: Sequence[dict[str, Any]]) -> str | None:
    """One line naming the missing shards, or None when every sharded plan is complete."""
    parts = []
    for g in sharding:
        if g["missing"]:
            shards = ", ".join(f"{i}/{g['count']}" for i in g["missing"])
            parts.append(f"{shards} of plan {g['plan'] or '?'}")
    if not parts:
        return None
    return "missing shard " + "; ".join(parts) + ": this report covers only part of the run"


def _shard_entries(label: str, source: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    # A record that is itself a merge brings its own shards, so merging merges loses no environment.
    if record.get("shards"):
        return [copy.deepcopy(s) for s in record["shards"]]
    return [
        {
            "label": label,
            "source": source,
            "tool": record["tool"],
            "run": record["run"],
            "environment": record["environment"],
            "backends": [b["name"] for b in record["backends"] if b["available"]],
            "summary": record["summary"],
        }
    ]
