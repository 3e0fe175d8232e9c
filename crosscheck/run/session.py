"""One `crosscheck run`: every selected backend × property, gathered into a record."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import importlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from crosscheck import __version__
from crosscheck.backends.base import NAME_IMPLEMENTATIONS_ENV, Backend, BackendUnavailable
from crosscheck.backends.isolated import DEFAULT_TIMEOUT_S, MIN_LOAD_TIMEOUT_S, IsolatedBackend, RemoteError, WorkerDied
from crosscheck.backends.registry import backend_names, expand, get_backend, instantiate, resolve
from crosscheck.core.errors import CrosscheckError
from crosscheck.core.hardware import NATIVE, expected_class, level_env
from crosscheck.properties import PROPERTIES
from crosscheck.run.environment import fingerprint
from crosscheck.run.pairwise import run_pairwise
from crosscheck.run.profiles import DISTINCT_BUGS
from crosscheck.run.record import SCHEMA_VERSION, summarize
from crosscheck.run.runner import DEATHS, Progress, PropertyResult, run_property
from crosscheck.run.sharding import PAIRWISE, Shard, Unit, plan
from crosscheck.strategies.coverage import Guide
from crosscheck.strategies.realistic import Shapes, shaping


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
    isolation: bool = True  # each backend in its own worker process (crosscheck.backends.isolated)
    timeout: float | None = DEFAULT_TIMEOUT_S  # per backend call, with isolation
    extra: dict[str, Any] = field(default_factory=dict)  # more fields for the record's "run" (verify's target)
    fail_fast: bool = False  # after a backend's first failing property, leave its other properties out
    shard: Shard | None = None  # run only this shard's units of the plan (crosscheck.run.sharding)
    isa: str = NATIVE  # the ISA level the frameworks are capped to (crosscheck.core.hardware.LEVELS), in workers
    # A failing property goes on searching for other bugs, up to this many distinct ones (crosscheck.run.runner).
    distinct_bugs: int = DISTINCT_BUGS
    # Where problems come from (crosscheck.strategies.realistic): by default one in 16 is a real network's layer.
    shapes: Shapes = field(default_factory=Shapes)


def load_backend(
    name: str, device: str = "cpu", *, isolation: bool = True, timeout: float | None = None, isa: str = NATIVE
) -> Backend:
    """Backend `name`, in a worker process if `isolation` (always, for a capped `isa` level); raises
    BackendUnavailable if it cannot run here.

    A worker that crashes or hangs while loading makes the backend unavailable, with what happened as the reason.
    """
    if not isolation:
        return get_backend(name, device)
    (target,) = expand([name])
    factory = functools.partial(instantiate, resolve(target), target, device)
    env = level_env(isa, switches_of(target)) if isa != NATIVE else {}  # no adapter import at the native level
    env = {**env, NAME_IMPLEMENTATIONS_ENV: "1"}  # the coverage guide asks each example's implementations
    try:
        load_timeout = None if timeout is None else max(timeout, MIN_LOAD_TIMEOUT_S)
        return IsolatedBackend(factory, target, timeout=timeout, load_timeout=load_timeout, env=env)
    except WorkerDied as exc:
        raise BackendUnavailable(str(exc)) from None
    except RemoteError as exc:  # a built-in adapter that fails to import: as unavailable as a missing framework
        raise BackendUnavailable(f"{target}: {type(exc).__name__}: {exc}") from None


def switches_of(name: str) -> tuple[str, ...]:
    """The ISA switches of backend `name`'s class (importing an adapter module imports no framework)."""
    module_name, _, attr = resolve(name).partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):  # a broken plugin: loading it says why
        return ()
    return tuple(getattr(obj, "isa_switches", ()))


def wanted_backends(names: Sequence[str] | None) -> list[str]:
    return expand(list(names)) if names else backend_names()


def select_backends(
    names: Sequence[str] | None,
    device: str = "cpu",
    *,
    isolation: bool = False,
    timeout: float | None = None,
    only: Collection[str] | None = None,
    isa: str = NATIVE,
) -> tuple[list[Backend], list[dict[str, Any]]]:
    """Instances of the wanted backends (of those, `only` these), and the record entries of those that
    cannot run here. At a capped `isa` level, a backend with no ISA switch is recorded as run natively only.

    Named explicitly, a missing framework is bad usage (CrosscheckError); by default it is recorded.
    """
    wanted = wanted_backends(names)
    if only is not None:
        wanted = [n for n in wanted if n in only]
    ready: list[Backend] = []
    missing: list[dict[str, Any]] = []
    if isa != NATIVE:
        fixed = [n for n in wanted if not switches_of(n)]
        missing += [{"name": n, "available": False, "reason": NO_SWITCH.format(name=n), "isa": isa} for n in fixed]
        wanted = [n for n in wanted if n not in fixed]

    def load(name: str) -> Backend:
        return load_backend(name, device, isolation=isolation, timeout=timeout, isa=isa)

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
    """Close every worker. A Ctrl-C (or signal) meanwhile does not leave the others running: each is still
    closed, then the KeyboardInterrupt is raised again."""
    isolated = [b for b in backends if isinstance(b, IsolatedBackend)]
    interrupted = False
    for b in isolated:
        b.request_close()  # every worker winds down (TensorFlow's takes a second) at the same time
    for b in isolated:
        try:
            b.close()
        except KeyboardInterrupt:
            interrupted = True
            b.close()  # crosscheck.run.signals raises only once: this one runs to the end
    if interrupted:
        raise KeyboardInterrupt


def closing(backends: Sequence[Backend], make_record: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`make_record()`, then every backend closed. A Ctrl-C (or signal) that arrives while they close marks
    the record interrupted rather than losing it."""
    record = None
    try:
        record = make_record()
    finally:
        try:
            close_backends(backends)
        except KeyboardInterrupt:
            if record is None:
                raise
            record["run"]["interrupted"] = True
    return record


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
    check_isolation(options.isa, options.isolation)
    backends, missing = select_backends(
        options.backends,
        options.device,
        isolation=options.isolation,
        timeout=options.timeout,
        only=needed,
        isa=options.isa,
    )

    def record() -> dict[str, Any]:
        kept, refused = verify_caps(backends, options.isa, props)
        return run_backends(kept, missing, props, options, progress, results=refused, units=units)

    return closing(backends, record)


def check_isolation(isa: str, isolation: bool) -> None:
    if isa != NATIVE and not isolation:
        raise CrosscheckError("--isa: a capped level runs the frameworks in worker processes; drop --no-isolation")


NO_SWITCH = (
    "{name} has no ISA switch (no variable caps the kernels it runs): `crosscheck run --isa` checks it at the "
    "native level only"
)


def verify_caps(backends: list[Backend], isa: str, props: list[str]) -> tuple[list[Backend], list[PropertyResult]]:
    """At a capped level each backend must report the ISA class its cap implies; one that does not (a framework
    that ignores the variable, a build without the switch) is not run: each of its properties is an error, so
    the run fails loudly rather than passing for the wrong kernels."""
    if isa == NATIVE:
        return backends, []
    kept: list[Backend] = []
    errors: list[PropertyResult] = []
    for b in backends:
        got, want = b.dispatch().get("isa_class"), expected_class(isa, b.isa_switches)
        if got == want:
            kept.append(b)
            continue
        caps = ", ".join(f"{k}={v}" for k, v in level_env(isa, b.isa_switches).items())
        reason = f"the ISA cap did not take effect: with {caps} {b.name} dispatches to {got}, not {want}"
        errors += [PropertyResult(b.name, p, "error", reason) for p in props]
        close_backends([b])
    return kept, errors


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
    expect = getattr(progress, "expect", None)  # a display that shows done/total and an ETA (LiveProgress)
    if callable(expect):
        # The units that will run examples (and so report progress): an unsupported property ends at once.
        planned = sum(
            PROPERTIES[p].applies(b) is None for b in backends for p in props if units is None or (b.name, p) in units
        )
        expect(planned + int(options.pairwise and (units is None or PAIRWISE in units) and len(backends) >= 2))
    guides: dict[str, Guide] = {}
    try:
        for backend in backends:
            died: str | None = None
            # One guide for all of a backend's properties: each aims at what the ones before it left uncovered.
            guide = Guide(backend.plan_name, backend.capabilities(), backend.implementation_source)
            guides[backend.name] = guide
            for name in props:
                if units is not None and (backend.name, name) not in units:
                    continue
                if died:
                    # Every further property would crash it again (or wait out the timeout again).
                    why = PROPERTIES[name].applies(backend)
                    skipped = ("unsupported", why) if why else ("skipped", f"not run: {died}")
                    results.append(PropertyResult(backend.name, name, *skipped))
                    continue
                with shaping(options.shapes):
                    r = run_property(
                        backend,
                        PROPERTIES[name],
                        profile=options.profile,
                        max_examples=options.max_examples,
                        seed=options.seed,
                        progress=progress,
                        distinct_bugs=1 if options.fail_fast else options.distinct_bugs,
                        guide=guide,
                    )
                results.append(r)
                death = next((f["kind"] for f in r.failures if f.get("kind") in DEATHS), None)
                if death:
                    died = f"{backend.name} {'crashed' if death == 'crash' else 'hung'} in {name}"
                elif options.fail_fast and r.status in ("failed", "error"):
                    died = f"stopped at the first failure, in {name}"
                if r.interrupted or r.status == "interrupted":
                    interrupted = True
                    break
            if interrupted:
                break
        # A backend whose worker died already said so in its own results; pairwise goes on without it.
        alive = [b for b in backends if not (isinstance(b, IsolatedBackend) and b.died)]
        mine = units is None or PAIRWISE in units
        if options.pairwise and mine and len(alive) >= 2 and not interrupted:
            with _no_restarts(alive), shaping(options.shapes):
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
    entries = [{**r.to_dict(), "isa": options.isa} for r in results]
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
            "isa": options.isa,
            "shapes": options.shapes.to_dict(),
            **_shard_fields(options, props),
            **options.extra,
        },
        "environment": fingerprint(
            {b.name: b.precision_flags() for b in backends}, {b.name: b.dispatch() for b in backends}
        ),
        "backends": [{**b.describe(), "available": True, "reason": None, "isa": options.isa} for b in backends]
        + missing,
        "results": entries,
        "pairwise": pairwise,
        "coverage": {
            name: g.to_dict(combinations=options.shard is not None) for name, g in guides.items() if g.examples
        },
        "summary": summarize(entries, pairwise),
    }


def _shard_fields(options: RunOptions, props: list[str]) -> dict[str, str]:
    if options.shard is None:
        return {}
    digest = plan(wanted_backends(options.backends), props, options.pairwise).digest
    return {"shard": str(options.shard), "shard_plan": digest}


def run_levels(options: RunOptions, levels: Sequence[str], progress: Progress | None = None) -> dict[str, Any]:
    """`run` once per ISA level (crosscheck.core.hardware.LEVELS, or native), each level's backends in workers capped to
    it, merged into one record in which every backend row carries its level (`torch@avx2`; native rows keep the
    plain name) so that verdicts and findings read per backend × ISA."""
    from crosscheck.report.merge import merge_records

    if list(levels) == [NATIVE]:
        return run(replace(options, isa=NATIVE), progress)
    records: list[dict[str, Any]] = []
    done: list[str] = []
    for level in levels:
        record = run(replace(options, isa=level), progress)
        records.append(tag_level(record, level))
        done.append(level)
        if record["run"]["interrupted"]:
            break
    merged = merge_records(records, [f"isa {level}" for level in done])
    # One environment holds every level's dispatch (each backend row is named for its level).
    merged["environment"]["dispatch"] = {k: v for r in records for k, v in r["environment"]["dispatch"].items()}
    merged["run"]["isa"] = ",".join(done)
    merged["run"]["isa_levels"] = done
    merged["run"]["interrupted"] = any(r["run"]["interrupted"] for r in records)
    return merged


def at_level(name: str, level: str) -> str:
    return name if level == NATIVE else f"{name}@{level}"


def tag_level(record: dict[str, Any], level: str) -> dict[str, Any]:
    """`record` (one level's run) with every backend named for its level, and each row's `isa` set."""
    for r in record["results"]:
        r["backend"], r["isa"] = at_level(r["backend"], level), level
    for b in record["backends"]:
        b["name"], b["isa"] = at_level(b["name"], level), level
    env = record["environment"]
    for key in ("dispatch", "precision_flags"):
        env[key] = {at_level(k, level): v for k, v in (env.get(key) or {}).items()}
    record["coverage"] = {at_level(k, level): v for k, v in (record.get("coverage") or {}).items()}
    pw = record.get("pairwise")
    if pw:
        pw["backends"] = [at_level(b, level) for b in pw["backends"]]
        for m in pw["matrix"]:
            m["a"], m["b"] = at_level(m["a"], level), at_level(m["b"], level)
        for f in pw["failures"]:
            f["pair"] = [at_level(b, level) for b in f.get("pair") or []]
        pw["backend_errors"] = {at_level(k, level): v for k, v in (pw.get("backend_errors") or {}).items()}
    return record
