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
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend
from crosscheck.backends.function_backend import ConvFunction, FunctionBackend
from crosscheck.backends.isolated import DEFAULT_TIMEOUT_S, IsolatedBackend, WorkerDied
from crosscheck.checks import accuracy as accuracy_models
from crosscheck.core.dtypes import INT_DTYPES
from crosscheck.core.errors import CrosscheckError
from crosscheck.core.problem import ConvProblem
from crosscheck.core.reproducer import problem_code, standalone_problem_code
from crosscheck.run.verify_dtypes import DEFAULT_DTYPES, VERIFY_DTYPES, Declined, DtypeView, parse_dtypes, probe

DEFAULT_DIMS = (1, 2, 3)
# Examples per property. The deliberately wrong convolutions of tests/support/verify_targets are caught within
# a median of at most a few examples at this size (see tests/support/verify_targets/measure.py), so 200
# examples leave a wide margin for rarer bugs at a few seconds per property for a NumPy function.
DEFAULT_MAX_EXAMPLES = 200
if TYPE_CHECKING:
    from crosscheck.run.runner import PropertyResult

FILE_MODULE_PREFIX = "crosscheck_target_"  # the module name of a target file outside any package
TARGET_FORMS = "'package.module:function' or 'path/to/file.py:function'"


# ------------------------------------------------------------------------------------------- targets


def _names_a_file(where: str) -> bool:
    """The part of a target before its colon is a file path (else a module name)."""
    return where.endswith(".py") or os.sep in where or "/" in where


def parse_target(target: str) -> tuple[str, str, bool]:
    """(module name or file path, attribute path, is a file path); CrosscheckError if malformed."""
    where, sep, attr = target.rpartition(":")  # rpartition: a Windows path has a colon of its own
    if not sep or not where or not attr:
        raise CrosscheckError(f"target {target!r}: expected {TARGET_FORMS}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise CrosscheckError(f"target {target!r}: {attr!r} is not a Python name")
    is_path = _names_a_file(where)
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
    name = f"{FILE_MODULE_PREFIX}{file.stem}"
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
    check_signature(fn, target)
    return fn


SIGNATURE = "function(x, w, *, stride, padding, dilation, groups)"
KEYWORDS = ("stride", "padding", "dilation", "groups")


def check_signature(fn: ConvFunction, name: str) -> None:
    """CrosscheckError (one line, bad usage) unless `fn` can be called as SIGNATURE; a signature Python cannot
    read (some builtins) is taken on trust."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, None, **dict.fromkeys(KEYWORDS))
    except TypeError as exc:
        raise CrosscheckError(
            f"target {name!r} has the signature {fn.__name__ if hasattr(fn, '__name__') else 'function'}{sig}, "
            f"which cannot be called as {SIGNATURE} ({exc})"
        ) from None


class TargetBackend(FunctionBackend):
    """A user's function as a backend, remembering how to name it in a reproducer."""

    def __init__(
        self, fn: ConvFunction, name: str, target: str | None, *, dtypes: Sequence[str], ranks: Sequence[int]
    ) -> None:
        super().__init__(fn, name, dtypes=dtypes, ranks=ranks)
        self.target = target
        self.framework = getattr(sys.modules.get(getattr(fn, "__module__", "") or ""), "__name__", "") or name
        self.description = "your function"

    @property
    def plan_name(self) -> str:
        # A file target's name holds the folder it was given from (or, resolved, the checkout's path): the plans
        # are seeded by the file's own name, so `verify --seed` draws the same problems in any checkout.
        where, sep, attr = self.name.rpartition(":")
        return f"{Path(where).name}:{attr}" if sep and _names_a_file(where) else self.name

    def version(self) -> str:
        module = sys.modules.get(getattr(self.fn, "__module__", "") or "")
        return str(getattr(module, "__version__", "-"))

    def reproducer(self, prop: str, problem: ConvProblem) -> str:
        return target_reproducer(self.target, prop, problem)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        return standalone_call(self.target, problem)


def target_backend(target: str, dtypes: Sequence[str], ranks: Sequence[int]) -> TargetBackend:
    """Import `target` and wrap it (module-level: a worker process is handed a partial of this)."""
    return TargetBackend(load_target(target), target, portable_target(target), dtypes=dtypes, ranks=ranks)


def callable_backend(fn: ConvFunction, name: str, dtypes: Sequence[str], ranks: Sequence[int]) -> TargetBackend:
    return TargetBackend(fn, name, _importable_name(fn), dtypes=dtypes, ranks=ranks)


def _importable_name(fn: ConvFunction) -> str | None:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    if module.startswith(FILE_MODULE_PREFIX):  # loaded from a file by `load_target`: named by that file
        file = getattr(sys.modules.get(module), "__file__", None)
        return f"{Path(file).resolve()}:{qualname}" if file else None
    return f"{module}:{qualname}"


def portable_target(target: str) -> str:
    """`target` as it loads from any directory: a file path made absolute (a module name stays as it is)."""
    where, attr, is_path = parse_target(target)
    return f"{Path(where).resolve()}:{attr}" if is_path else target


def _import_lines(target: str) -> list[str]:
    """Plain-Python lines that bind `conv` to `target`'s function, from any directory (as `load_target` finds it)."""
    where, attr, is_path = parse_target(target)
    if is_path:
        file = Path(where).resolve()
        parts, root = [file.stem], file.parent
        while (root / "__init__.py").is_file():
            parts.insert(0, root.name)
            root = root.parent
        module = ".".join(parts)
    else:
        module = where
        spec = importlib.util.find_spec(where.split(".")[0])
        origin = Path(spec.origin) if spec and spec.origin else None
        root = None
        if origin is not None:
            root = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    lines = ["import importlib", "import sys"]
    if root is not None:
        lines.append(f"sys.path.insert(0, {str(root)!r})  # where the function's module was found")
    lines.append(f"conv = importlib.import_module({module!r})")
    lines += [f"conv = getattr(conv, {part!r})" for part in attr.split(".")]
    return lines


def standalone_call(target: str | None, problem: ConvProblem) -> str | None:
    """The failing call without crosscheck: the arrays as literals (NumPy, and ml_dtypes for bfloat16), the
    function imported as Python would, called, and compared with crosscheck's reference written out too."""
    if not target:
        return None
    from crosscheck.reference import reference

    code = standalone_problem_code(problem)
    if "make_problem" in code:  # too large to write out: rebuilt by crosscheck instead
        return None
    s = problem.spec
    expected = np.asarray(reference(problem).approx, dtype=np.float64)
    lines = [
        code,
        *_import_lines(target),
        f"y = conv(x, w, stride={s.stride!r}, padding={tuple(s.pads)!r}, dilation={s.dilation!r}, groups={s.groups})",
        f"expected = np.array({expected.tolist()!r})  # the exact correlation (crosscheck's reference, float64)",
        "print('largest |y - expected|:', np.max(np.abs(np.asarray(y, dtype=np.float64) - expected)))",
    ]
    return "\n".join(lines)


def target_reproducer(target: str | None, prop: str, problem: ConvProblem, accuracy: str = "elementwise") -> str:
    """Code that rebuilds `problem`, calls the function on it, and reruns the failed check."""
    model = f", accuracy={accuracy!r}" if accuracy != "elementwise" else ""
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
            f"check(conv, problem, {prop!r}{model})  # raises PropertyFailure with the message above",
        ]
    )


def check(
    fn: ConvFunction, problem: ConvProblem, prop: str = "matches_reference", accuracy: str = "elementwise"
) -> None:
    """Run one property of `fn` on one problem, in this process; raises PropertyFailure if it fails."""
    from crosscheck.properties import PROPERTIES, PropertyFailure

    backend = DtypeView(FunctionBackend(fn, dtypes=(problem.spec.dtype,)), problem.spec.dtype, accuracy)
    try:
        PROPERTIES[prop].check(backend, problem)
    except PropertyFailure as exc:
        # Its own reproducer would ask get_backend() for a backend of the function's name: none exists.
        code = target_reproducer(_importable_name(fn), prop, exc.problem, accuracy)
        raise PropertyFailure(exc.detail, exc.backend, exc.prop, exc.problem, exc.kind, reproducer=code) from None


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
        return [
            {"property": r["property"], "dtype": _dtype_of(r), **f}
            for r in self.record["results"]
            for f in r["failures"]
        ]

    def text(self) -> str:
        return format_verification(self)


def _check_options(dims: Sequence[int], timeout: float | None, max_examples: int | None, accuracy: str) -> None:
    if not dims or any(d not in (1, 2, 3) for d in dims):
        raise CrosscheckError(f"dims {list(dims)!r}: expected spatial dimensions among 1, 2, 3")
    if timeout is not None and not timeout > 0:
        raise CrosscheckError(f"timeout {timeout!r}: expected a positive number of seconds")
    if max_examples is not None and max_examples < 1:
        raise CrosscheckError(f"max_examples {max_examples!r}: expected a positive integer")
    try:
        accuracy_models.parse(accuracy)
    except ValueError as exc:
        raise CrosscheckError(str(exc)) from None


def _dtype_of(result: dict[str, Any]) -> str | None:
    """The dtype of a verify result (its backend is `<target> [dtype]`), None for the load result."""
    name = str(result["backend"])
    return name[name.rindex("[") + 1 : -1] if name.endswith("]") and "[" in name else None


def _death_result(name: str, exc: WorkerDied) -> PropertyResult:
    from crosscheck.run.runner import PropertyResult

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


def forward_properties() -> list[str]:
    """The properties that apply to a plain forward function: every one that a function backend does not rule out,
    but precision_modes (with no reduced-precision modes of its own, a function's is matches_reference again)."""
    from crosscheck.properties import PROPERTIES

    probe = FunctionBackend(lambda x, w, **kw: x, dtypes=VERIFY_DTYPES)
    return [n for n, p in PROPERTIES.items() if p.applies(probe) is None and n != "precision_modes"]


# The properties that judge the values themselves, and so see what a dtype does wrong (its accumulator, rounding,
# overflow): every dtype runs them. The metamorphic ones check the geometry, the same in every dtype: by default they
# run in one dtype (PRIMARY_DTYPE, else the first the function takes), which keeps a default verify of six dtypes
# under a minute on two cores; --dtype (or `properties`) runs every property in each dtype named.
VALUE_PROPERTIES = ("matches_reference", "is_cross_correlation")
PRIMARY_DTYPE = "float32"


def _units(backends: Sequence[Backend], props: Sequence[str], *, everywhere: bool) -> set[tuple[str, str]]:
    views = [b for b in backends if isinstance(b, DtypeView)]
    primary = next((b for b in views if b.dtype == PRIMARY_DTYPE), views[0] if views else None)
    return {(b.name, p) for b in backends for p in props if everywhere or b is primary or p in VALUE_PROPERTIES}


def verify(
    target: str | ConvFunction,
    *,
    dtypes: str | Sequence[str] | None = None,
    dims: Sequence[int] = DEFAULT_DIMS,
    accuracy: str = "elementwise",
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

    Each dtype of `dtypes` (default: float64, float32, float16, bfloat16, and the integers the function takes)
    is checked with the full `max_examples` per property; a dtype the function declines (NotImplementedError)
    is listed as declined. `accuracy` is the model the results are judged by (crosscheck.checks.accuracy: elementwise,
    normwise for FFT-based functions, winograd). With `isolate` (the default) the function runs in a worker
    process: a crash or a call longer than `timeout` seconds is reported, not suffered; a function object must
    then be importable by its module and name (module level). Raises CrosscheckError for bad usage (not
    importable, not callable, a wrong signature, bad option); every other outcome, including crashes, is in the
    returned Verification.

    Every property that applies to a forward function runs (or those named in `properties`); per dtype, the
    first one that fails ends that dtype's check, unless `keep_going`.
    """
    from crosscheck.run.profiles import default_profile
    from crosscheck.run.session import RunOptions, closing, run_backends, select_properties

    dims = tuple(sorted(set(dims)))
    _check_options(dims, timeout, max_examples, accuracy)
    try:
        asked = parse_dtypes(dtypes)
    except ValueError as exc:
        raise CrosscheckError(str(exc)) from None
    wanted = asked or DEFAULT_DTYPES
    props = select_properties(properties) if properties else forward_properties()
    factory: Callable[[], FunctionBackend]
    if isinstance(target, str):
        parse_target(target)  # malformed targets are refused before any process starts
        name = target
        importable: str | None = portable_target(target)
        factory = functools.partial(target_backend, target, wanted, dims)
    elif callable(target):
        name = _importable_name(target) or str(getattr(target, "__qualname__", repr(target)))
        check_signature(target, name)
        if isolate and getattr(target, "__module__", None) == "__main__":
            raise CrosscheckError(
                f"verify({name}): a function defined in __main__ cannot be loaded by the worker process that "
                "isolates it; pass isolate=False to run it in this process, or move it into a module"
            )
        importable = _importable_name(target)
        factory = functools.partial(callable_backend, target, name, wanted, dims)
    else:
        raise CrosscheckError(f"target: expected {TARGET_FORMS} or a function, got {type(target).__name__}")
    reproduce = functools.partial(target_reproducer, importable)
    backends: list[Backend] = []
    missing: list[dict[str, Any]] = []
    known: list[PropertyResult] = []
    inner: Backend | None = None
    if isolate:
        try:
            # Its children are ended after each call and its output kept to a bounded tail
            # (crosscheck.backends.isolated).
            inner = IsolatedBackend(
                factory, name, timeout=timeout, reproducer=reproduce, end_children=True, capture_output=True
            )
        except WorkerDied as exc:
            known.append(_death_result(name, exc))
            missing.append({"name": name, "available": False, "reason": str(exc).splitlines()[0]})
    else:
        inner = factory()
    declined: list[Declined] = []

    def make_record() -> dict[str, Any]:
        stopped = False
        if inner is not None:
            try:
                for d in wanted:
                    # Integers by default only where the function takes them: many float kernels cannot. The ranks
                    # a function declines are left out up front: drawing and declining them would cost most of the
                    # time.
                    ranks, why = probe(inner, d, dims, any_error=asked is None and d in INT_DTYPES)
                    if why:
                        declined.append(Declined(d, why, tuple(r for r in dims if r not in ranks) if ranks else ()))
                    if ranks:
                        backends.append(DtypeView(inner, d, accuracy, reproduce, ranks))
            except KeyboardInterrupt:
                # Stopped while asking which dtypes the function takes (a hanging function hangs here first): no
                # check ran, and the record the user asked for says so rather than not being written.
                stopped = True
                backends.clear()
        options = RunOptions(
            backends=[b.name for b in backends],
            profile=profile or default_profile(),
            max_examples=max_examples or DEFAULT_MAX_EXAMPLES,
            seed=seed,
            pairwise=False,
            fail_fast=not keep_going,
            command=list(command),
            isolation=isolate,
            timeout=timeout if isolate else None,
            extra={
                "verify": {
                    "target": name,
                    "dtypes": [b.dtype for b in backends if isinstance(b, DtypeView)],
                    "declined": [d.to_dict() for d in declined],
                    "dims": list(dims),
                    "accuracy": accuracy,
                    "accuracy_description": accuracy_models.describe(accuracy),
                }
            },
        )
        units = _units(backends, props, everywhere=bool(asked or properties))
        record = run_backends(backends, missing, props, options, progress, known, units=units)
        record["run"]["interrupted"] = record["run"]["interrupted"] or stopped
        return record

    # A signal while the worker closes marks the record interrupted instead of losing it (crosscheck.run.session).
    record = closing([inner] if inner is not None else [], make_record)
    status, code = outcome(record)
    return Verification(name, status, code, record)


def assert_verified(target: str | ConvFunction, **options: Any) -> Verification:
    """`verify`, raising AssertionError with the minimal failing example unless the function is verified."""
    v = verify(target, **options)
    if not v.ok:
        raise AssertionError(v.text())
    return v


# ----------------------------------------------------------------------------------------- the text
# For the author of the function: the verdict first, then one line per dtype, then each failure.


def _by_dtype(rec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rec["results"]:
        d = _dtype_of(r)
        if d is not None:
            out.setdefault(d, []).append(r)
    return out


def _dtype_status(results: list[dict[str, Any]]) -> str:
    if any(r["status"] in ("failed", "error") for r in results):
        return "FAILED"
    if any(r["status"] == "interrupted" for r in results):
        return "interrupted"
    return "verified" if any(r["examples"] for r in results) else "nothing ran"


def _dtype_line(dtype: str, results: list[dict[str, Any]]) -> str:
    status = _dtype_status(results)
    if status == "FAILED":
        r = next(r for r in results if r["status"] in ("failed", "error"))
        text = f"in {r['property']}" + (f" ({r['reason']})" if r.get("reason") else "")
        if r.get("caught_at"):
            text += f" on example {r['caught_at']}, after {r['examples']} passed"
    else:
        ran = [r for r in results if r["examples"]]
        ratios = [s["max_ratio"] for r in ran for s in r["by_dtype"].values() if s["examples"]]
        text = f"{len(ran)} properties, {sum(r['examples'] for r in ran)} examples"
        if ratios:
            text += f", largest error/bound {max(ratios):.3g}"
        if status == "nothing ran":
            reasons = [r["reason"] for r in results if r.get("reason")]
            text = reasons[0] if reasons else "no example ran"
    declined = sum(r.get("unsupported_examples") or 0 for r in results)
    if declined and status != "nothing ran":
        reason = next(iter(next(r for r in results if r.get("unsupported_reasons"))["unsupported_reasons"]))
        text += f"; {declined} examples declined (NotImplementedError: {reason})"
    return f"  {dtype:<9} {status:<9} {text}"


def format_verification(v: Verification) -> str:
    rec = v.record
    run = rec["run"]
    ver = run.get("verify") or {}
    groups = _by_dtype(rec)
    lines = [_verdict(v, groups), ""]
    lines += [_dtype_line(d, rs) for d, rs in groups.items()]
    declined = ver.get("declined", [])
    lines += [f"  {d['dtype']:<9} {'declined':<9} {d['reason']}" for d in declined if not d.get("ranks")]
    partial: dict[tuple[tuple[int, ...], str], list[str]] = {}
    for d in declined:
        if d.get("ranks"):
            partial.setdefault((tuple(d["ranks"]), d["reason"]), []).append(d["dtype"])
    for (ranks, reason), names in partial.items():
        where = "every dtype" if len(names) == len(groups) else ", ".join(names)
        lines.append(f"  {', '.join(f'{r}-D' for r in ranks)} declined in {where}: {reason}")
    dims = ", ".join(f"{d}-D" for d in ver.get("dims", []))
    seed = f"; seed {run['seed']}" if run.get("seed") is not None else ""
    props = list(dict.fromkeys(r["property"] for rs in groups.values() for r in rs))
    lines += [
        "",
        f"  {dims}; up to {run['max_examples']} examples per property and dtype{seed}",
        f"  accuracy model: {ver.get('accuracy', 'elementwise')} ({ver.get('accuracy_description', '')})",
        f"  properties: {', '.join(props)}" if props else "",
    ]
    counts = {len(rs) for rs in groups.values()}
    if len(counts) > 1:
        lines.append(
            "  (the properties beyond matches_reference and is_cross_correlation check the geometry, the same in "
            "every dtype: they ran in one; --dtype runs all of them in each dtype named)"
        )
    for r in rec["results"]:
        for f in r["failures"]:
            where = f"{_dtype_of(r)} / {r['property']}" if _dtype_of(r) else r["property"]
            lines += ["", f"--- {where}: {_kind_title(f.get('kind'))} ---", f["message"]]
            if f.get("reproducer"):
                lines += ["", "Reproduce with:", f["reproducer"]]
            if f.get("native_snippet"):
                lines += ["", "The failing call without crosscheck:", f["native_snippet"]]
    return "\n".join(line for i, line in enumerate(lines) if line or i == 0 or lines[i - 1]).rstrip()


def _kind_title(kind: str | None) -> str:
    return {
        "crash": "your function crashed (example that caused it)",
        "hang": "your function hung (example that caused it)",
        "exception": "your function raised (minimal example)",
        "flaky": "a different answer when rerun (each example kept)",
    }.get(kind or "", "minimal failing example")


def _verdict(v: Verification, groups: dict[str, list[dict[str, Any]]]) -> str:
    ver = v.record["run"].get("verify") or {}
    model = ver.get("accuracy", "elementwise")
    ok = [d for d, rs in groups.items() if _dtype_status(rs) == "verified"]
    declined = [d["dtype"] for d in ver.get("declined", []) if not d.get("ranks")]
    also = f" ({', '.join(declined)} declined)" if declined else ""
    if v.status == "verified":
        return f"verified: {v.target} is within the {model} error bound of the reference in {', '.join(ok)}{also}"
    if v.status == "unsupported":
        return f"FAILED: {v.target} supported nothing at all (it declined every example with NotImplementedError)"
    if v.status == "interrupted":
        return "interrupted: the results below are what finished"
    bad = [d for d, rs in groups.items() if _dtype_status(rs) == "FAILED"]
    what = {"crashed": "crashed", "hung": "hung", "failed": "does not match the reference"}[v.status]
    where = f" in {', '.join(bad)}" if bad else ""
    return f"FAILED: {v.target} {what}{where}" + (f" (verified in {', '.join(ok)})" if ok else "")
