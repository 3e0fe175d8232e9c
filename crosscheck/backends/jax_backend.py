"""JAX: `jax.lax.conv_general_dilated`, compiled once per static configuration.

Named padding modes go to JAX as its own strings (VALID, SAME, SAME_LOWER), explicit pads as its
native (lo, hi) pairs. channels_last hands JAX really transposed arrays (NHWC input, HWIO filter)
with the matching dimension numbers, so XLA sees a different layout rather than a relabelled one.

JAX compiles per shape: each (shapes, dtype, geometry, device) is lowered and compiled ahead of
time once and kept, so a repeated shape (the flipped-kernel run, Hypothesis' shrinking and replays)
costs one dispatch instead of a trace and an XLA compile; keys that lower to the same StableHLO
(a named padding mode and its resolved pads) share one executable. Compilation still dominates the
time of a fresh shape; CI can keep JAX's persistent cache (JAX_COMPILATION_CACHE_DIR) between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.dtypes import dtype_info
from crosscheck.layouts import channels_last, from_channels_last
from crosscheck.padding import Pads
from crosscheck.problem import ConvProblem, ConvSpec
from crosscheck.reproducer import problem_code

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}

# Measured with jaxlib 0.10.2 on 400 random problems (every dtype, both layouts): the legacy
# elemental emitter gives results bit-identical to XLA CPU's default fusion emitters and compiles the
# conversions and transposes around the convolution faster, which about doubles examples per second
# (a test keeps comparing the two pipelines bit for bit).
# LLVM's optimisation level stays at its default: lowering it compiles faster but changes float64 results.
CPU_COMPILE_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}

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


@lru_cache(maxsize=_MAX_EXECUTABLES)
def compiled(key: Static) -> Callable[[Any, Any], Any]:
    """The convolution for `key`, lowered and compiled for its device once."""
    jax = _jax()
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
            precision=lax.Precision.HIGHEST,  # GPUs otherwise default to TF32-like reduced precision
        )

    sharding = jax.sharding.SingleDeviceSharding(_device(key.device))
    dt = dtype_info(key.dtype).numpy
    args = (jax.ShapeDtypeStruct(s, dt, sharding=sharding) for s in (key.x_shape, key.w_shape))
    lowered = jax.jit(conv).lower(*args)
    # A named padding mode and the explicit pads it resolves to lower to the same module (so do
    # other keys that differ only in how they spell it): compile that module once.
    module = (lowered.as_text(), key.device)
    fn = _EXECUTABLES.get(module)
    if fn is None:
        if len(_EXECUTABLES) >= _MAX_EXECUTABLES:
            del _EXECUTABLES[next(iter(_EXECUTABLES))]
        fn = _EXECUTABLES[module] = lowered.compile(compile_options(key.device) or None)
    return fn


class JaxBackend(Backend):
    name = "jax"
    framework = "jax"
    module = "jax"
    description = "jax.lax.conv_general_dilated (jit-compiled per shape, precision=HIGHEST)"
    devices = ("cpu", "cuda")

    def check_available(self) -> None:
        super().check_available()
        try:
            _device(self.device)
        except RuntimeError as exc:
            raise BackendUnavailable(f"{self.name}: no JAX {self.device} device ({exc})") from exc

    def capabilities(self) -> Capabilities:
        return Capabilities(
            layouts=("channels_first", "channels_last"),
            unsupported=(("layout strided", STRIDED_REASON),),
        )

    def precision_flags(self) -> dict[str, Any]:
        jax = _jax()
        dev = _device(self.device)
        return {
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
            "precision": "HIGHEST",
            "preferred_element_type": None,
            "xla_compile_options": dict(compile_options(self.device)),
            "platform": dev.platform,
            "device_kind": dev.device_kind,
        }

    def run(self, problem: ConvProblem) -> np.ndarray:
        spec = problem.spec
        if spec.layout not in ("channels_first", "channels_last"):
            raise ValueError(f"jax: layout {spec.layout!r} is not supported ({STRIDED_REASON})")
        jax = _jax()
        x, w = to_jax_layout(problem)
        fn = compiled(Static.of(spec, x, w, self.device))
        dev = _device(self.device)
        # np.asarray waits for the device and copies the result to the host.
        y = np.asarray(fn(jax.device_put(x, dev), jax.device_put(w, dev)))
        return np.ascontiguousarray(from_channels_last(y)) if spec.layout == "channels_last" else y

    def native_snippet(self, problem: ConvProblem) -> str | None:
        spec = problem.spec
        if spec.layout not in ("channels_first", "channels_last"):
            return None
        last = spec.layout == "channels_last"
        lines = [
            problem_code(problem),
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
