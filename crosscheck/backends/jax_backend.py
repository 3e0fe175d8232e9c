"""JAX: `jax.lax.conv_general_dilated`, compiled once per static configuration.

Named padding modes go to JAX as its own strings (VALID, SAME, SAME_LOWER), explicit pads as its
native (lo, hi) pairs. channels_last hands JAX really transposed arrays (NHWC input, HWIO filter)
with the matching dimension numbers, so XLA sees a different layout rather than a relabelled one.

JAX compiles per shape: each (shapes, dtype, geometry, device) is lowered and compiled ahead of
time once and kept, so a repeated shape (the flipped-kernel run, Hypothesis' shrinking and replays)
costs one dispatch instead of a trace and an XLA compile; keys that lower to the same StableHLO
(a named padding mode and its resolved pads) share one executable. Compilation still dominates the
time of a fresh shape, so executables also persist on disk between runs (`compilation_cache_dir`;
CROSSCHECK_JAX_CACHE=off disables it) and CI keeps that folder between its runs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities, PrecisionMode
from crosscheck.core.dtypes import (
    BF16_UNIT_ROUNDOFF,
    COMPLEX_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    TF32_UNIT_ROUNDOFF,
    dtype_info,
)
from crosscheck.core.layouts import channels_last, from_channels_last
from crosscheck.core.padding import Pads
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import standalone_problem_code

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}

BACKWARD_COMPLEX_REASON = "crosscheck's gradient and transposed-convolution references are real-valued"
# Measured with jax 0.10.2: integers are not differentiable.
NO_INT_GRADIENTS = (
    "jax.vjp of an integer convolution returns float0 cotangents (dtype [('float0', 'V')]): "
    "integer inputs have no gradient"
)

# Measured with jaxlib 0.10.2 on 400 random problems (every dtype, both layouts): the legacy
# elemental emitter gives results bit-identical to XLA CPU's default fusion emitters and compiles the
# conversions and transposes around the convolution faster, which about doubles examples per second
# (a test keeps comparing the two pipelines bit for bit).
# LLVM's optimisation level stays at its default: lowering it compiles faster but changes float64 results.
CPU_COMPILE_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}

# Reduced-precision modes (property `precision_modes`): lax.Precision per the JAX documentation,
# DEFAULT "bfloat16 passes" (TPU) or TF32 (GPU), HIGH "3 bfloat16 passes or TF32"; the bound takes the
# coarser rounding of each. Measured with jaxlib 0.10.2: on the CPU all three give identical float32 results.
PRECISION_MODES = {"precision-DEFAULT": ("DEFAULT", BF16_UNIT_ROUNDOFF), "precision-HIGH": ("HIGH", TF32_UNIT_ROUNDOFF)}
PREFERRED_F32_MODE = "preferred_element_type-float32"

# Measured with jax 0.10.2: device_put copies a strided NumPy view into a dense buffer and the
# resulting jax.Array has no strides at all, so there is no strided input to hand over.
STRIDED_REASON = (
    "JAX arrays have no strides: jax.device_put copies a strided view into a dense buffer, and "
    "reading them raises AttributeError: 'jaxlib._jax.ArrayImpl' object has no attribute 'strides'"
)


def dimension_numbers(rank: int, layout: str) -> tuple[str, str, str]:
    """(lhs, rhs, out) specs: ('NCHW', 'OIHW', 'NCHW') or, for channels_last, ('NHWC', 'HWIO', 'NHWC')."""
    s = _SPATIAL[rank]
    if layout == "channels_last":
        return f"N{s}C", f"{s}IO", f"N{s}C"
    return f"NC{s}", f"OI{s}", f"NC{s}"


def to_jax_layout(problem: ConvProblem) -> tuple[np.ndarray, np.ndarray]:
    """x and w arranged as `dimension_numbers` says: (N, *sp, C) and (*k, I, O) for channels_last."""
    if problem.spec.layout == "channels_last":
        return channels_last(problem.x), np.ascontiguousarray(np.moveaxis(problem.w, (0, 1), (-1, -2)))
    return problem.x, problem.w


@dataclass(frozen=True)
class Static:
    """Everything XLA specialises a compiled convolution on: the compile cache's key."""

    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    dtype: str
    strides: tuple[int, ...]
    padding: Pads | str
    dilation: tuple[int, ...]
    groups: int
    dims: tuple[str, str, str]
    device: str
    precision: str = "HIGHEST"  # a lax.Precision name (precision modes change it)
    preferred: str | None = None  # preferred_element_type, a crosscheck dtype name

    @classmethod
    def of(cls, spec: ConvSpec, x: np.ndarray, w: np.ndarray, device: str) -> Static:
        return cls(
            x.shape,
            w.shape,
            spec.dtype,
            spec.stride,
            spec.padding,
            spec.dilation,
            spec.groups,
            dimension_numbers(spec.rank, spec.layout),
            device,
        )


def compilation_cache_dir() -> str | None:
    """Where compiled executables persist between runs: CROSSCHECK_JAX_CACHE ("off" disables it), else
    JAX's own JAX_COMPILATION_CACHE_DIR, else ~/.cache/crosscheck/jax (XDG_CACHE_HOME respected).

    Compilation is most of a fresh shape's time (~30 ms against ~1 ms to run it), and the ci profile
    draws the same shapes every run: stored executables turn a rerun's compiles into file reads.
    crosscheck keeps its own store (`_stored_or_compiled`) rather than switching on JAX's global
    persistent cache, which would change the configuration of a user's own JAX code under verify.
    """
    chosen = os.environ.get("CROSSCHECK_JAX_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off", "none", "false") else chosen
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "crosscheck", "jax")


def _jax() -> Any:
    import jax

    config: Any = jax.config
    # Without x64 JAX silently computes float64 (and int64) inputs in 32 bits; it must be on
    # before the first array is created, and setting it again is harmless.
    if not config.jax_enable_x64:
        config.update("jax_enable_x64", True)
    return jax


def _device(name: str) -> Any:
    return _jax().devices(_PLATFORMS[name])[0]


@cache
def compile_options(device: str) -> dict[str, Any]:
    """The XLA options the adapter compiles with on `device` (empty: JAX's defaults)."""
    if device != "cpu":
        return {}
    jax = _jax()
    try:
        jax.jit(lambda a: a + 1).lower(np.zeros(1, np.float32)).compile(CPU_COMPILE_OPTIONS)
    except jax.errors.JaxRuntimeError as exc:
        # A jaxlib without the option: its default pipeline is what users run anyway.
        if "No such compile option" not in str(exc):
            raise
        return {}
    return CPU_COMPILE_OPTIONS


_MAX_EXECUTABLES = 1024
_EXECUTABLES: dict[tuple[str, str], Callable[[Any, Any], Any]] = {}  # by (StableHLO text, device)


def lax_conv(key: Static) -> Callable[[Any, Any], Any]:
    """(x, w) -> lax.conv_general_dilated as `key` describes it (the forward convolution)."""
    from jax import lax

    def conv(x: Any, w: Any) -> Any:
        return lax.conv_general_dilated(
            x,
            w,
            window_strides=key.strides,
            padding=key.padding,
            rhs_dilation=key.dilation,
            feature_group_count=key.groups,
            dimension_numbers=key.dims,
            # HIGHEST unless a precision mode asks otherwise: GPUs default to TF32-like reduced precision.
            precision=getattr(lax.Precision, key.precision),
            preferred_element_type=dtype_info(key.preferred).numpy if key.preferred else None,
        )

    return conv


def _compile(what: tuple[Any, ...], key: Static, fn: Callable[..., Any], shapes: tuple[tuple[int, ...], ...]) -> Any:
    """`fn` for arguments of `shapes` in `key`'s dtype on its device: stored, or lowered and compiled."""
    jax = _jax()
    sharding = jax.sharding.SingleDeviceSharding(_device(key.device))
    dt = dtype_info(key.dtype).numpy
    args = (jax.ShapeDtypeStruct(s, dt, sharding=sharding) for s in shapes)
    return _stored_or_compiled(what, key.device, lambda: jax.jit(fn).lower(*args))


@lru_cache(maxsize=_MAX_EXECUTABLES)
def compiled(key: Static) -> Callable[[Any, Any], Any]:
    """The convolution for `key`, lowered and compiled for its device once."""
    return cast(Callable[[Any, Any], Any], _compile(("forward", key), key, lax_conv(key), (key.x_shape, key.w_shape)))


def _store_path(what: tuple[Any, ...], device: str) -> Path | None:
    """The file of `what`'s executable in the persistent store, or None when the cache is off.

    Keyed on everything the executable depends on: the static key (shapes, dtype, geometry,
    precision), the JAX and jaxlib versions, the compile options and the device's kind.
    """
    directory = compilation_cache_dir()
    if not directory:
        return None
    jax = _jax()
    from importlib.metadata import version

    dev = _device(device)
    text = repr((what, jax.__version__, version("jaxlib"), sorted(compile_options(device).items()), dev.device_kind))
    return Path(directory) / "crosscheck-executables" / f"{hashlib.sha256(text.encode()).hexdigest()}.pickle"


def _stored_or_compiled(what: tuple[Any, ...], device: str, lower: Callable[[], Any]) -> Callable[..., Any]:
    """The executable for `what`: loaded from the persistent store, else lowered, compiled and stored.

    JAX's own persistent cache still has to trace and lower a function to find its entry (~7 ms of
    the ~9 ms a cached shape costs here); this store skips both by keying on crosscheck's static key.
    """
    from jax.experimental import serialize_executable

    path = _store_path(what, device)
    if path is not None and path.exists():
        try:
            with path.open("rb") as f:
                return cast(Callable[..., Any], serialize_executable.deserialize_and_load(*pickle.load(f)))
        except Exception:  # noqa: BLE001 - a stale or truncated entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    fn = _executable(lower(), device)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: parallel workers never read a half-written entry.
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                pickle.dump(serialize_executable.serialize(cast(Any, fn)), f)
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError):
            pass  # a read-only or full disk only costs the next run a compile
    return fn


def _executable(lowered: Any, device: str) -> Callable[..., Any]:
    # A named padding mode and the explicit pads it resolves to lower to the same module (so do
    # other keys that differ only in how they spell it): compile that module once.
    module = (lowered.as_text(), device)
    fn = _EXECUTABLES.get(module)
    if fn is None:
        if len(_EXECUTABLES) >= _MAX_EXECUTABLES:
            del _EXECUTABLES[next(iter(_EXECUTABLES))]
        fn = _EXECUTABLES[module] = lowered.compile(compile_options(device) or None)
    return fn


def transposed_padding(spec: ConvSpec) -> Pads:
    """Pads of the lhs-dilated correlation with the flipped kernel that computes convᵀ (what
    lax.conv_transpose's explicit `padding` means): (eff − 1 − lo, eff − 1 − hi + output_padding)."""
    from crosscheck.core.adjoint import output_padding

    return tuple(
        ((k - 1) * d - lo, (k - 1) * d - hi + op)
        for k, d, (lo, hi), op in zip(spec.kernel, spec.dilation, spec.pads, output_padding(spec))
    )


def _grouped_transposed_kernel(w: Any, key: Static) -> Any:
    """The forward kernel as the kernel of the grouped lhs-dilated correlation computing convᵀ:
    within each group input and output channels swap, and the spatial axes are reversed."""
    import jax.numpy as jnp

    rank, g = len(key.strides), key.groups
    if key.dims[1].startswith("O"):  # (C_out, Cg, *k) -> (G·Cg, Og, *k)
        og, cg = w.shape[0] // g, w.shape[1]
        w = w.reshape(g, og, cg, *w.shape[2:]).swapaxes(1, 2).reshape(g * cg, og, *w.shape[2:])
        spatial = tuple(range(2, 2 + rank))
    else:  # (*k, Cg, C_out) -> (*k, Og, G·Cg)
        cg, og = w.shape[-2], w.shape[-1] // g
        w = w.reshape(*w.shape[:rank], cg, g, og)
        w = jnp.moveaxis(w, (-3, -2, -1), (-1, -2, -3)).reshape(*w.shape[:rank], og, g * cg)
        spatial = tuple(range(rank))
    return jnp.flip(w, axis=spatial)


@lru_cache(maxsize=_MAX_EXECUTABLES)
def compiled_backward(kind: str, key: Static, g_shape: tuple[int, ...] = ()) -> Callable[..., Any]:
    """`kind` "vjp": (x, w, g) -> (grad_x, grad_w) of the convolution `key`, by jax.vjp. `kind`
    "transposed": (g, w) -> convᵀ(g, w), where `key` describes the transposed convolution (its input
    is g, its padding the explicit `transposed_padding`): lax.conv_transpose with transpose_kernel, or,
    since that takes no feature groups, lax.conv_general_dilated with lhs_dilation for groups > 1."""
    jax = _jax()
    from jax import lax

    precision = getattr(lax.Precision, key.precision)
    fn: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]
    if kind == "vjp":
        conv = lax_conv(key)

        def fn(x: Any, w: Any, g: Any) -> Any:
            return jax.vjp(conv, x, w)[1](g)

        shapes = (key.x_shape, key.w_shape, g_shape)
    else:

        def fn(g: Any, w: Any) -> Any:
            if key.groups == 1:
                return lax.conv_transpose(
                    g,
                    w,
                    key.strides,
                    key.padding,
                    rhs_dilation=key.dilation,
                    dimension_numbers=key.dims,
                    transpose_kernel=True,
                    precision=precision,
                )
            return lax.conv_general_dilated(
                g,
                _grouped_transposed_kernel(w, key),
                window_strides=(1,) * len(key.strides),
                padding=key.padding,
                lhs_dilation=key.strides,
                rhs_dilation=key.dilation,
                feature_group_count=key.groups,
                dimension_numbers=key.dims,
                precision=precision,
            )

        shapes = (key.x_shape, key.w_shape)
    return cast(Callable[..., Any], _compile((kind, key, g_shape), key, fn, shapes))


# Measured with jax 0.10.2: jax.nn.relu and leaky_relu accept integers, but the fused property's reference composes
# real floating-point activations only.
FUSED_DTYPES_REASON = "the fused property composes real floating-point activations (integer and complex are not drawn)"
FUSED_ACTIVATIONS = ("identity", "relu", "leaky_relu")


def activate(y: Any, activation: str) -> Any:
    """`activation` (crosscheck.core.bounds.ACTIVATIONS) of a JAX array, as jax.nn defines it."""
    import jax.nn

    from crosscheck.core.bounds import LEAKY_SLOPE

    if activation == "relu":
        return jax.nn.relu(y)
    if activation == "leaky_relu":
        return jax.nn.leaky_relu(y, LEAKY_SLOPE)
    return y


def bias_layout(bias: np.ndarray, rank: int, layout: str) -> np.ndarray:
    """The (C_out,) bias shaped to broadcast over the output in `layout` (channels last: as it is)."""
    return bias if layout == "channels_last" else bias.reshape(-1, *(1,) * rank)


class JaxBackend(Backend):
    name = "jax"
    framework = "jax"
    module = "jax"
    description = "jax.lax.conv_general_dilated (jit-compiled per shape, precision=HIGHEST)"
    devices = ("cpu", "cuda")
    isa_switches = ("XLA_FLAGS",)

    def check_available(self) -> None:
        super().check_available()
        try:
            _device(self.device)
        except RuntimeError as exc:
            raise BackendUnavailable(f"{self.name}: no JAX {self.device} device ({exc})") from exc

    def capabilities(self) -> Capabilities:
        return Capabilities(
            # Complex: XLA's convolution forms conventional complex products (measured on the CPU).
            dtypes=(*FLOAT_DTYPES, *INT_DTYPES, *COMPLEX_DTYPES),
            layouts=("channels_first", "channels_last"),
            unsupported=(("layout strided", STRIDED_REASON),),
            gradients=Capabilities(
                dtypes=FLOAT_DTYPES,
                layouts=("channels_first", "channels_last"),
                unsupported=(
                    ("dtype int32/int64", NO_INT_GRADIENTS),
                    ("dtype complex64/complex128", BACKWARD_COMPLEX_REASON),
                    ("layout strided", STRIDED_REASON),
                ),
            ),
            fused=Capabilities(
                dtypes=FLOAT_DTYPES,
                layouts=("channels_first", "channels_last"),
                unsupported=(
                    ("dtype int32/int64/complex", FUSED_DTYPES_REASON),
                    ("layout strided", STRIDED_REASON),
                ),
                activations=FUSED_ACTIVATIONS,
            ),
            # Every padding mode goes in as the explicit pads of the transposed correlation.
            transposed=Capabilities(
                dtypes=(*FLOAT_DTYPES, *INT_DTYPES),
                layouts=("channels_first", "channels_last"),
                unsupported=(
                    ("dtype complex64/complex128", BACKWARD_COMPLEX_REASON),
                    ("layout strided", STRIDED_REASON),
                ),
            ),
        )

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch, xla_dispatch

        if self.device != "cpu":
            return native_dispatch(f"a {self.device} device: the CPU's ISA does not choose its kernels")
        return xla_dispatch()

    def precision_flags(self) -> dict[str, Any]:
        jax = _jax()
        dev = _device(self.device)
        return {
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
            "precision": "HIGHEST",
            "preferred_element_type": None,
            "xla_compile_options": dict(compile_options(self.device)),
            "executable_store": compilation_cache_dir(),
            "platform": dev.platform,
            "device_kind": dev.device_kind,
        }

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self._run(problem)

    def _run(self, problem: ConvProblem, precision: str = "HIGHEST", preferred: str | None = None) -> np.ndarray:
        spec = problem.spec
        if spec.layout not in ("channels_first", "channels_last"):
            raise ValueError(f"jax: layout {spec.layout!r} is not supported ({STRIDED_REASON})")
        jax = _jax()
        x, w = to_jax_layout(problem)
        key = replace(Static.of(spec, x, w, self.device), precision=precision, preferred=preferred)
        fn = compiled(key)
        dev = _device(self.device)
        # np.asarray waits for the device and copies the result to the host.
        y = np.asarray(fn(jax.device_put(x, dev), jax.device_put(w, dev)))
        return np.ascontiguousarray(from_channels_last(y)) if spec.layout == "channels_last" else y

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        """Eager JAX, op by op as a model's forward without jit runs it: the compiled convolution, then the bias
        add and the activation each dispatched on their own (so the convolution is rounded before the add)."""
        spec = problem.spec
        jax, dev = _jax(), _device(self.device)
        x, w = to_jax_layout(problem)
        y = compiled(Static.of(spec, x, w, self.device))(jax.device_put(x, dev), jax.device_put(w, dev))
        b = jax.device_put(bias_layout(bias, spec.rank, spec.layout), dev)
        out = np.asarray(activate(y + b, activation))
        return np.ascontiguousarray(from_channels_last(out)) if spec.layout == "channels_last" else out

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spec = problem.spec
        jax, dev = _jax(), _device(self.device)
        last = spec.layout == "channels_last"
        x, w = to_jax_layout(problem)
        g = channels_last(cotangent) if last else cotangent
        fn = compiled_backward("vjp", Static.of(spec, x, w, self.device), g.shape)
        gx, gw = (np.asarray(a) for a in fn(*(jax.device_put(a, dev) for a in (x, w, g))))
        if last:
            gx, gw = from_channels_last(gx), np.moveaxis(gw, (-1, -2), (0, 1))
        return np.ascontiguousarray(gx), np.ascontiguousarray(gw)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        spec = problem.spec
        jax, dev = _jax(), _device(self.device)
        last = spec.layout == "channels_last"
        _, w = to_jax_layout(problem)
        gl = channels_last(g) if last else g
        key = replace(Static.of(spec, gl, w, self.device), padding=transposed_padding(spec))
        y = np.asarray(compiled_backward("transposed", key)(jax.device_put(gl, dev), jax.device_put(w, dev)))
        return np.ascontiguousarray(from_channels_last(y)) if last else y

    # ---- reduced-precision modes (property `precision_modes`) ----------------------------------

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        modes = [
            PrecisionMode(
                name,
                f"lax.conv_general_dilated(..., precision=lax.Precision.{p}): documented as bfloat16 or TF32 "
                "passes on accelerators",
                ("float32",),
                u_in=u_in,
                accumulator="float32",
            )
            for name, (p, u_in) in PRECISION_MODES.items()
        ]
        modes.append(
            PrecisionMode(
                PREFERRED_F32_MODE,
                "lax.conv_general_dilated(..., preferred_element_type=jnp.float32): float16/bfloat16 inputs, "
                "the float32 sum returned without rounding it back",
                ("float16", "bfloat16"),
                accumulator="float32",
                output_dtype="float32",
            )
        )
        return tuple(modes)

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        if mode in PRECISION_MODES:
            return self._run(problem, precision=PRECISION_MODES[mode][0])
        if mode == PREFERRED_F32_MODE:
            return self._run(problem, preferred="float32")
        return super().run_mode(problem, mode)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        spec = problem.spec
        if spec.layout not in ("channels_first", "channels_last"):
            return None
        last = spec.layout == "channels_last"
        lines = [
            standalone_problem_code(problem),
            "import jax",
            "import numpy as np",
            "from jax import lax",
            'jax.config.update("jax_enable_x64", True)  # else float64 silently runs in float32',
            f'device = jax.devices("{_PLATFORMS[self.device]}")[0]',
            "x, w = problem.x, problem.w",
        ]
        if last:
            lines.append("x, w = np.moveaxis(x, 1, -1), np.moveaxis(w, (0, 1), (-1, -2))  # NHWC, HWIO")
        lines += [
            "y = lax.conv_general_dilated(",
            "    jax.device_put(x, device),",
            "    jax.device_put(w, device),",
            f"    window_strides={spec.stride!r},",
            f"    padding={spec.padding!r},",
            f"    rhs_dilation={spec.dilation!r},",
            f"    feature_group_count={spec.groups},",
            f"    dimension_numbers={dimension_numbers(spec.rank, spec.layout)!r},",
            "    precision=lax.Precision.HIGHEST,",
            ")",
            "y = np.moveaxis(np.asarray(y), -1, 1)  # back to (N, C, *spatial)" if last else "y = np.asarray(y)",
            "print(y)",
        ]
        return "\n".join(lines)
