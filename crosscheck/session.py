"""One `crosscheck run`: every selected backend × property, gathered into a record."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crosscheck import __version__
from crosscheck.backends.base import Backend, BackendUnavailable
from crosscheck.backends.registry import backend_names, expand, get_backend
from crosscheck.environment import fingerprint
from crosscheck.errors import CrosscheckError
from crosscheck.pairwise import run_pairwise
from crosscheck.properties import PROPERTIES
from crosscheck.record import SCHEMA_VERSION, summarize
from crosscheck.runner import Progress, PropertyResult, run_property


@dataclass
class RunOptions:
    backends: Sequence[str] | None = None  # None: every built-in backend that is installed
    properties: Sequence[str] | None = None
    profile: str = "dev"
    max_examples: int | None = None
    seed: int | None = None
    device: str = "cpu"
    pairwise: bool = True
    command: list[str] = field(default_factory=list)


def select_backends(names: Sequence[str] | None, device: str = "cpu") -> tuple[list[Backend], list[dict[str, Any]]]:
    """Instances of the wanted backends, and the record entries of those that cannot run here.

    Named explicitly, a missing framework is bad usage (CrosscheckError); by default it is recorded.
    """
    wanted = expand(list(names)) if names else backend_names()
    ready: list[Backend] = []
    missing: list[dict[str, Any]] = []
    for name in wanted:
        try:
            ready.append(get_backend(name, device))
        except BackendUnavailable as exc:
            if names:
                raise CrosscheckError(str(exc)) from None
            missing.append({"name": name, "available": False, "reason": str(exc)})
    return ready, missing


def select_properties(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(PROPERTIES)
    for n in names:
        if n not in PROPERTIES:
            raise CrosscheckError(f"unknown property {n!r}; known properties: {', '.join(PROPERTIES)}")
    return list(names)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run(options: RunOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run everything `options` selects; returns the record (even when interrupted part-way)."""
    backends, missing = select_backends(options.backends, options.device)
    props = select_properties(options.properties)
    started, t0 = _now(), time.perf_counter()
    results: list[PropertyResult] = []
    interrupted = False
    pairwise = None
    try:
        for backend in backends:
            for name in props:
                r = run_property(
                    backend,
                    PROPERTIES[name],
                    profile=options.profile,
                    max_examples=options.max_examples,
                    seed=options.seed,
                    progress=progress,
                )
                results.append(r)
                if r.status == "interrupted":
                    interrupted = True
                    break
            if interrupted:
                break
        if options.pairwise and len(backends) >= 2 and not interrupted:
            pw = run_pairwise(
                backends,
                profile=options.profile,
                max_examples=options.max_examples,
                seed=options.seed,
                progress=progress,
            )
            interrupted = pw.status == "interrupted"
            pairwise = pw.to_dict()
    except KeyboardInterrupt:
        # Ctrl-C outside a Hypothesis run (setting one up, or in a progress callback): keep what finished.
        interrupted = True
    entries = [r.to_dict() for r in results]
    return {
        "schema": "crosscheck-record",
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "crosscheck", "version": __version__},
        "run": {
            "started": started,
            "finished": _now(),
            "duration_s": round(time.perf_counter() - t0, 3),
            "profile": options.profile,
            "seed": options.seed,
            "max_examples": options.max_examples,
            "interrupted": interrupted,
            "device": options.device,
            "command": options.command,
            "properties": {n: {"title": PROPERTIES[n].title, "description": PROPERTIES[n].description} for n in props},
        },
        "environment": fingerprint({b.name: b.precision_flags() for b in backends}),
        "backends": [{**b.describe(), "available": True, "reason": None} for b in backends] + missing,
        "results": entries,
        "pairwise": pairwise,
        "summary": summarize(entries, pairwise),
    }
