"""One `crosscheck run`: every selected backend × property, gathered into a record."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from crosscheck import __version__
from crosscheck.backends.base import Backend, BackendUnavailable
from crosscheck.backends.registry import backend_names, expand, get_backend, instantiate, resolve
from crosscheck.environment import fingerprint
from crosscheck.errors import CrosscheckError
from crosscheck.isolation import DEFAULT_TIMEOUT_S, MIN_LOAD_TIMEOUT_S, IsolatedBackend, RemoteError, WorkerDied
from crosscheck.pairwise import run_pairwise
from crosscheck.properties import PROPERTIES
from crosscheck.record import SCHEMA_VERSION, summarize
from crosscheck.runner import DEATHS, Progress, PropertyResult, run_property
from crosscheck.sharding import PAIRWISE, Shard, Unit, plan


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
    isolation: bool = True  # each backend in its own worker process (crosscheck.isolation)
    timeout: float | None = DEFAULT_TIMEOUT_S  # per backend call, with isolation
    extra: dict[str, Any] = field(default_factory=dict)  # more fields for the record's "run" (verify's target)
    fail_fast: bool = False  # after a backend's first failing property, leave its other properties out
    shard: Shard | None = None  # run only this shard's units of the plan (crosscheck.sharding)


def load_backend(name: str, device: str = "cpu", *, isolation: bool = True, timeout: float | None = None) -> Backend:
    """Backend `name`, in a worker process if `isolation`; raises BackendUnavailable if it cannot run here.

    A worker that crashes or hangs while loading makes the backend unavailable, with what happened as the reason.
    """
    if not isolation:
        return get_backend(name, device)
    (target,) = expand([name])
    factory = functools.partial(instantiate, resolve(target), target, device)
    try:
        load_timeout = None if timeout is None else max(timeout, MIN_LOAD_TIMEOUT_S)
        return IsolatedBackend(factory, target, timeout=timeout, load_timeout=load_timeout)
    except WorkerDied as exc:
        raise BackendUnavailable(str(exc)) from None
    except RemoteError as exc:  # a built-in adapter that fails to import: as unavailable as a missing framework
        raise BackendUnavailable(f"{target}: {type(exc).__name__}: {exc}") from None


def wanted_backends(names: Sequence[str] | None) -> list[str]:
    return expand(list(names)) if names else backend_names()


def select_backends(
    names: Sequence[str] | None,
    device: str = "cpu",
    *,
    isolation: bool = False,
    timeout: float | None = None,
    only: Collection[str] | None = None,
) -> tuple[list[Backend], list[dict[str, Any]]]:
    """Instances of the wanted backends (of those, `only` these), and the record entries of those that
    cannot run here.

    Named explicitly, a missing framework is bad usage (CrosscheckError); by default it is recorded.
    """
    wanted = wanted_backends(names)
    if only is not None:
        wanted = [n for n in wanted if n in only]
    ready: list[Backend] = []
    missing: list[dict[str, Any]] = []

    def load(name: str) -> Backend:
        return load_backend(name, device, isolation=isolation, timeout=timeout)

    # Each worker imports its framework and probes it (TensorFlow: seconds): in worker processes those loads
    # run side by side on every core while this process only waits, so start them all at once. In-process
    # backends load here, in the main thread (frameworks may install signal handlers while importing).
    pool = concurrent.futures.ThreadPoolExecutor(len(wanted)) if isolation and len(wanted) > 1 else None
    futures = [pool.submit(load, n) for n in wanted] if pool else []
    try:
        for i, name in enumerate(wanted):
            try:
                ready.append(futures[i].result() if pool else load(name))
            except BackendUnavailable as exc:
                if names:
                    raise CrosscheckError(str(exc)) from None
                missing.append({"name": name, "available": False, "reason": str(exc)})
    except BaseException:
        if pool:
            # Loads still running finish first: none of their workers may outlive this call.
            concurrent.futures.wait(futures)
            ready = [f.result() for f in futures if f.exception() is None]
        close_backends(ready)
        raise
    finally:
        if pool:
            pool.shutdown(wait=True)
    return ready, missing


def close_backends(backends: Sequence[Backend]) -> None:
    isolated = [b for b in backends if isinstance(b, IsolatedBackend)]
    for b in isolated:
        b.request_close()  # every worker winds down (TensorFlow's takes a second) at the same time
    for b in isolated:
        b.close()


@contextlib.contextmanager
def _no_restarts(backends: Sequence[Backend]) -> Iterator[None]:
    """While pairwise runs every backend on every example, a worker that dies stays dead: restarting
    it for each of hundreds of examples would only crash it again, slowly."""
    isolated = [b for b in backends if isinstance(b, IsolatedBackend)]
    for b in isolated:
        b.allow_restart = False
    try:
        yield
    finally:
        for b in isolated:
            b.allow_restart = True


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
    props = select_properties(options.properties)
    units = None
    needed: set[str] | None = None
    if options.shard:
        # Load only the backends this shard has work for: importing a framework costs seconds.
        units = set(plan(wanted_backends(options.backends), props, options.pairwise).assigned(options.shard))
        needed = None if PAIRWISE in units else {b for b, _ in units}
    backends, missing = select_backends(
        options.backends, options.device, isolation=options.isolation, timeout=options.timeout, only=needed
    )
    try:
        return run_backends(backends, missing, props, options, progress, units=units)
    finally:
        close_backends(backends)


def run_backends(
    backends: list[Backend],
    missing: list[dict[str, Any]],
    props: list[str],
    options: RunOptions,
    progress: Progress | None = None,
    results: list[PropertyResult] | None = None,
    units: Collection[Unit] | None = None,
) -> dict[str, Any]:
    """Run `props` on each of `backends` (already built) and gather the record; `results` are
    entries that are already known (a target that died while loading, for `crosscheck verify`);
    `units`, if given, are the only (backend, property) pairs (and PAIRWISE) to run: a shard's."""
    started, t0 = _now(), time.perf_counter()
    results = list(results or [])
    interrupted = False
    pairwise = None
    try:
        for backend in backends:
            died: str | None = None
            for name in props:
                if units is not None and (backend.name, name) not in units:
                    continue
                if died:
                    # Every further property would crash it again (or wait out the timeout again).
                    why = PROPERTIES[name].applies(backend)
                    skipped = ("unsupported", why) if why else ("skipped", f"not run: {died}")
                    results.append(PropertyResult(backend.name, name, *skipped))
                    continue
                r = run_property(
                    backend,
                    PROPERTIES[name],
                    profile=options.profile,
                    max_examples=options.max_examples,
                    seed=options.seed,
                    progress=progress,
                )
                results.append(r)
                death = next((f["kind"] for f in r.failures if f.get("kind") in DEATHS), None)
                if death:
                    died = f"{backend.name} {'crashed' if death == 'crash' else 'hung'} in {name}"
                elif options.fail_fast and r.status in ("failed", "error"):
                    died = f"stopped at the first failure, in {name}"
                if r.status == "interrupted":
                    interrupted = True
                    break
            if interrupted:
                break
        # A backend whose worker died already said so in its own results; pairwise goes on without it.
        alive = [b for b in backends if not (isinstance(b, IsolatedBackend) and b.died)]
        mine = units is None or PAIRWISE in units
        if options.pairwise and mine and len(alive) >= 2 and not interrupted:
            with _no_restarts(alive):
                pw = run_pairwise(
                    alive,
                    profile=options.profile,
                    max_examples=options.max_examples,
                    seed=options.seed,
                    progress=progress,
                )
            interrupted = pw.status == "interrupted"
            pairwise = pw.to_dict()
            if len(alive) < len(backends):
                pairwise["left_out"] = [b.name for b in backends if b not in alive]
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
            "isolation": {"enabled": options.isolation, "timeout_s": options.timeout},
            **_shard_fields(options, props),
            **options.extra,
        },
        "environment": fingerprint(
            {b.name: b.precision_flags() for b in backends}, {b.name: b.dispatch() for b in backends}
        ),
        "backends": [{**b.describe(), "available": True, "reason": None} for b in backends] + missing,
        "results": entries,
        "pairwise": pairwise,
        "summary": summarize(entries, pairwise),
    }


def _shard_fields(options: RunOptions, props: list[str]) -> dict[str, str]:
    if options.shard is None:
        return {}
    digest = plan(wanted_backends(options.backends), props, options.pairwise).digest
    return {"shard": str(options.shard), "shard_plan": digest}
