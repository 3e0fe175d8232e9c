"""`crosscheck verify`: check anyone's convolution function with the suite's strategies, reference
and error bound, in a worker process that may crash or hang without taking crosscheck down.

The function contract (see README, "Verify your own convolution"):

    function(x, w, *, stride, padding, dilation, groups) -> array (N, C_out, *out_spatial)

From Python (for example inside another project's pytest suite):

    from crosscheck.verify import assert_verified
    assert_verified("my_package.conv:conv2d", dims=(2,))     # or pass the function itself
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crosscheck.backends.base import Backend
from crosscheck.backends.function_backend import ConvFunction, FunctionBackend
from crosscheck.dtypes import FLOAT_DTYPES
from crosscheck.errors import CrosscheckError
from crosscheck.isolation import DEFAULT_TIMEOUT_S, IsolatedBackend, WorkerDied
from crosscheck.problem import ConvProblem
from crosscheck.reproducer import problem_code

DEFAULT_DTYPE = "float32"
DEFAULT_DIMS = (1, 2, 3)
# Examples per property. The deliberately wrong convolutions of tests/verify_targets are caught within
# a median of at most a few examples at this size (see tests/verify_targets/measure.py), so 200
# examples leave a wide margin for rarer bugs at a few seconds per property for a NumPy function.
DEFAULT_MAX_EXAMPLES = 200
if TYPE_CHECKING:
    from crosscheck.runner import PropertyResult

TARGET_FORMS = "'package.module:function' or 'path/to/file.py:function'"


# ------------------------------------------------------------------------------------------- targets


def parse_target(target: str) -> tuple[str, str, bool]:
    """(module name or file path, attribute path, is a file path); CrosscheckError if malformed."""
    where, sep, attr = target.rpartition(":")  # rpartition: a Windows path has a colon of its own
    if not sep or not where or not attr:
        raise CrosscheckError(f"target {target!r}: expected {TARGET_FORMS}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise CrosscheckError(f"target {target!r}: {attr!r} is not a Python name")
    is_path = where.endswith(".py") or os.sep in where or "/" in where
    if is_path:
        if not Path(where).is_file():
            raise CrosscheckError(f"target {target!r}: no such file {where!r}")
    elif not all(part.isidentifier() for part in where.split(".")):
        raise CrosscheckError(f"target {target!r}: {where!r} is neither a module name nor a .py file")
    return where, attr, is_path


def _import_file(path: str) -> Any:
    file = Path(path).resolve()
    # A file inside a package is imported as part of it (from the folder above the package, as
    # pytest does), so that its relative and package imports work.
    parts, root = [file.stem], file.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    if len(parts) > 1:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return importlib.import_module(".".join(parts))
    # Like `python file.py`: the file's folder is importable, so the target may import its neighbours.
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    name = f"crosscheck_target_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_target(target: str) -> ConvFunction:
    """The function `target` names; CrosscheckError (one line) if it cannot be imported or called."""
    where, attr, is_path = parse_target(target)
    try:
        module = _import_file(where) if is_path else importlib.import_module(where)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import too: bad usage, not a crash
        raise CrosscheckError(
            f"target {target!r} is not importable: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CrosscheckError(f"target {target!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CrosscheckError(f"target {target!r} is not callable (it is a {type(obj).__name__})")
    fn: ConvFunction = obj
    return fn


class TargetBackend(FunctionBackend):
    """A user's function as a backend, remembering how to name it in a reproducer."""

    def __init__(
        self, fn: ConvFunction, name: str, target: str | None, *, dtypes: Sequence[str], ranks: Sequence[int]
    ) -> None:
        super().__init__(fn, name, dtypes=dtypes, ranks=ranks)
        self.target = target
        self.framework = getattr(sys.modules.get(getattr(fn, "__module__", "") or ""), "__name__", "") or name

    def version(self) -> str:
        module = sys.modules.get(getattr(self.fn, "__module__", "") or "")
        return str(getattr(module, "__version__", "-"))

    def reproducer(self, prop: str, problem: ConvProblem) -> str:
        return target_reproducer(self.target, prop, problem)


def target_backend(target: str, dtypes: Sequence[str], ranks: Sequence[int]) -> TargetBackend:
    """Import `target` and wrap it (module-level: a worker process is handed a partial of this)."""
    return TargetBackend(load_target(target), target, target, dtypes=dtypes, ranks=ranks)


def callable_backend(fn: ConvFunction, name: str, dtypes: Sequence[str], ranks: Sequence[int]) -> TargetBackend:
    return TargetBackend(fn, name, _importable_name(fn), dtypes=dtypes, ranks=ranks)


def _importable_name(fn: ConvFunction) -> str | None:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def target_reproducer(target: str | None, prop: str, problem: ConvProblem) -> str:
    """Code that rebuilds `problem`, calls the function on it, and reruns the failed check."""
    load = (
        f"from crosscheck.verify import check, load_target\nconv = load_target({target!r})"
        if target
        else "from crosscheck.verify import check\nconv = ...  # your convolution function"
    )
    return "\n".join(
        [
            problem_code(problem),
            load,
            "s = problem.spec",
            "y = conv(problem.x, problem.w, stride=s.stride, padding=s.pads, dilation=s.dilation, groups=s.groups)",
            f"check(conv, problem, {prop!r})  # raises PropertyFailure with the message above",
        ]
    )


def check(fn: ConvFunction, problem: ConvProblem, prop: str = "matches_reference") -> None:
    """Run one property of `fn` on one problem, in this process; raises PropertyFailure if it fails."""
    from crosscheck.properties import PROPERTIES

    PROPERTIES[prop].check(FunctionBackend(fn, dtypes=(problem.spec.dtype,)), problem)


# -------------------------------------------------------------------------------------------- verify


@dataclass
class Verification:
    """The outcome of `verify`: `status` is verified, failed, crashed, hung, unsupported (the
    function declined every example) or interrupted; `record` is the JSON record of the run."""

    target: str
    status: str
    exit_code: int
    record: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [{"property": r["property"], **f} for r in self.record["results"] for f in r["failures"]]

    def text(self) -> str:
        return format_verification(self)


def _check_options(dtype: str, dims: Sequence[int], timeout: float | None, max_examples: int | None) -> None:
    if dtype not in FLOAT_DTYPES:
        raise CrosscheckError(f"dtype {dtype!r}: expected one of {', '.join(FLOAT_DTYPES)}")
    if not dims or any(d not in (1, 2, 3) for d in dims):
        raise CrosscheckError(f"dims {list(dims)!r}: expected spatial dimensions among 1, 2, 3")
    if timeout is not None and not timeout > 0:
        raise CrosscheckError(f"timeout {timeout!r}: expected a positive number of seconds")
    if max_examples is not None and max_examples < 1:
        raise CrosscheckError(f"max_examples {max_examples!r}: expected a positive integer")


def _death_result(name: str, exc: WorkerDied) -> PropertyResult:
    from crosscheck.runner import PropertyResult

    reason = "crashed while loading" if exc.kind == "crash" else "hung while loading"
    failure: dict[str, Any] = {
        "message": str(exc),
        "problem": {},
        "reproducer": "",
        "native_snippet": None,
        "kind": exc.kind,
    }
    return PropertyResult(name, "load", "failed", reason, failures=[failure])


def outcome(record: dict[str, Any]) -> tuple[str, int]:
    """(status, exit code) of a verify record."""
    results = record["results"]
    bad = [r for r in results if r["status"] in ("failed", "error")]
    if bad:
        kinds = {f.get("kind") for r in bad for f in r["failures"]}
        status = "crashed" if "crash" in kinds else "hung" if "hang" in kinds else "failed"
        return status, 1
    if record["run"]["interrupted"]:
        return "interrupted", 130
    if not any(r["examples"] for r in results):
        return "unsupported", 1
    return "verified", 0


def verify(
    target: str | ConvFunction,
    *,
    dtype: str = DEFAULT_DTYPE,
    dims: Sequence[int] = DEFAULT_DIMS,
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    keep_going: bool = False,
    properties: Sequence[str] | None = None,
    profile: str | None = None,
    progress: Callable[[str, str, int, int], None] | None = None,
    command: Sequence[str] = (),
) -> Verification:
    """Check `target` ("module:function", "file.py:function", or a function) against the reference.

    With `isolate` (the default) the function runs in a worker process: a crash or a call longer
    than `timeout` seconds is reported, not suffered; a function object must then be importable by
    its module and name (module level). Raises CrosscheckError for bad usage (not importable, not
    callable, bad option); every other outcome, including crashes, is in the returned Verification.

    Every property of `crosscheck run` that applies to a plain function runs (or those named in
    `properties`); the first one that fails ends the check, unless `keep_going`.
    """
    from crosscheck.profiles import default_profile
    from crosscheck.session import RunOptions, closing, run_backends, select_properties

    dims = tuple(sorted(set(dims)))
    _check_options(dtype, dims, timeout, max_examples)
    props = select_properties(properties)
    factory: Callable[[], FunctionBackend]
    if isinstance(target, str):
        parse_target(target)  # malformed targets are refused before any process starts
        name = target
        importable: str | None = target
        factory = functools.partial(target_backend, target, (dtype,), dims)
    elif callable(target):
        name = _importable_name(target) or str(getattr(target, "__qualname__", repr(target)))
        importable = _importable_name(target)
        factory = functools.partial(callable_backend, target, name, (dtype,), dims)
    else:
        raise CrosscheckError(f"target: expected {TARGET_FORMS} or a function, got {type(target).__name__}")
    options = RunOptions(
        backends=[name],
        profile=profile or default_profile(),
        max_examples=max_examples or DEFAULT_MAX_EXAMPLES,
        seed=seed,
        pairwise=False,
        fail_fast=not keep_going,
        command=list(command),
        isolation=isolate,
        timeout=timeout if isolate else None,
        extra={"verify": {"target": name, "dtype": dtype, "dims": list(dims)}},
    )
    backends: list[Backend] = []
    missing: list[dict[str, Any]] = []
    known: list[PropertyResult] = []
    if isolate:
        reproducer = functools.partial(target_reproducer, importable)
        try:
            backends.append(
                IsolatedBackend(
                    factory, name, timeout=timeout, reproducer=reproducer, end_children=True, capture_output=True
                )
            )
        except WorkerDied as exc:
            known.append(_death_result(name, exc))
            missing.append({"name": name, "available": False, "reason": str(exc).splitlines()[0]})
    else:
        backends.append(factory())
    record = closing(backends, lambda: run_backends(backends, missing, props, options, progress, known))
    status, code = outcome(record)
    return Verification(name, status, code, record)


def assert_verified(target: str | ConvFunction, **options: Any) -> Verification:
    """`verify`, raising AssertionError with the minimal failing example unless the function is verified."""
    v = verify(target, **options)
    if not v.ok:
        raise AssertionError(v.text())
    return v


# ----------------------------------------------------------------------------------------- the text


_NOT_RUN = "not run: "


def _not_run(r: dict[str, Any]) -> bool:
    return bool(r["status"] == "skipped")


def _row(r: dict[str, Any], width: int) -> str:
    status = r["status"]
    if status == "passed":
        ratios = ", ".join(f"{d} {s['max_ratio']:.3g}" for d, s in r["by_dtype"].items() if s["examples"])
        text = f"passed on {r['examples']} examples (largest error/bound: {ratios or '-'})"
    elif status == "failed":
        at = r.get("caught_at")
        text = f"FAILED ({r['reason']})" if r.get("reason") else "FAILED"
        if at:
            text += f" on example {at}, after {r['examples']} passed"
    else:
        text = f"{status}" + (f" ({r['reason']})" if r.get("reason") else "")
    declined = r.get("unsupported_examples") or 0
    if declined and status != "unsupported":
        text += f"; {declined} declined (NotImplementedError)"
    return f"  {r['property']:<{width}} {text}"


def format_verification(v: Verification) -> str:
    rec = v.record
    run = rec["run"]
    ver = run.get("verify") or {}
    dims = ",".join(map(str, ver.get("dims", [])))
    seed = f", seed {run['seed']}" if run.get("seed") is not None else ""
    lines = [
        f"crosscheck verify {v.target}: {ver.get('dtype')}, {dims}-D, up to {run['max_examples']} examples "
        f"per property{seed}"
    ]
    ran = [r for r in rec["results"] if not _not_run(r)]
    width = max((len(r["property"]) for r in ran), default=0)
    lines += [_row(r, width) for r in ran]
    skipped = [r for r in rec["results"] if _not_run(r)]
    if skipped:
        lines.append(f"  ({len(skipped)} more not run: {skipped[0]['reason'][len(_NOT_RUN) :]})")
    for r in rec["results"]:
        for f in r["failures"]:
            lines += ["", f"--- {r['property']}: {_kind_title(f.get('kind'))} ---", f["message"]]
            if f.get("reproducer"):
                lines += ["", "Reproduce with:", f["reproducer"]]
    lines.append("")
    lines.append(_verdict(v))
    return "\n".join(lines)


def _kind_title(kind: str | None) -> str:
    return {
        "crash": "the function crashed (example that caused it)",
        "hang": "the function hung (example that caused it)",
        "exception": "the function raised (minimal example)",
        "flaky": "a different answer when rerun (each example kept)",
    }.get(kind or "", "minimal failing example")


def _verdict(v: Verification) -> str:
    results = v.record["results"]
    if v.status == "verified":
        n = sum(r["examples"] for r in results)
        return f"verified: {v.target} is within the error bound of the reference on all {n} examples"
    if v.status == "unsupported":
        return f"FAILED: {v.target} supported nothing at all (it raised NotImplementedError on every example)"
    if v.status == "interrupted":
        return "interrupted: the results above are what finished"
    what = {"crashed": "crashed", "hung": "hung", "failed": "does not match the reference"}[v.status]
    return f"FAILED: {v.target} {what}"
