"""Compiled paths: the same convolutions as `tensorflow`, `torch` and `jax`, but through the compilers models run
under (`tf.function(jit_compile=True)`, `torch.compile`, `jax.jit` of a composed function). Each reuses its eager
adapter's problem mapping (layouts, padding, weight layout) and changes only how the call is executed, so a
difference between the two is the compiler's.

- `tensorflow.xla`: the eager adapter's tf.nn call inside `tf.function(jit_compile=True)`: XLA's CPU convolution,
  not TensorFlow's oneDNN/Eigen kernels. Its capabilities are measured by the same probes, compiled by XLA.
- `torch.compile`: `torch.compile(fullgraph=True, dynamic=False)` (inductor on the CPU) of pad + F.conv*d (+ bias
  + activation), one compiled function per geometry, recompiled by dynamo for each new shape, dtype and layout.
  Static shapes, measured against dynamic ones on the same 12 random float32 problems (2 loaded cores): 2.0 s per
  example static, 7.9 s dynamic, and dynamic=True failed 3 of the 12 (3-D problems with asymmetric pads) and every
  complex channels_last problem with InductorError "Exponent must be non-negative", which static shapes compile.
  Dynamo's recompile limit is raised and its fallback to eager on hitting it turned into an error, so a run never
  checks eager torch under this backend's name.
- `jax.jit`: one `jax.jit` of the whole composed function: layout transposes, convolution, bias and activation,
  which XLA fuses (the `jax` adapter hands XLA pre-transposed arrays and, in eager use, adds the bias and
  activation op by op).

They are in `registry.PORTED`: each example costs a compilation, so a default run leaves them out.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from crosscheck.backends import jax_backend
from crosscheck.backends.base import NOTHING_EXPOSED, Capabilities, PrecisionMode
from crosscheck.backends.jax_backend import JaxBackend, Static, activate, bias_layout, to_jax_layout
from crosscheck.backends.tensorflow_backend import (
    GRAPH_CONV3D_DILATIONS,
    TensorflowBackend,
    _invoke,
    graph_conv3d_dilations,
)
from crosscheck.backends.torch_backend import FUSED_ACTIVATIONS, TorchBackend, convolve
from crosscheck.core.bounds import LEAKY_SLOPE
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.core.layouts import from_channels_last
from crosscheck.core.problem import ConvProblem, ConvSpec

if TYPE_CHECKING:
    import torch

ONLY_FORWARD = (
    "the {name} adapter compiles the forward call only; the {eager} backend checks the framework's "
    "gradients and transposed convolution"
)
NO_MODES = "the {name} adapter runs the default precision only; the {eager} backend checks the reduced-precision modes"


def _forward_only(caps: Capabilities, name: str, eager: str) -> Capabilities:
    """`caps` without the backward spaces the eager adapter declares, with the reason."""
    why = ONLY_FORWARD.format(name=name, eager=eager)
    return replace(
        caps,
        gradients=None,
        transposed=None,
        unsupported=(*caps.unsupported, ("gradients", why), ("transposed convolution", why)),
    )


# ---- tensorflow.xla -----------------------------------------------------------------------------------------------


class TensorflowXlaBackend(TensorflowBackend):
    name = "tensorflow.xla"
    description = "tf.nn.conv1d/conv2d/conv3d, depthwise_conv2d, convolution inside tf.function(jit_compile=True)"
    jit_compile = True
    devices = ("cpu",)  # type: ignore[assignment]
    isa_switches = ()  # type: ignore[assignment]  # XLA generates its own code for the CPU; the adapter does not cap it
    implementation_source = NOTHING_EXPOSED

    def implementations(self) -> list[str]:
        return []

    def _note_implementations(self) -> None:
        return None  # XLA's convolution is not a oneDNN primitive: nothing to read

    def _framework(self) -> Any:
        tf = super()._framework()
        # One tf.function per shape is the point here (each compiles XLA once): TensorFlow's retracing warning
        # would print into the middle of the live display.
        tf.get_logger().setLevel("ERROR")
        return tf

    def _declare(self) -> Capabilities:
        caps = TensorflowBackend._declare(self)
        # tf.function traces the call, and tracing hits finding tensorflow-conv3d-graph-swaps-hw-dilations.
        caps = replace(
            caps,
            unsupported=(*caps.unsupported, ("conv3d unequal height and width dilations", GRAPH_CONV3D_DILATIONS)),
            constraints=(*caps.constraints, graph_conv3d_dilations),
        )
        floats = tuple(d for d in caps.dtypes if d in FLOAT_DTYPES)
        fused = replace(
            caps,
            dtypes=floats,
            unsupported=(*caps.unsupported, ("dtype int32", FUSED_DTYPES_REASON)),
            gradients=None,
            transposed=None,
            activations=FUSED_ACTIVATIONS,
        )
        return replace(_forward_only(caps, self.name, "tensorflow"), fused=fused)

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch

        return native_dispatch("XLA compiles the convolution for this CPU itself (no switch capped here)")

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        return ()

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        tf = self._framework()
        spec = problem.spec
        call = self.plan(spec)
        x = problem.x if spec.layout == "channels_first" else np.moveaxis(problem.x, 1, -1)
        f = self._filter(problem.w, spec)
        fn = _xla_fused(tf, call, x.shape, f.shape, spec.dtype, activation)
        with tf.device("/CPU:0"):
            out = fn(tf.constant(np.ascontiguousarray(x)), tf.constant(f), tf.constant(bias)).numpy()
        return out if spec.layout == "channels_first" else np.ascontiguousarray(from_channels_last(out))


FUSED_DTYPES_REASON = "the fused property composes real floating-point activations (integer and complex are not drawn)"


_XLA_FUSED: dict[str, Any] = {}


def _xla_fused(tf: Any, call: Any, x_shape: tuple[int, ...], f_shape: tuple[int, ...], dtype: str, act: str) -> Any:
    """tf.function(jit_compile=True) of the tf.nn call + tf.nn.bias_add + the activation, one per shapes (traced
    once, as tensorflow_backend._graph does for the plain call)."""
    key = repr((call, x_shape, f_shape, dtype, act))
    if key in _XLA_FUSED:
        return _XLA_FUSED[key]
    if len(_XLA_FUSED) >= 512:
        del _XLA_FUSED[next(iter(_XLA_FUSED))]
    data_format = "NC..." if call.data_format.startswith("NC") else "N...C"

    def fn(x: Any, f: Any, b: Any) -> Any:
        y = tf.nn.bias_add(_invoke(tf, call, x, f), b, data_format=data_format)
        if act == "relu":
            return tf.nn.relu(y)
        if act == "leaky_relu":
            return tf.nn.leaky_relu(y, alpha=LEAKY_SLOPE)
        return y

    _XLA_FUSED[key] = tf.function(fn, jit_compile=True)
    return _XLA_FUSED[key]


# ---- torch.compile ------------------------------------------------------------------------------------------------

# Dynamo keeps compiled variants per code object and, past `recompile_limit` (8 by default), silently runs the
# function eagerly: every geometry here is a variant of the same code, so the limits are raised, and hitting them
# raises instead of falling back.
RECOMPILE_LIMIT = 100_000


@functools.cache
def _configure_dynamo() -> None:
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = RECOMPILE_LIMIT
    dynamo.accumulated_recompile_limit = RECOMPILE_LIMIT
    dynamo.fail_on_recompile_limit_hit = True


_TORCH_COMPILED: dict[tuple[Any, ...], Any] = {}
_MAX_TORCH_COMPILED = 4096


def _torch_compiled(spec: ConvSpec, activation: str) -> Any:
    """torch.compile of `convolve` for `spec`'s geometry (stride, padding, dilation, groups: what the call bakes in);
    dynamo's guards recompile it for each size, dtype and layout."""
    import torch

    key = (spec.rank, spec.stride, spec.padding, spec.dilation, spec.groups, activation)
    fn = _TORCH_COMPILED.get(key)
    if fn is None:
        _configure_dynamo()
        if len(_TORCH_COMPILED) >= _MAX_TORCH_COMPILED:
            del _TORCH_COMPILED[next(iter(_TORCH_COMPILED))]
        geometry = spec  # explicit pads and named modes do not depend on the sizes (torch_backend.padded)

        def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return convolve(geometry, x, w, b, activation)

        fn = _TORCH_COMPILED[key] = torch.compile(forward, fullgraph=True, dynamic=False)
    return fn


class TorchCompileBackend(TorchBackend):
    name = "torch.compile"
    description = "torch.compile(fullgraph=True, dynamic=False) of pad + F.conv1d/conv2d/conv3d (inductor)"
    devices = ("cpu",)  # type: ignore[assignment]
    implementation_source = NOTHING_EXPOSED

    def implementations(self) -> list[str]:
        return []

    def capabilities(self) -> Capabilities:
        return _forward_only(super().capabilities(), self.name, "torch")

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        return ()

    def _compiled_convolve(
        self, spec: ConvSpec, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, activation: str
    ) -> torch.Tensor:
        return cast("torch.Tensor", _torch_compiled(spec, activation)(x, w, b))

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self._fused(problem, None, "identity", self._compiled_convolve)

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return self._fused(problem, bias, activation, self._compiled_convolve)


# ---- jax.jit ------------------------------------------------------------------------------------------------------


def _composed(key: Static, layout: str, activation: str | None) -> Any:
    """(x, w[, b]) in the canonical layouts -> the canonical output, everything inside one function for jax.jit:
    for channels_last the transposes to NHWC/HWIO and back, then (when `activation` is set) bias and activation."""
    import jax.numpy as jnp

    conv = jax_backend.lax_conv(key)
    last = layout == "channels_last"

    def fn(x: Any, w: Any, *bias: Any) -> Any:
        if last:
            x, w = jnp.moveaxis(x, 1, -1), jnp.moveaxis(w, (0, 1), (-1, -2))
        y = conv(x, w)
        if activation is not None:
            y = activate(y + bias[0], activation)
        return jnp.moveaxis(y, -1, 1) if last else y

    return fn


class JaxJitBackend(JaxBackend):
    name = "jax.jit"
    description = "jax.jit of a composed function: layout transposes + lax.conv_general_dilated (+ bias + activation)"
    devices = ("cpu",)  # type: ignore[assignment]

    def capabilities(self) -> Capabilities:
        return _forward_only(super().capabilities(), self.name, "jax")

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        return ()

    def _call(self, problem: ConvProblem, activation: str | None, bias: np.ndarray | None) -> np.ndarray:
        spec = problem.spec
        jax = jax_backend._jax()
        dev = jax_backend._device(self.device)
        x, w = to_jax_layout(problem)  # the shapes XLA's convolution sees; the function takes the canonical arrays
        key = Static.of(spec, x, w, self.device)
        shapes = [problem.x.shape, problem.w.shape]
        args = [problem.x, problem.w]
        if bias is not None:
            b = bias_layout(bias, spec.rank, spec.layout)  # added inside, to the convolution's own layout
            shapes.append(b.shape)
            args.append(b)
        what = ("jit-composed", key, spec.layout, activation, tuple(shapes))
        fn = _jit_executable(what, key, spec.layout, activation, tuple(shapes))
        return np.ascontiguousarray(np.asarray(fn(*(jax.device_put(a, dev) for a in args))))

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self._call(problem, None, None)

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return self._call(problem, activation, bias)


@functools.lru_cache(maxsize=1024)
def _jit_executable(
    what: tuple[Any, ...], key: Static, layout: str, activation: str | None, shapes: tuple[tuple[int, ...], ...]
) -> Any:
    return jax_backend._compile(what, key, _composed(key, layout, activation), shapes)
