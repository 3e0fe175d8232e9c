"""A backend behind a worker process, so that a crash or a hang in it cannot take crosscheck down.

The worker is a fresh interpreter (never a fork: frameworks that started threads deadlock in a
forked child, and a fork would also inherit whatever state a crash left behind). It builds the
backend from a picklable factory, reports what the backend is and can do, then serves one call at
a time over a pipe. The parent waits for each answer at most `timeout` seconds:

- the pipe closes without an answer: the worker crashed (a segfault, an abort, `os._exit`); the
  exit signal and the innermost Python frames, written by `faulthandler` to a log file, go into a
  `WorkerDied("crash", ...)`;
- no answer in time: the worker hung; its stack is dumped (SIGUSR1 to `faulthandler`), it is
  killed, and `WorkerDied("hang", ...)` says where it was.

The next call starts a new worker (unless `allow_restart` is off), so one bad example does not end
the run. The worker is started with `subprocess` rather than `multiprocessing`'s spawn so that the
parent's `__main__` is never re-imported in it (a user script calling the Python API without an
`if __name__ == "__main__"` guard would otherwise run twice); the parent's `sys.path` is sent over.
"""

from __future__ import annotations

import builtins
import contextlib
import faulthandler
import functools
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection, Pipe
from typing import Any

import numpy as np

from crosscheck.backends import processes
from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities, PrecisionMode
from crosscheck.core.errors import CrosscheckError
from crosscheck.core.hardware import caps_in_effect, libc
from crosscheck.core.problem import ConvProblem, ConvSpec

BackendFactory = Callable[[], Backend]

DEFAULT_TIMEOUT_S = 60.0
MIN_LOAD_TIMEOUT_S = 120.0  # for frameworks: importing and probing TensorFlow takes many seconds on a busy machine
_CLOSE_GRACE_S = 2.0
_DUMP_WAIT_S = 0.3  # time for faulthandler to write a hung worker's stack before it is killed
_FRAMES = 3  # innermost frames quoted in a crash or hang message
_PARENT_POLL_S = 0.5  # how often a worker checks that its parent is still there
OUTPUT_TAIL = 4096  # bytes of a user function's output kept per call (the last ones: an error comes last)

# The worker's command line is parsed where every command line is (crosscheck.cli.worker).
_BOOT = "import sys; from crosscheck.cli.worker import main; main(sys.argv[1:])"
_SPACES = ("gradients", "transposed", "fused")  # Capabilities fields that are Capabilities of their own


class WorkerDied(Exception):
    """The worker crashed (`kind` "crash") or hung (`kind` "hang") on the call it was making."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class RemoteError(Exception):
    """An exception the backend raised in the worker; subclasses carry the original type's name."""

    remote_type = "Exception"


_REMOTE_TYPES: dict[str, type[RemoteError]] = {}


def _remote_exception(type_name: str, message: str, where: str) -> Exception:
    # NotImplementedError is rebuilt as itself: it means "unsupported" to properties.run_backend.
    if type_name == "NotImplementedError":
        return NotImplementedError(message)
    cls = _REMOTE_TYPES.get(type_name)
    if cls is None:
        # Named after the original so that messages read "backend raised ValueError: ...", and a
        # subclass of it when it is a built-in exception, so `except ValueError` still catches it.
        builtin = getattr(builtins, type_name, None)
        bases: tuple[type, ...] = (RemoteError,)
        if isinstance(builtin, type) and issubclass(builtin, Exception):
            bases = (RemoteError, builtin)
        try:
            cls = type(type_name, bases, {"remote_type": type_name})
            cls("probe")
        except TypeError:  # a built-in with its own constructor (UnicodeDecodeError, ...): the name must do
            cls = type(type_name, (RemoteError,), {"remote_type": type_name})
        _REMOTE_TYPES[type_name] = cls
    first = message.splitlines()[0] if message else ""
    return cls(f"{first} ({where})" if where else first)


# --------------------------------------------------------------------------------------------- worker


def _innermost(tb: Any) -> str:
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    f = frames[-1]
    return f"at {os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def _exception_reply(exc: BaseException) -> tuple[str, str, str, str]:
    if isinstance(exc, BackendUnavailable):
        kind = "unavailable"
    elif isinstance(exc, CrosscheckError):
        kind = "usage"
    else:
        kind = "error"
    return (kind, type(exc).__name__, str(exc), _innermost(exc.__traceback__))


def _describe(backend: Backend) -> dict[str, Any]:
    caps = backend.capabilities()
    return {
        "name": backend.name,
        "framework": backend.framework,
        "module": backend.module,
        "description": backend.description,
        "devices": tuple(backend.devices),
        "device": backend.device,
        "version": backend.version(),
        "precision_flags": backend.precision_flags(),
        "dispatch": {**backend.dispatch(), "caps": caps_in_effect()},
        # Constraints are often closures over the framework; the parent asks the worker instead.
        "capabilities": replace(
            caps,
            constraints=(),
            **{f: replace(sub, constraints=()) for f in _SPACES if (sub := getattr(caps, f)) is not None},
        ),
        "has_constraints": bool(caps.constraints),
        # The backward passes' own spaces (Capabilities.gradients / .transposed) and their constraints.
        "constrained_spaces": [f for f in _SPACES if (sub := getattr(caps, f)) is not None and sub.constraints],
        "may_decline": backend.may_decline,
        "implementation_source": backend.implementation_source,
        "converted_from": backend.converted_from,
        "plan_name": backend.plan_name,
        "isa_switches": tuple(backend.isa_switches),
        "precision_modes": tuple(backend.precision_modes()),
    }


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):  # C code's stdio buffers too (printf)
        libc().fflush(None)


def _end_and_exit(code: int) -> None:
    """End everything this worker started, then the worker itself, without a traceback."""
    processes.end_descendants()
    _flush()
    os._exit(code)


def _on_term(signum: int, frame: Any) -> None:
    _end_and_exit(128 + signum)


def _watch_parent(parent: int) -> None:
    # PR_SET_PDEATHSIG's fallback (another OS, or a parent thread that ended but not the parent): while the
    # main thread is busy in a call, a parent that went away is seen here.
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    _end_and_exit(128 + signal.SIGTERM)


def worker_main(pipe_fd: int, parent: int, main_thread: bool) -> None:
    """The worker process: `pipe_fd` is its end of the pipe, `parent` its parent's pid, `main_thread` whether the
    parent's main thread started it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # SIGTERM (from the parent, or from the kernel when the parent dies) ends what the worker started too.
    signal.signal(signal.SIGTERM, _on_term)
    if main_thread:
        processes.signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request above: no signal will come
        _end_and_exit(128 + signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="crosscheck-parent-watch").start()
    processes.become_subreaper()  # orphans below the worker become its children: found and ended
    conn = Connection(pipe_fd)
    try:
        sys_path, factory_bytes, log_path, options = conn.recv()
    except (EOFError, OSError):
        return
    try:
        _serve(conn, sys_path, factory_bytes, log_path, bool(options.get("end_children")))
    except (EOFError, OSError):  # the parent went away (its end of the pipe closed) while we answered
        pass
    _end_and_exit(0)


def _serve(conn: Connection, sys_path: list[str], factory_bytes: bytes, log_path: str, end_children: bool) -> None:
    sys.path[:] = sys_path
    log = open(log_path, "w", encoding="utf-8")
    faulthandler.enable(file=log, all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=log, all_threads=True)
    try:
        backend: Backend = pickle.loads(factory_bytes)()
        info = _describe(backend)
        conn.send(("ready", info))
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import too: reported, not fatal
        conn.send(("failed", *_exception_reply(exc)))
        return
    caps = backend.capabilities()
    while True:
        op, arg = conn.recv()
        if op == "close":
            return
        reply: tuple[Any, ...]
        try:
            if op == "run":
                value: Any = np.asarray(backend.run(arg))
                if value.dtype == object:
                    raise TypeError(f"returned {type(value.flat[0]).__name__ if value.size else 'an empty'} objects")
            elif op == "refuses":
                value = caps.refuses(arg)
            elif op == "refuses_in":
                space, spec = arg
                value = getattr(caps, space).refuses(spec)
            elif op == "vjp":
                value = tuple(np.asarray(a) for a in backend.vjp(*arg))
            elif op == "conv_transpose":
                value = np.asarray(backend.conv_transpose(*arg))
            elif op == "fused":
                value = np.asarray(backend.fused(*arg))
            elif op == "run_mode":
                value = np.asarray(backend.run_mode(*arg))
            elif op == "run_source":
                value = np.asarray(backend.run_source(arg))
            elif op == "native_snippet":
                value = backend.native_snippet(arg)
            elif op == "reproducer":
                value = backend.reproducer(*arg)
            elif op == "implementations":
                value = backend.implementations()
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = ("ok", value)
        except BaseException as exc:  # noqa: BLE001 - any exception of the backend is the parent's to judge
            reply = ("raised", *_exception_reply(exc))
        # A user's function may start processes and forget them (also in a session of their own): ended after
        # each call, and counted, so that a run of thousands of calls does not leave thousands behind.
        left = processes.end_descendants() if end_children else 0
        _flush()  # what the call printed is in the pipe before its answer: the parent reads both in order
        conn.send((reply, left))


# --------------------------------------------------------------------------------------------- parent


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _frames(log_path: str) -> tuple[str, list[str]]:
    """The fatal error line and the innermost frames of the current thread from faulthandler's log."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "", []
    fatal = next((ln for ln in lines if ln.startswith("Fatal Python error")), "")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Current thread")), None)
    if start is None:  # no current-thread block: take the first thread dumped
        start = next((i for i, ln in enumerate(lines) if ln.startswith("Thread ")), None)
    frames: list[str] = []
    if start is not None:
        for ln in lines[start + 1 :]:
            if not ln.startswith("  File "):
                break
            frames.append(ln.strip())
    return fatal, frames[:_FRAMES]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the worker with its process group and every process below it (crosscheck.backends.processes.kill_tree)."""
    if proc.poll() is None:
        processes.kill_tree(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_CLOSE_GRACE_S)


def output_note(size: int, tail: str) -> str:
    """`tail`, the end of `size` bytes a call printed, as lines to append to a message ("" if none)."""
    if not size:
        return ""
    shown = f"the last {len(tail.encode())} of {size} bytes" if size > len(tail.encode()) else f"{size} bytes"
    return f"\n  its output ({shown}):\n" + "\n".join(f"    | {line}" for line in tail.splitlines())


class _Output:
    """A worker's stdout and stderr, read as they come (the worker never blocks on a full pipe, and a flood of
    output never reaches the terminal), keeping only the last OUTPUT_TAIL bytes of each call's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._fd = stream.fileno()
        self._lock = threading.Lock()
        self._tail = bytearray()
        self._size = 0
        self._closed = False
        self._stopping = False
        threading.Thread(target=self._read, daemon=True, name="crosscheck-worker-output").start()

    def _read(self) -> None:
        try:
            while not self._stopping:
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if not ready:
                    continue
                with self._lock:
                    data = os.read(self._fd, 1 << 16)
                    if not data:
                        return
                    self._size += len(data)
                    self._tail += data
                    del self._tail[:-OUTPUT_TAIL]
        except (OSError, ValueError):
            return
        finally:
            self._closed = True
            # Closed by this thread only, once it is done with it: never under a select of its own.
            with contextlib.suppress(OSError):
                self._stream.close()

    def take(self) -> tuple[int, str]:
        """(bytes, their last OUTPUT_TAIL as text) written since the last take. The worker writes its output
        before its answer: once the pipe is empty, everything the call printed has been counted."""
        deadline = time.monotonic() + _CLOSE_GRACE_S
        while True:
            with self._lock:
                drained = self._closed or not select.select([self._fd], [], [], 0)[0]
                if drained or time.monotonic() > deadline:
                    taken = (self._size, self._tail.decode("utf-8", errors="replace"))
                    self._size, self._tail = 0, bytearray()
                    return taken
            time.sleep(0.002)

    def stop(self) -> None:
        self._stopping = True


class _Worker:
    """One worker process and its pipe."""

    def __init__(
        self,
        factory_bytes: bytes,
        label: str,
        env: dict[str, str] | None = None,
        end_children: bool = False,
        capture_output: bool = False,
    ) -> None:
        fd, self.log_path = tempfile.mkstemp(prefix="crosscheck-worker-", suffix=".log")
        os.close(fd)
        parent, child = Pipe(duplex=True)
        self.conn = parent
        # The kernel's parent-death signal fires when the *thread* that started the worker ends: only a worker
        # started by the main thread may ask for it (those of select_backends' loading threads rely on the
        # worker's watch of its parent instead).
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(child.fileno()), str(os.getpid()), str(int(main_thread))],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                # A process group of its own: ended as one, and out of reach of the terminal's Ctrl-C, which
                # is the parent's to handle.
                start_new_session=True,
                stdout=subprocess.PIPE if capture_output else None,
                stderr=subprocess.STDOUT if capture_output else None,
                # ISA caps must be in the environment before the framework loads: only a fresh process has that.
                env={**os.environ, **env} if env else None,
            )
        finally:
            child.close()  # only the worker holds the other end now: its death closes the pipe
        self.label = label
        self._close_requested = False
        self.output = _Output(self.proc.stdout) if self.proc.stdout is not None else None
        self.last_output = (0, "")  # (bytes, their tail) the latest call printed
        # A worker that died at once (a broken interpreter) is reported by the first call as a crash.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.conn.send((list(sys.path), factory_bytes, self.log_path, {"end_children": end_children}))
        # A worker left running by a parent that dies or forgets to close it is killed at exit.
        self._finalizer = weakref.finalize(self, _cleanup, self.proc, self.conn, self.log_path, self.output)

    def call(self, request: tuple[str, Any] | None, timeout: float | None, doing: str) -> Any:
        """Send `request` (None: only wait, for the worker's first message) and return the answer."""
        self.last_output = (0, "")
        if self.output is not None:
            self.output.take()  # what came before this call (between calls) is not this call's
        try:
            try:
                if request is not None:
                    self.conn.send(request)
                ready = self.conn.poll(timeout)
            except (BrokenPipeError, ConnectionResetError, EOFError):
                raise self._crashed(doing) from None
            if not ready:
                raise self._hung(timeout, doing)
            try:
                answer = self.conn.recv()
            except (EOFError, ConnectionResetError, OSError):
                raise self._crashed(doing) from None
            if self.output is not None:
                self.last_output = self.output.take()
            return answer
        except KeyboardInterrupt:
            # Its answer would arrive as the answer to the next request: a worker interrupted mid-call is ended.
            self.close(graceful=False)
            raise

    def _crashed(self, doing: str) -> WorkerDied:
        try:
            code = self.proc.wait(_CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:  # closed its pipe but still running: finish it
            _kill(self.proc)
            code = self.proc.returncode
        how = f"was killed by {_signal_name(code)}" if code < 0 else f"exited with code {code}"
        fatal, frames = _frames(self.log_path)
        text = f"{self.label} crashed: its worker process {how} while {doing}"
        if fatal:
            text += f" ({fatal})"
        if frames:
            text += "\n  innermost frames: " + " <- ".join(frames)
        self.close(graceful=False)
        return WorkerDied("crash", text + self._output_note())

    def _hung(self, timeout: float | None, doing: str) -> WorkerDied:
        if hasattr(signal, "SIGUSR1"):
            with contextlib.suppress(OSError):
                os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(_DUMP_WAIT_S)
        _kill(self.proc)
        _, frames = _frames(self.log_path)
        text = f"{self.label} hung: no answer within the {timeout:g} s timeout while {doing}; the worker was killed"
        if frames:
            text += "\n  it was at: " + " <- ".join(frames)
        self.close(graceful=False)
        return WorkerDied("hang", text + self._output_note())

    def _output_note(self) -> str:
        if self.output is None:
            return ""
        self.last_output = self.output.take()
        return output_note(*self.last_output)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.conn.closed

    def request_close(self) -> None:
        """Ask the worker to exit, without waiting (close() then waits for it)."""
        if self.alive and not self._close_requested:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(("close", None))
            self._close_requested = True

    def close(self, graceful: bool = True) -> None:
        if graceful and self.alive:
            self.request_close()
            try:
                self.proc.wait(_CLOSE_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self._finalizer()


def _cleanup(proc: subprocess.Popen[bytes], conn: Connection, log_path: str, output: _Output | None) -> None:
    if proc.poll() is None:
        _kill(proc)
    if output is not None:
        output.stop()
    with contextlib.suppress(OSError):
        conn.close()
    with contextlib.suppress(OSError):
        os.unlink(log_path)


class IsolatedBackend(Backend):
    """`factory()`'s backend, run in a worker process with a per-call `timeout` (None: no limit).

    Starting raises what building the backend raised in the worker: BackendUnavailable,
    CrosscheckError (bad usage, e.g. a target that does not import), or WorkerDied if the worker
    crashed or hung while loading (`load_timeout`, by default `timeout`). Each call (run, vjp, ...)
    raises WorkerDied for a crash or hang, NotImplementedError if the backend declined the problem,
    and a RemoteError subclass named after any other exception.
    """

    def __init__(
        self,
        factory: BackendFactory,
        name: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        load_timeout: float | None = None,
        reproducer: Callable[[str, ConvProblem], str] | None = None,
        env: dict[str, str] | None = None,
        end_children: bool = False,
        capture_output: bool = False,
    ) -> None:
        # Backend.__init__ is not called: the worker's own backend checked its device.
        self.name = name
        self._reproducer = reproducer
        self.timeout = timeout
        self.env = dict(env or {})  # set in the worker's environment (and in every restarted worker's)
        # Loading may take longer than a call (TensorFlow imports and probes itself for seconds).
        self.load_timeout = timeout if load_timeout is None else load_timeout
        self.allow_restart = True
        # A user's function: whatever processes it starts are ended after each call, and counted here.
        self.end_children = end_children
        self.children_left = 0
        # A user's function: what it prints is kept (the end of each call's), not shown on the terminal.
        self.capture_output = capture_output
        self.output_bytes = 0
        self.last_output = (0, "")  # (bytes, their tail) of the latest call that printed
        self.starts = 0
        self.deaths: list[dict[str, str]] = []  # {"kind", "message"} of each crash or hang
        try:
            self._factory_bytes = pickle.dumps(factory)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CrosscheckError(
                f"{name}: cannot run it in a worker process, it does not pickle ({exc}); "
                "define it at module level, or turn isolation off"
            ) from None
        self._worker: _Worker | None = None
        self._refusals: dict[ConvSpec, str | None] = {}
        self._space_refusals: dict[tuple[str, ConvSpec], str | None] = {}
        self._info = self._start()
        self.framework = str(self._info["framework"])
        self.module = str(self._info["module"])
        self.description = str(self._info["description"])
        self.devices = tuple(self._info["devices"])
        self.device = str(self._info["device"])
        self.may_decline = bool(self._info["may_decline"])
        self.isa_switches = tuple(self._info.get("isa_switches", ()))
        self.implementation_source = str(self._info.get("implementation_source", self.implementation_source))
        self.converted_from = str(self._info.get("converted_from", ""))
        self._plan_name = str(self._info.get("plan_name", name))
        caps: Capabilities = self._info["capabilities"]
        self._caps = replace(caps, constraints=(self._refuses,)) if self._info["has_constraints"] else caps
        for space in self._info.get("constrained_spaces", ()):
            sub = replace(getattr(caps, space), constraints=(functools.partial(self._refuses_in, space),))
            self._caps = replace(self._caps, **{space: sub})

    def _start(self) -> dict[str, Any]:
        self.starts += 1
        worker = _Worker(self._factory_bytes, self.name, self.env, self.end_children, self.capture_output)
        try:
            reply = worker.call(None, self.load_timeout, "loading the backend")
        except WorkerDied as exc:
            self.deaths.append({"kind": exc.kind, "message": str(exc)})
            raise
        if reply[0] == "failed":
            worker.close(graceful=False)
            kind, type_name, message, where = reply[1:]
            if kind == "unavailable":
                raise BackendUnavailable(message)
            if kind == "usage":
                raise CrosscheckError(message)
            raise _remote_exception(type_name, message, where)
        self._worker = worker
        info: dict[str, Any] = reply[1]
        return info

    def _call(self, op: str, arg: Any, doing: str) -> Any:
        worker = self._worker
        if worker is None or not worker.alive:
            if not self.allow_restart:
                raise WorkerDied("crash", f"{self.name}: its worker died earlier and is not restarted")
            self._start()
            worker = self._worker
            assert worker is not None
        try:
            reply, left = worker.call((op, arg), self.timeout, doing)
        except WorkerDied as exc:
            self._worker = None
            self.deaths.append({"kind": exc.kind, "message": str(exc)})
            raise
        finally:
            if worker.last_output[0]:  # kept until a later call prints: a snippet's call prints nothing
                self.last_output = worker.last_output
                self.output_bytes += worker.last_output[0]
        self.children_left += left
        if reply[0] == "raised":
            raise _remote_exception(*reply[2:])
        return reply[1]

    def capabilities(self) -> Capabilities:
        return self._caps

    def _refuses(self, spec: ConvSpec) -> str | None:
        if spec not in self._refusals:
            reason: str | None = self._call("refuses", spec, "checking its capabilities")
            self._refusals[spec] = reason
        return self._refusals[spec]

    def _refuses_in(self, space: str, spec: ConvSpec) -> str | None:
        key = (space, spec)
        if key not in self._space_refusals:
            self._space_refusals[key] = self._call("refuses_in", key, "checking its capabilities")
        return self._space_refusals[key]

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gw = self._call("vjp", (problem, cotangent), "computing the gradients")
        return gx, gw

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        y: np.ndarray = self._call("conv_transpose", (problem, g), "running the transposed convolution")
        return y

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        y: np.ndarray = self._call("fused", (problem, bias, activation), "running the fused call")
        return y

    def run(self, problem: ConvProblem) -> np.ndarray:
        y: np.ndarray = self._call("run", problem, "running the problem")
        return y

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        y: np.ndarray = self._call("run_source", problem, "running the layer before conversion")
        return y

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        modes: tuple[PrecisionMode, ...] = self._info.get("precision_modes", ())
        return modes

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        y: np.ndarray = self._call("run_mode", (problem, mode), f"running precision mode {mode}")
        return y

    def _courtesy(self, op: str, arg: Any, doing: str) -> Any:
        # Snippets and coverage records are a courtesy: never restart a dead worker (or fail a run) for one.
        if self._worker is None or not self._worker.alive:
            return None
        try:
            return self._call(op, arg, doing)
        except Exception:  # noqa: BLE001
            return None

    def implementations(self) -> list[str]:
        names: list[str] = self._courtesy("implementations", None, "asking which implementations ran") or []
        return names

    def native_snippet(self, problem: ConvProblem) -> str | None:
        text: str | None = self._courtesy("native_snippet", problem, "writing a snippet")
        return text

    def reproducer(self, prop: str, problem: ConvProblem) -> str | None:
        if self._reproducer is not None:
            return self._reproducer(prop, problem)
        text: str | None = self._courtesy("reproducer", (prop, problem), "writing a snippet")
        return text

    def version(self) -> str:
        return str(self._info["version"])

    def precision_flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = self._info["precision_flags"]
        return flags

    def dispatch(self) -> dict[str, Any]:
        """Measured in the worker, where the framework runs (and where its ISA caps apply)."""
        info: dict[str, Any] = self._info["dispatch"]
        return info

    @property
    def plan_name(self) -> str:
        return self._plan_name

    def check_available(self) -> None:
        """Checked in the worker when it built the backend."""

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["name"] = self.name
        last = self.last_output
        out["isolation"] = {
            "worker": "subprocess",
            "timeout_s": self.timeout,
            "starts": self.starts,
            "crashes": sum(d["kind"] == "crash" for d in self.deaths),
            "hangs": sum(d["kind"] == "hang" for d in self.deaths),
            # Processes the backend started and left running after a call, which crosscheck ended.
            "children_left": self.children_left,
            # Bytes its calls printed (captured: not shown on the terminal), and the end of the latest call's.
            **(
                {"output_bytes": self.output_bytes, "last_output": {"bytes": last[0], "tail": last[1]}}
                if self.capture_output
                else {}
            ),
        }
        return out

    @property
    def died(self) -> bool:
        return bool(self.deaths)

    def request_close(self) -> None:
        """Ask the worker to exit without waiting: closing many backends then takes the slowest exit, not the sum."""
        if self._worker is not None:
            self._worker.request_close()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> IsolatedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
