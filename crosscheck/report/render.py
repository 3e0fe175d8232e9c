"""The report as one self-contained HTML file: Jinja2 (autoescape on) over the shipped templates.

Everything is inline (CSS, SVG charts) and the page runs no script, so it works offline, from a CI
artifact or an e-mail attachment, and text from a framework's error message can only ever be text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crosscheck.report import model, semantics
from crosscheck.report.charts import PALETTE, colour, distribution_charts
from crosscheck.report.merge import incomplete_note, merge_records
from crosscheck.run.outputs import write_atomic

if TYPE_CHECKING:
    from jinja2 import Environment


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}g}"


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    if v < 60:
        return f"{v:.2f} s" if v < 10 else f"{v:.1f} s"
    return f"{int(v // 60)} min {v % 60:.0f} s"


def _plain(value: Any) -> str:
    """A fingerprint value as short text: lists joined, nested mappings as key=value."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _ratio_style(ratio: Any) -> str:
    """Background for a pairwise cell: pale green at 0, amber towards 1, red past the bound."""
    if ratio is None or ratio > 1:
        return "background:#f4c7c3"
    t = min(max(float(ratio), 0.0), 1.0) ** 0.5
    r, g, b = (int(a + (c - a) * t) for a, c in zip((230, 244, 234), (252, 214, 140)))
    return f"background:rgb({r},{g},{b})"


def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("crosscheck.report", "templates"),
        autoescape=True,  # every value from a record is text, never markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, seconds=_seconds, plain=_plain, ratio_style=_ratio_style)
    return env


def _pairwise(record: dict[str, Any]) -> dict[str, Any] | None:
    pw = record.get("pairwise")
    if not pw:
        return None
    cells = {}
    for m in pw["matrix"]:
        cells[(m["a"], m["b"])] = cells[(m["b"], m["a"])] = m
    names = list(pw["backends"])
    return {
        "status": pw["status"],
        "examples": pw["examples"],
        "duration_s": pw.get("duration_s"),
        "names": names,
        "cells": cells,
        "worst": max((m["max_ratio"] for m in pw["matrix"] if m["max_ratio"] is not None), default=None),
        "errors": pw.get("backend_errors") or {},
    }


def _coverage(record: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[int]]]]:
    totals: dict[str, dict[str, int]] = {}
    for r in record["results"]:
        t = totals.setdefault(r["backend"], {})
        for k, n in (r.get("features") or {}).items():
            t[k] = t.get(k, 0) + int(n)
    keys = sorted({k for t in totals.values() for k in t if not k.startswith("dtype=")})
    return keys, [(b, [t.get(k, 0) for k in keys]) for b, t in totals.items()]


def build_context(record: dict[str, Any]) -> dict[str, Any]:
    from markupsafe import Markup

    from crosscheck.report.seed import seed_example

    view = record if record.get("shards") else merge_records([record], ["crosscheck.json"])
    order = [b["name"] for b in view["backends"]]
    dists = model.distributions(view)
    # The charts are SVG that matplotlib wrote from numbers and escaped names: trusted markup.
    charts = {d: Markup(svg) for d, svg in distribution_charts(dists, order).items()}
    summary = view["summary"]
    bad = summary.get("failed", 0) + summary.get("error", 0)
    ex = seed_example()
    return {
        "r": view,
        "run": view["run"],
        "verify": (record.get("run") or {}).get("verify"),  # a `crosscheck verify` record: about your function
        "shards": view["shards"],
        "incomplete": incomplete_note(view.get("sharding") or []),
        "summary": summary,
        "bad": bad,
        "interrupted": view["run"]["interrupted"] or summary.get("interrupted", 0) > 0,
        "matrix": model.verdict_matrix(view),
        "dists": dists,
        "charts": charts,
        "colours": {name: colour(name, order) for name in order},
        "palette": PALETTE,
        "failures": model.failures(view),
        "known": model.known_findings(view),
        "pairwise": _pairwise(view),
        "backends": [b for b in view["backends"] if b["available"]],
        "properties": view["run"].get("properties") or {},
        "crosscorrelation": model.property_verdicts(view, "is_cross_correlation"),
        "conjugation": model.property_verdicts(view, "no_conjugation"),
        "modes": model.precision_modes(view),
        "seed": {k: getattr(ex, k).tolist() for k in ("a", "b", "c", "b2", "corr2", "conv2")},
        "conventions": semantics.CONVENTIONS,
        "pad_examples": semantics.pad_examples(),
        "backend_padding": semantics.backend_padding(view),
        "coverage": _coverage(view),
        "combinations": view.get("coverage") or {},
    }


def render_html(record: dict[str, Any]) -> str:
    """The report of one record, or of a merged view from `merge_records`."""
    return str(_environment().get_template("report.html.j2").render(**build_context(record)))


def write_report(record: dict[str, Any], path: Path) -> None:
    write_atomic(path, render_html(record))
