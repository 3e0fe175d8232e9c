"""The TensorFlow adapter's backward pass: gradients by `tf.GradientTape` through the very call `run`
makes (so through the same op, pads and layout), and the transposed convolution by
`tf.nn.conv1d_transpose` / `conv2d_transpose` / `conv3d_transpose`.

As for the forward pass, what the kernels accept depends on the machine (oneDNN's for float32 and,
with AVX-512, bfloat16; TensorFlow's own Eigen kernels for the rest), so nothing is assumed: each
feature is run once per dtype on a tiny problem through this module's own code (`BackwardFacts`),
and the capabilities quote TensorFlow's refusals.

Transposed convolutions: the filter is the forward one, (*kernel, C_in/groups, C_out), which is
TensorFlow's (*kernel, output_channels, in_channels) read from the transposed side; `output_shape`
is the forward input's size. Named SAME and VALID go in by name (TensorFlow derives the pads from
output_shape exactly as its forward convolution does). conv2d_transpose takes explicit pads;
conv1d_transpose and conv3d_transpose do not, so explicit pads (and SAME_LOWER, which TensorFlow
lacks) go in as VALID with the smallest output_shape that covers them, and the result is cropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from crosscheck.core.dtypes import FLOAT_DTYPES, dtype_info
from crosscheck.core.layouts import channels_last, from_channels_last
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec


class HasTensorflow(Protocol):
    """What this module needs of the adapter (`tensorflow_backend.TensorflowBackend`): TensorFlow with its
    flags pinned, the device, and the forward call's plan. A protocol, so that the adapter imports this
    module and never the other way round."""

    @property
    def _device_name(self) -> str: ...

    def _framework(self) -> Any: ...

    def _filter(self, w: np.ndarray, spec: ConvSpec) -> np.ndarray: ...

    def plan(self, spec: ConvSpec) -> Any: ...

    def op_for(self, spec: ConvSpec) -> str: ...

    def refusal(self, spec: ConvSpec) -> str | None: ...


def tf_message(exc: BaseException) -> str:
    """TensorFlow's error as quoted in reasons: type and first line, without the eager op's frame."""
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", str(exc).splitlines()[0] if str(exc) else "")
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text)
    return f"{type(exc).__name__}: {text}"


# Measured with tensorflow-cpu 2.21: GradientTape warns and returns None for integer sources.
NO_INT_GRADIENTS = (
    "tf.GradientTape differentiates floating tensors only: watching an int32 tensor warns 'The dtype of the "
    "watched tensor must be floating (e.g. tf.float32), got tf.int32' and its gradient is None"
)
BACKWARD_COMPLEX_REASON = "crosscheck's gradient and transposed-convolution references are real-valued"


def filter_of(w: np.ndarray, rank: int) -> np.ndarray:
    """(C_out, C_in/g, *k) -> (*k, C_in/g, C_out): the forward filter, and conv*_transpose's."""
    return np.ascontiguousarray(np.transpose(w, (*range(2, 2 + rank), 1, 0)))


def weight_of(f: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """A filter-shaped gradient back to (C_out, C_in/g, *k); depthwise filters (*k, C_in, multiplier)
    hold the same elements in the same order."""
    f = f.reshape(*spec.kernel, spec.in_channels // spec.groups, spec.out_channels)
    return np.ascontiguousarray(np.transpose(f, (spec.rank + 1, spec.rank, *range(spec.rank))))


def _to_tf_layout(a: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return a if spec.layout == "channels_first" else channels_last(a)


def _from_tf_layout(a: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return a if spec.layout == "channels_first" else np.ascontiguousarray(from_channels_last(a))


def vjp(backend: HasTensorflow, problem: ConvProblem, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tf = backend._framework()
    spec = problem.spec
    call = backend.plan(spec)
    with tf.device(backend._device_name):
        x = tf.constant(_to_tf_layout(problem.x, spec))
        f = tf.constant(backend._filter(problem.w, spec))
        with tf.GradientTape() as tape:
            tape.watch([x, f])
            xp = tf.pad(x, call.pre_pad) if call.pre_pad else x
            op = getattr(tf.nn, call.op)
            y = op(xp, f, call.strides, call.padding, data_format=call.data_format, dilations=call.dilations)
        gx, gf = tape.gradient(y, [x, f], output_gradients=tf.constant(_to_tf_layout(g, spec)))
        gx, gf = gx.numpy(), gf.numpy()
    return _from_tf_layout(gx, spec), weight_of(gf, spec)


@dataclass(frozen=True)
class TransposedCall:
    """One tf.nn.conv*_transpose call: what `conv_transpose` executes."""

    op: str
    data_format: str
    output_shape: list[int]
    strides: list[int]
    padding: str | list[list[int]]
    dilations: list[int]
    crop: tuple[slice, ...]  # spatial slices of TensorFlow's output that make crosscheck's


def transposed_plan(spec: ConvSpec) -> TransposedCall:
    op = f"conv{spec.rank}d_transpose"
    last = spec.layout != "channels_first"
    data_format = {1: "NWC", 2: "NHWC", 3: "NDHWC"}[spec.rank] if last else {1: "NCW", 2: "NCHW", 3: "NCDHW"}[spec.rank]

    def full(spatial: list[Any], fill: Any) -> list[Any]:
        return [fill, *spatial, fill] if last else [fill, fill, *spatial]

    def shape(spatial: list[int]) -> list[int]:
        return [spec.batch, *spatial, spec.in_channels] if last else [spec.batch, spec.in_channels, *spatial]

    whole = tuple(slice(None) for _ in spec.in_size)
    padding: str | list[list[int]]
    if spec.padding in ("SAME", "VALID"):
        padding, sizes, crop = str(spec.padding), list(spec.in_size), whole
    elif op == "conv2d_transpose":
        padding, sizes, crop = full([list(p) for p in spec.pads], [0, 0]), list(spec.in_size), whole
    else:
        # VALID's output is the full transposed convolution (zeros past its end): crosscheck's output
        # is positions lo .. lo + n of it, so ask for at least lo + n, and at least the full length.
        sizes, slices = [], []
        for n, t, k, s, d, (lo, _) in zip(
            spec.in_size, spec.out_size, spec.kernel, spec.stride, spec.dilation, spec.pads
        ):
            sizes.append(max((t - 1) * s + effective_kernel(k, d), lo + n))
            slices.append(slice(lo, lo + n))
        padding, crop = "VALID", tuple(slices)
    return TransposedCall(
        op, data_format, shape(sizes), full(list(spec.stride), 1), padding, full(list(spec.dilation), 1), crop
    )


def conv_transpose(backend: HasTensorflow, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
    tf = backend._framework()
    spec = problem.spec
    call = transposed_plan(spec)
    with tf.device(backend._device_name):
        gt = tf.constant(_to_tf_layout(g, spec))
        f = tf.constant(filter_of(problem.w, spec.rank))
        op = getattr(tf.nn, call.op)
        y = op(
            gt, f, call.output_shape, call.strides, call.padding, data_format=call.data_format, dilations=call.dilations
        ).numpy()
    y = _from_tf_layout(y, spec)
    return np.ascontiguousarray(y[(slice(None), slice(None), *call.crop)])


# --- what TensorFlow's kernels accept here --------------------------------------------------------

# Which kernel serves a call depends on more than the op and dtype: oneDNN's float32 Conv2D gradient
# takes dilation with named padding, but with explicit pads the call falls back to the Eigen kernel,
# which refuses dilation (measured). So a refusal is measured per signature, on the first problem
# that has it, and holds for every problem that shares it.


@dataclass(frozen=True)
class Signature:
    kind: str  # "gradient" or "transposed"
    op: str  # the forward op whose gradient is taken, or conv1d/2d/3d_transpose
    dtype: str
    layout: str
    padding: str  # SAME, VALID or explicit (SAME_LOWER reaches TensorFlow as explicit pads)
    groups: bool
    strided: bool
    dilated: bool

    def describe(self) -> str:
        uses = [f for f, on in (("groups", self.groups), ("stride", self.strided), ("dilation", self.dilated)) if on]
        what = f"{self.op} gradient" if self.kind == "gradient" else self.op
        return f"{self.dtype} {what} ({', '.join([self.layout, f'padding {self.padding}', *uses])})"


def signature(backend: HasTensorflow, kind: str, spec: ConvSpec) -> Signature:
    named = spec.padding if spec.padding in ("SAME", "VALID") else "explicit"
    op = backend.op_for(spec) if kind == "gradient" else f"conv{spec.rank}d_transpose"
    return Signature(
        kind,
        op,
        spec.dtype,
        spec.layout,
        str(named),
        spec.groups > 1,
        max(spec.stride) > 1,
        max(spec.dilation) > 1,
    )


class BackwardFacts:
    """TensorFlow's refusal (in its words; None: accepted) of each signature, measured on first use."""

    def __init__(self, backend: HasTensorflow) -> None:
        self.backend = backend
        self._facts: dict[Signature, str | None] = {}

    def __call__(self, kind: str, spec: ConvSpec) -> str | None:
        sig = signature(self.backend, kind, spec)
        if sig not in self._facts:
            self._facts[sig] = self._measure(kind, spec)
        message = self._facts[sig]
        return f"{sig.describe()}: {message}" if message else None

    def _measure(self, kind: str, spec: ConvSpec) -> str | None:
        tf = self.backend._framework()
        dt = dtype_info(spec.dtype).numpy
        problem = ConvProblem(spec, np.zeros(spec.x_shape, dt), np.zeros(spec.w_shape, dt))
        g = np.zeros(spec.y_shape, dt)
        op = signature(self.backend, kind, spec).op
        try:
            if kind == "gradient":
                vjp(self.backend, problem, g)
            else:
                conv_transpose(self.backend, problem, g)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            return f"tf.nn.{op} raises {tf_message(exc)}"
        return None


def gradient_refusal(backend: HasTensorflow, facts: BackwardFacts, spec: ConvSpec) -> str | None:
    return backend.refusal(spec) or facts("gradient", spec)


def tiny(rank: int, dtype: str) -> ConvSpec:
    return ConvSpec(1, 2, 2, (4,) * rank, (2,) * rank, dtype=dtype, layout="channels_last")


def spaces(backend: HasTensorflow, forward_dtypes: tuple[str, ...], layouts: tuple[str, ...]) -> dict[str, Any]:
    """The `gradients` and `transposed` capabilities: the forward's space narrowed by what the
    backward kernels accept (quoted per dtype where a whole dtype is refused)."""
    from crosscheck.backends.base import Capabilities

    facts = BackwardFacts(backend)
    unsupported_complex = [(f"dtype {d}", BACKWARD_COMPLEX_REASON) for d in forward_dtypes if dtype_info(d).is_complex]
    floats = tuple(d for d in forward_dtypes if d in FLOAT_DTYPES)
    ints = [d for d in forward_dtypes if not dtype_info(d).is_float and not dtype_info(d).is_complex]
    # Half-type sums kept in the half type are known findings judged inside their regions
    # (crosscheck.core.finding_regions), not refusals: only what TensorFlow raises is left out.
    gradients = Capabilities(
        dtypes=floats,
        padding=("explicit", "VALID", "SAME"),
        layouts=layouts,
        unsupported=(
            *[(f"dtype {d}", NO_INT_GRADIENTS) for d in ints],
            *unsupported_complex,
        ),
        constraints=(lambda spec: gradient_refusal(backend, facts, spec),),
    )
    candidates = tuple(d for d in forward_dtypes if not dtype_info(d).is_complex)
    # A dtype is left out where conv2d_transpose and conv3d_transpose both refuse it.
    refused = {d: m for d in candidates if (m := facts("transposed", tiny(2, d))) and facts("transposed", tiny(3, d))}
    transposed = Capabilities(
        dtypes=tuple(d for d in candidates if d not in refused),
        layouts=layouts,
        unsupported=(*[(f"dtype {d}", str(m)) for d, m in refused.items()], *unsupported_complex),
        constraints=(lambda spec: facts("transposed", spec),),
    )
    return {"gradients": gradients, "transposed": transposed}
