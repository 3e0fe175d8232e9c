"""Known upstream discrepancies (crosscheck/data/known_findings.json), replayed on every run.

A finding's region is left out of the random search by its backend's capabilities; its minimal
example is replayed here and must still fail. If it passes on a version the finding names, the run
fails: the finding was fixed upstream (or the adapter changed) and the data file is out of date.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

from crosscheck.backends.base import Backend
from crosscheck.problem import ConvSpec
from crosscheck.properties import Property, PropertyFailure
from crosscheck.values import make_problem


@cache
def known_findings() -> tuple[dict[str, Any], ...]:
    text = resources.files("crosscheck.data").joinpath("known_findings.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["findings"])


def _version_matches(backend: Backend, versions: list[str]) -> bool:
    have = backend.version()
    return any(have == v or have.startswith(v + ".") for v in versions)


def replay(backend: Backend, prop: Property) -> list[dict[str, Any]]:
    """Replay the findings recorded for (backend, property); each entry says whether it reproduced."""
    out = []
    for f in known_findings():
        if f["backend"] != backend.name or f["property"] != prop.name:
            continue
        entry: dict[str, Any] = {k: f[k] for k in ("id", "explanation", "observed") if k in f}
        entry["version_matches"] = _version_matches(backend, f["versions"])
        if "example" not in f:
            entry.update(reproduced=None, pinned_by=f.get("pinned_by"), message="")
            out.append(entry)
            continue
        ex = f["example"]
        problem = make_problem(ConvSpec.from_dict(ex["spec"]), ex["seed"], ex["values"])
        if ex.get("meta"):  # e.g. the precision mode of a precision_modes finding
            problem = replace(problem, meta={**problem.meta, **ex["meta"]})
        try:
            prop.check(backend, problem)
        except PropertyFailure as exc:
            entry.update(reproduced=True, message=exc.detail, reproducer=exc.reproducer)
        else:
            entry.update(reproduced=False, message="the minimal example now passes")
        out.append(entry)
    return out


def stale(entries: list[dict[str, Any]]) -> list[str]:
    """Ids of findings that no longer reproduce on a version they name."""
    return [e["id"] for e in entries if e["reproduced"] is False and e["version_matches"]]
