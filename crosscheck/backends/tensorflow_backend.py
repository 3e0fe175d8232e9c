"""TensorFlow: `tf.nn.conv1d` / `conv2d` / `conv3d`, `tf.nn.depthwise_conv2d` and `tf.nn.convolution`,
eagerly, channels_last (NWC/NHWC/NDHWC) and, where the kernels take it, channels_first.

Which kernel serves a dtype depends on the machine: with oneDNN on (TF_ENABLE_ONEDNN_OPTS, the x86
default) float32 and, on CPUs with AVX-512, bfloat16 run oneDNN kernels, which take NCHW, dilated
Conv3D and unequal depthwise strides; everything else runs TensorFlow's own (Eigen) CPU kernels,
which refuse them. So the adapter does not assume: `measure` asks TensorFlow once per dtype, on tiny
inputs, and the capabilities quote its refusals.

Each problem goes to one op (`TensorflowBackend.op_for`): depthwise 2-D problems to
depthwise_conv2d where it computes them, dilated 3-D problems to tf.nn.convolution (space-to-batch)
where Conv3D refuses dilation, the rest to conv1d/conv2d/conv3d. SAME and VALID are passed by name
(TensorFlow has no SAME_LOWER); explicit pads as pad lists to conv2d and depthwise_conv2d, the only
ops that take them, and as `tf.pad` + VALID to the others.

Findings (see the tests): the Eigen Conv3D and DepthwiseConv2dNative kernels sum float16/bfloat16
in that type, not float32 (measured per dtype, declared as refusals naming the finding); and
depthwise_conv2d with stride > 1 and dilation > 1 returns wrong values with only a warning, so those
problems use conv2d's groups.

The backward pass (gradients through the same calls, conv*_transpose) is `tensorflow_backward`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from crosscheck.backends import tensorflow_backward
from crosscheck.backends.base import (
    NAME_IMPLEMENTATIONS_ENV,
    NOTHING_EXPOSED,
    Backend,
    BackendUnavailable,
    Capabilities,
    PrecisionMode,
)
from crosscheck.backends.tensorflow_backward import tf_message
from crosscheck.core.dtypes import BF16_UNIT_ROUNDOFF, TF32_UNIT_ROUNDOFF, dtype_info
from crosscheck.core.hardware import KeptOutput, parse_onednn_verbose
from crosscheck.core.layouts import channels_last, from_channels_last
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import standalone_problem_code

DATA_FORMATS = {
    "channels_last": {1: "NWC", 2: "NHWC", 3: "NDHWC"},
    "channels_first": {1: "NCW", 2: "NCHW", 3: "NCDHW"},
}
# Complex dtypes are probed like the others: TensorFlow's conv kernels refuse them (see `measure`).
DTYPES = ("float64", "float32", "float16", "bfloat16", "int32", "int64", "complex64", "complex128")

# API-level facts, the same on every machine (the tests re-check them).
NO_SAME_LOWER = (
    "InvalidArgumentError: Value for attr 'padding' of \"SAME_LOWER\" is not in the list of allowed "
    'values: "SAME", "VALID", "EXPLICIT"'
)
NOT_STRIDED = "tf.constant copies a NumPy view into a dense row-major buffer: a strided layout never reaches the op"
# Reduced-precision modes (property `precision_modes`), measured with tensorflow-cpu 2.21 on the CPU.
ONEDNN_BF16_MODE = "grappler-onednn-bfloat16"
TF32_MODE = "tensor_float_32"
KERAS_POLICY_MODE = "keras-mixed_bfloat16"
TF32_CPU_REASON = (
    "TensorFloat-32 is an NVIDIA (Ampere and later) GPU format: on the CPU, "
    "tf.config.experimental.enable_tensor_float_32_execution(True) leaves tf.nn.conv2d's float32 results "
    "bit-identical (measured)"
)
KERAS_POLICY_REASON = (
    "a Keras layer policy, not an op setting: under tf.keras.mixed_precision.set_global_policy('mixed_bfloat16') "
    "tf.nn.conv2d still takes, computes and returns float32 (measured: bit-identical results)"
)

GRAPH_CONV3D_DILATIONS = (
    "finding tensorflow-conv3d-graph-swaps-hw-dilations: in a tf.function, Conv3D's shape inference swaps the "
    "height and width dilations (x (1, 1, 1, 2, 1), filter (1, 1, 2, 1, 1), dilations [1, 1, 2, 1, 1] raises "
    "ValueError: Negative dimension size caused by subtracting 3 from 2; eager computes it), so the graph-only "
    "mode leaves out 3-D problems whose height and width dilations differ"
)


def graph_conv3d_dilations(spec: ConvSpec) -> str | None:
    """The graph path's refusal (module-level: a PrecisionMode's constraint must pickle)."""
    return GRAPH_CONV3D_DILATIONS if spec.rank == 3 and spec.dilation[1] != spec.dilation[2] else None


BF16_DEPTH_PADDED_CONV3D = (
    "finding tensorflow-onednn-bfloat16-depth-padded-conv3d-zeros: under Grappler's oneDNN bfloat16 rewrite, "
    "tf.pad + tf.nn.conv3d on an input of depth 1 padded to a deeper kernel (kernel width > 1) returns zeros "
    "or garbage (uninitialised memory; 104 of 1176 small problems, all of that shape); the mode leaves out "
    "3-D problems of input depth 1 and kernel depth > 1"
)


def bf16_depth_padded_conv3d(spec: ConvSpec) -> str | None:
    """The oneDNN bfloat16 mode's refusal (module-level: a PrecisionMode's constraint must pickle)."""
    return BF16_DEPTH_PADDED_CONV3D if spec.rank == 3 and spec.in_size[0] == 1 and spec.kernel[0] > 1 else None


DEPTHWISE_STRIDE_WITH_DILATION = (
    "UserWarning: When dilation rate is greater than 1, then all values of strides must be 1."
)


def _attempt(tf: Any, call: Callable[[], Any]) -> str | None:
    """None if TensorFlow runs `call`, else its refusal. Only TensorFlow's own refusals count (kernel
    errors, and ValueError from its Python checks): anything else is a bug here and propagates."""
    try:
        call()
    except (tf.errors.OpError, ValueError) as exc:
        return _traced_message(exc)
    except TypeError as exc:
        # In a tf.function, an op's own dtype check raises at tracing: "Value passed to parameter 'input' has
        # DataType int32 not in list of allowed values: ...".
        if "not in list of allowed values" not in str(exc):
            raise
        return _traced_message(exc)
    return None


def _traced_message(exc: BaseException) -> str:
    """tf_message, or for an error raised while tracing a tf.function ("in user code: ..."), its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0] == "in user code:":
        last = lines[-1]
        return last if last.startswith(f"{type(exc).__name__}:") else f"{type(exc).__name__}: {last}"
    return tf_message(exc)


def _caller(tf: Any, jit_compile: bool) -> Callable[..., Any]:
    """(op, x, f, *args) -> op(x, f, *args), eagerly or compiled by XLA. x and f go in as arguments: XLA folds an
    op on constants with its HLO evaluator, so a probe of constants would measure the evaluator, not the kernel."""

    def call(op: Callable[..., Any], x: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if not jit_compile:
            return op(x, f, *args, **kwargs)
        return tf.function(lambda a, b: op(a, b, *args, **kwargs), jit_compile=True)(x, f)

    return call


def _sums_in_dtype(tf: Any, dtype: str, invoke: Callable[..., Any]) -> dict[str, str | None]:
    """Whether Conv3D / DepthwiseConv2dNative keep a float16/bfloat16 sum in that type: with p
    significand bits, 2^p + 1 rounds back to 2^p, so [2^p, 1, 1]·[1, 1, 1] gives 2^p instead of the
    exact 2^p + 2 (which the type represents) when the sum is not carried in float32."""
    info = dtype_info(dtype)
    if not info.is_float or info.significand_bits >= 24:
        return {}
    big = 2.0**info.significand_bits
    v = tf.constant([big, 1.0, 1.0], tf.as_dtype(dtype))
    ones = tf.ones((1, 1, 1, 3, 1), v.dtype)
    calls: dict[str, Callable[[], Any]] = {
        "conv3d": lambda: invoke(tf.nn.conv3d, tf.reshape(v, (1, 1, 1, 1, 3)), ones, [1] * 5, "VALID"),
        "depthwise_conv2d": lambda: invoke(
            tf.nn.depthwise_conv2d, tf.reshape(v, (1, 3, 1, 1)), tf.reshape(ones, (3, 1, 1, 1)), [1] * 4, "VALID"
        ),
    }
    out: dict[str, str | None] = {}
    for op, call in calls.items():
        try:
            y = call()
        except (tf.errors.OpError, ValueError):
            # The op itself refuses this dtype here: `measure`'s own probe of the op records that refusal.
            out[f"{op} sums"] = None
            continue
        value = float(np.asarray(y.numpy(), np.float64).ravel()[0])
        out[f"{op} sums"] = (
            f"finding: tf.nn.{op} sums {dtype} in {dtype}, not float32: [{big:g}, 1, 1]·[1, 1, 1] gives "
            f"{value:g}, exact {big + 2:g} (representable); the float32-accumulator contract does not hold"
            if value != big + 2
            else None
        )
    return out


def measure(tf: Any, dtype: str, jit_compile: bool = False) -> dict[str, str | None]:
    """What TensorFlow's kernels for `dtype` refuse here: feature -> the refusal in TensorFlow's words,
    None where accepted. A feature's first word is the op it concerns. `jit_compile`: each call compiled by XLA
    (tf.function(jit_compile=True)), whose kernels refuse other things."""
    call = _caller(tf, jit_compile)
    dt = tf.as_dtype(dtype)

    def t(*shape: int) -> Any:
        return tf.ones(shape, dt)

    nn = tf.nn
    probes: dict[str, Callable[[], Any]] = {
        "conv2d": lambda: call(nn.conv2d, t(1, 3, 3, 2), t(2, 2, 2, 2), 1, "VALID"),
        "conv2d channels_first": lambda: call(nn.conv2d, t(1, 2, 3, 3), t(2, 2, 2, 2), 1, "VALID", data_format="NCHW"),
        "conv3d": lambda: call(nn.conv3d, t(1, 3, 3, 3, 2), t(2, 2, 2, 2, 2), [1] * 5, "VALID"),
        "conv3d channels_first": lambda: call(
            nn.conv3d, t(1, 2, 3, 3, 3), t(2, 2, 2, 2, 2), [1] * 5, "VALID", data_format="NCDHW"
        ),
        "conv3d groups": lambda: call(nn.conv3d, t(1, 3, 3, 3, 4), t(2, 2, 2, 2, 2), [1] * 5, "VALID"),
        "conv3d dilation": lambda: call(
            nn.conv3d, t(1, 3, 3, 3, 2), t(2, 2, 2, 2, 2), [1] * 5, "VALID", dilations=[1, 2, 1, 1, 1]
        ),
        "conv3d stride with dilation": lambda: call(
            nn.conv3d, t(1, 5, 3, 3, 2), t(2, 2, 2, 2, 2), [1, 2, 1, 1, 1], "VALID", dilations=[1, 2, 1, 1, 1]
        ),
        "convolution": lambda: call(
            nn.convolution, t(1, 5, 3, 3, 2), t(2, 2, 2, 2, 2), [2, 1, 1], "VALID", dilations=[2, 1, 1]
        ),
        "depthwise_conv2d": lambda: call(nn.depthwise_conv2d, t(1, 3, 3, 2), t(2, 2, 2, 1), [1] * 4, "VALID"),
        "depthwise_conv2d channels_first": lambda: call(
            nn.depthwise_conv2d, t(1, 2, 3, 3), t(2, 2, 2, 1), [1] * 4, "VALID", data_format="NCHW"
        ),
        "depthwise_conv2d unequal strides": lambda: call(
            nn.depthwise_conv2d, t(1, 3, 3, 2), t(2, 2, 2, 1), [1, 2, 1, 1], "VALID"
        ),
    }
    facts: dict[str, str | None] = {}
    for feature, probe in probes.items():
        message = _attempt(tf, probe)
        facts[feature] = message and f"tf.nn.{feature.split()[0]} raises {message}"
    # Where Conv3D refuses dilation, tf.nn.convolution dilates by space-to-batch, but not with stride.
    convolution, conv3d = facts.pop("convolution"), facts["conv3d stride with dilation"]
    if conv3d and convolution:
        facts["conv3d stride with dilation"] = f"{conv3d}; {convolution}"
    return {**facts, **_sums_in_dtype(tf, dtype, call)}


@dataclass(frozen=True)
class Call:
    """One tf.nn call in TensorFlow's own terms: what `run` executes and `native_snippet` prints."""

    op: str
    data_format: str
    strides: list[int]
    padding: str | list[list[int]]
    dilations: list[int]
    pre_pad: list[list[int]] | None = None  # tf.pad for ops that take no explicit pad lists

    def arguments(self) -> str:
        return f"{self.strides}, {self.padding!r}, data_format={self.data_format!r}, dilations={self.dilations}"


def _base(op: str) -> str:
    """The kernel behind an op: conv1d runs Conv2D, tf.nn.convolution (3-D) runs Conv3D."""
    return {"conv1d": "conv2d", "convolution": "conv3d"}.get(op, op)


def is_depthwise(spec: ConvSpec) -> bool:
    return spec.rank == 2 and spec.groups > 1 and spec.groups == spec.in_channels


@functools.cache
def _tensorflow() -> Any:
    # Must be set before the import; a user's own setting wins. 3 also drops oneDNN's "supports DT_HALF only on
    # platforms with AVX-512" line (an E-level log, not an error: the op falls back to Eigen and works).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _onednn_log()
    with _without_banner():
        import tensorflow as tf

    return tf


@functools.cache
def _onednn_log() -> KeptOutput | None:
    """In a run's worker (NAME_IMPLEMENTATIONS_ENV), before TensorFlow loads: oneDNN's verbose mode on, its lines (one
    per primitive executed, on stdout) kept off the terminal. Its level is read once, when TensorFlow loads, and
    TensorFlow exports no dnnl_set_verbose to switch it later; a user's own ONEDNN_VERBOSE is left alone."""
    if os.environ.get(NAME_IMPLEMENTATIONS_ENV) != "1" or "ONEDNN_VERBOSE" in os.environ or "tensorflow" in sys.modules:
        return None
    os.environ["ONEDNN_VERBOSE"] = "1"
    return KeptOutput(1)


NOT_ONEDNN = "tensorflow:not oneDNN"  # no oneDNN convolution ran: Eigen's or TensorFlow's own kernel


# Lines TensorFlow's C++ libraries write to stderr while they load, before TF_CPP_MIN_LOG_LEVEL applies (absl logs
# ahead of its InitializeLog), once per library: noise in the middle of crosscheck's own output.
_BANNER = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


@contextlib.contextmanager
def _without_banner() -> Iterator[None]:
    """Pass on what is written to file descriptor 2 inside, without the banner lines."""
    from crosscheck.core.hardware import held_output

    held: list[str] = []
    try:
        with held_output(2) as held:
            yield
    finally:
        lines = "".join(held).splitlines(keepends=True)
        sys.stderr.write("".join(line for line in lines if not any(b in line for b in _BANNER)))
        sys.stderr.flush()


def installed_distribution() -> str:
    """The distribution that provides `import tensorflow` (tensorflow-cpu here, tensorflow elsewhere)."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly"):
        try:
            version(dist)
        except PackageNotFoundError:
            continue
        return dist
    return "tensorflow"


def _invoke(tf: Any, call: Call, x: Any, f: Any) -> Any:
    if call.pre_pad:
        x = tf.pad(x, call.pre_pad)
    op = getattr(tf.nn, call.op)
    return op(x, f, call.strides, call.padding, data_format=call.data_format, dilations=call.dilations)


_GRAPHS: dict[str, Any] = {}
_MAX_GRAPHS = 512


def _graph(
    tf: Any, call: Call, x_shape: tuple[int, ...], f_shape: tuple[int, ...], dtype: str, jit_compile: bool = False
) -> Any:
    """One tf.function per call and shapes, traced once: a function retraced for new shapes (or created
    anew per call) makes TensorFlow warn about excessive retracing on every few calls. `jit_compile`: XLA's."""
    key = repr((call, x_shape, f_shape, dtype, jit_compile))
    fn = _GRAPHS.get(key)
    if fn is None:
        if len(_GRAPHS) >= _MAX_GRAPHS:
            del _GRAPHS[next(iter(_GRAPHS))]
        fn = _GRAPHS[key] = tf.function(functools.partial(_invoke, tf, call), jit_compile=jit_compile)
    return fn


class TensorflowBackend(Backend):
    name = "tensorflow"
    framework = "tensorflow"
    module = "tensorflow"
    description = "tf.nn.conv1d/conv2d/conv3d, tf.nn.depthwise_conv2d, tf.nn.convolution (eager)"
    devices = ("cpu", "cuda")
    isa_switches = ("ONEDNN_MAX_CPU_ISA",)
    jit_compile = False  # every call compiled by XLA (tf.function(jit_compile=True)): the tensorflow.xla backend

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.framework = installed_distribution()
        self._pinned = False
        self._facts: dict[str, dict[str, str | None]] = {}
        self._caps: Capabilities | None = None

    @property
    def implementation_source(self) -> str:  # type: ignore[override]
        if _onednn_log() is not None:
            return "oneDNN's verbose implementation names (ONEDNN_VERBOSE=1 in the worker, kept off the terminal)"
        # oneDNN names its implementations only with ONEDNN_VERBOSE set before TensorFlow loads (a run's worker).
        return NOTHING_EXPOSED

    def implementations(self) -> list[str]:
        seen: list[str] = self.__dict__.pop("_seen", [])
        return seen

    def _note_implementations(self) -> None:
        """The oneDNN convolutions the call just made ran, by implementation (or NOT_ONEDNN)."""
        log = _onednn_log()
        if log is None:
            return
        names = parse_onednn_verbose(log.take())["onednn_implementations"]
        self.__dict__.setdefault("_seen", []).extend([f"onednn:{n}" for n in names] or [NOT_ONEDNN])

    def _framework(self) -> Any:
        """TensorFlow (imported once, about 5 s) with the numerically relevant flags pinned."""
        tf = _tensorflow()
        if not self._pinned:
            tf.config.experimental.enable_tensor_float_32_execution(False)
            if self.device == "cuda":
                # An op without a GPU kernel must fail, not silently run on the CPU.
                tf.config.set_soft_device_placement(False)
            self._pinned = True
        return tf

    @property
    def _device_name(self) -> str:
        return "/GPU:0" if self.device == "cuda" else "/CPU:0"

    def check_available(self) -> None:
        try:
            tf = self._framework()
        except ImportError as exc:
            raise BackendUnavailable(
                f"{self.name}: {self.framework} is not installed ({exc}); pip install {self.framework}"
            ) from exc
        if self.device == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise BackendUnavailable(f"{self.name}: TensorFlow sees no GPU ({self.framework} {self.version()})")

    def facts(self, dtype: str) -> dict[str, str | None]:
        """`measure` for `dtype` on this backend's device, once."""
        if dtype not in self._facts:
            tf = self._framework()
            with tf.device(self._device_name):
                self._facts[dtype] = measure(tf, dtype, self.jit_compile)
        return self._facts[dtype]

    def op_for(self, spec: ConvSpec) -> str:
        """The tf.nn function that runs `spec`. Depthwise problems that depthwise_conv2d refuses
        (int32, unequal strides on Eigen kernels) or computes wrongly (stride > 1 with dilation > 1:
        finding tensorflow-depthwise-stride-with-dilation-wrong-window) use conv2d's groups; dilated 3-D
        problems use tf.nn.convolution where Conv3D refuses dilation."""
        facts = self.facts(spec.dtype)
        if is_depthwise(spec) and facts["depthwise_conv2d"] is None:
            unequal = spec.stride[0] != spec.stride[1]
            wrong = max(spec.stride) > 1 and max(spec.dilation) > 1
            if not wrong and not (unequal and facts["depthwise_conv2d unequal strides"]):
                return "depthwise_conv2d"
        if spec.rank == 3 and max(spec.dilation) > 1 and facts["conv3d dilation"]:
            return "convolution"
        return ("conv1d", "conv2d", "conv3d")[spec.rank - 1]

    def refusal(self, spec: ConvSpec) -> str | None:
        """Why TensorFlow cannot run `spec` here (in its words), or None: the capabilities' constraint."""
        op = self.op_for(spec)
        base, facts = _base(op), self.facts(spec.dtype)
        for feature, applies in (
            (base, True),
            (f"{base} channels_first", spec.layout == "channels_first"),
            ("conv3d groups", spec.rank == 3 and spec.groups > 1),
            ("conv3d stride with dilation", spec.rank == 3 and max(spec.stride) > 1 and max(spec.dilation) > 1),
        ):
            message = facts.get(feature)
            if applies and message:
                return f"{spec.dtype} {feature}: {message}"
        return None

    def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = self._declare()
        return self._caps

    def _declare(self) -> Capabilities:
        dtypes = tuple(d for d in DTYPES if not (self.facts(d)["conv2d"] and self.facts(d)["conv3d"]))
        unsupported = [(f"dtype {d}", str(self.facts(d)["conv2d"])) for d in DTYPES if d not in dtypes]
        # Refusals the adapter routes around are not left out: depthwise problems fall back to conv2d's
        # groups, dilated 3-D ones to tf.nn.convolution.
        rerouted = ("depthwise_conv2d", "depthwise_conv2d unequal strides", "conv3d dilation")
        dtypes_by_refusal: dict[tuple[str, str], list[str]] = {}
        for d in dtypes:
            facts = self.facts(d)
            for feature, message in facts.items():
                op = feature.split()[0]
                # A sum kept in the half type is a known finding judged inside its region, not a refusal.
                sums = feature.endswith(" sums")
                if message and not sums and feature not in rerouted and not (feature != op and facts.get(op)):
                    dtypes_by_refusal.setdefault((feature, message), []).append(d)
        unsupported += [(f"{feature} ({', '.join(ds)})", m) for (feature, m), ds in dtypes_by_refusal.items()]
        unsupported += [("padding SAME_LOWER", f"TensorFlow has no SAME_LOWER: tf.nn.conv2d raises {NO_SAME_LOWER}")]
        unsupported += [("layout strided", NOT_STRIDED)]
        first = any(not self.facts(d)[f"{op} channels_first"] for d in dtypes for op in ("conv2d", "conv3d"))
        layouts = ("channels_last", "channels_first") if first else ("channels_last",)
        return Capabilities(
            dtypes=dtypes,
            padding=("explicit", "VALID", "SAME"),
            layouts=layouts,
            unsupported=tuple(unsupported),
            constraints=(self.refusal,),
            **tensorflow_backward.spaces(self, dtypes, layouts),
        )

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return tensorflow_backward.vjp(self, problem, cotangent)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        return tensorflow_backward.conv_transpose(self, problem, g)

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch, tensorflow_dispatch

        if self.device == "cuda":
            return native_dispatch("a CUDA device: the CPU's ISA does not choose its kernels")
        # Which half-type sums the kernels chosen here keep in the half type (the *-sums-in-float16 findings).
        sums = {
            f"{op} {d}": bool(self.facts(d).get(f"{op} sums"))
            for d in ("float16", "bfloat16")
            for op in ("conv3d", "depthwise_conv2d")
        }
        return {**tensorflow_dispatch(self.version()), "half sums kept in the half type": sums}

    def precision_flags(self) -> dict[str, Any]:
        tf = self._framework()
        flags: dict[str, Any] = {
            "tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
            "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "soft_device_placement": tf.config.get_soft_device_placement(),
        }
        try:  # private, but the only place that says whether oneDNN kernels are in use
            from tensorflow.python.util import _pywrap_util_port

            flags["onednn_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            pass
        return flags

    def plan(self, spec: ConvSpec) -> Call:
        op = self.op_for(spec)
        data_format = DATA_FORMATS[spec.layout][spec.rank]
        channels_at_end = data_format.endswith("C")

        def full(values: tuple[int, ...]) -> list[int]:
            return [1, *values, 1] if channels_at_end else [1, 1, *values]

        spatial = [list(p) for p in spec.pads]
        pads = [[0, 0], *spatial, [0, 0]] if channels_at_end else [[0, 0], [0, 0], *spatial]
        # depthwise_conv2d takes its dilations ("rate") for the two spatial dimensions only.
        dilations = list(spec.dilation) if op == "depthwise_conv2d" else full(spec.dilation)
        padding = spec.padding if isinstance(spec.padding, str) else pads
        call = Call(op, data_format, full(spec.stride), padding, dilations)
        if not isinstance(spec.padding, str) and op not in ("conv2d", "depthwise_conv2d"):
            return replace(call, padding="VALID", pre_pad=pads)
        return call

    def _filter(self, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
        """(C_out, C_in/g, *k) -> (*k, C_in/g, C_out); depthwise (*k, C_in, multiplier)."""
        f = np.transpose(w, (*range(2, 2 + spec.rank), 1, 0))
        if self.op_for(spec) == "depthwise_conv2d":
            # Output channel c·m + j of a depthwise conv reads input c with filter[..., c, j].
            f = f.reshape(*spec.kernel, spec.in_channels, spec.out_channels // spec.in_channels)
        return np.ascontiguousarray(f)

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self._execute(problem)

    def _execute(self, problem: ConvProblem, graph: bool = False) -> np.ndarray:
        """The problem's tf.nn call, eagerly or (`graph`, for Grappler's rewrites) in a tf.function."""
        tf = self._framework()
        spec = problem.spec
        call = self.plan(spec)
        x = problem.x if spec.layout == "channels_first" else channels_last(problem.x)
        f = self._filter(problem.w, spec)
        graph = graph or self.jit_compile
        jit = self.jit_compile
        conv = _graph(tf, call, x.shape, f.shape, spec.dtype, jit) if graph else functools.partial(_invoke, tf, call)
        log = _onednn_log()
        if log is not None:
            log.take()  # what ran before (the worker's probes of TensorFlow, a gradient) is not this call's
        with tf.device(self._device_name):
            y = conv(tf.constant(x), tf.constant(f))
            out = y.numpy()  # waits for the device and copies to the host
        self._note_implementations()
        return out if spec.layout == "channels_first" else np.ascontiguousarray(from_channels_last(out))

    # ---- reduced-precision modes (property `precision_modes`) ----------------------------------

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        cuda = self.device == "cuda"
        # The rewrite runs TensorFlow's bfloat16 convolution kernels: where they refuse (oneDNN has no bfloat16
        # primitives below AVX-512, e.g. under ONEDNN_MAX_CPU_ISA=AVX2), so does every rewritten graph.
        bf16_refused = None if cuda else self.facts("bfloat16")["conv2d"]
        onednn_unsupported = "a oneDNN (CPU) rewrite" if cuda else None
        if bf16_refused:
            onednn_unsupported = (
                f"the rewrite runs TensorFlow's bfloat16 Conv2D/Conv3D, which refuse here: {bf16_refused}"
            )
        return (
            PrecisionMode(
                ONEDNN_BF16_MODE,
                "tf.config.optimizer.set_experimental_options({'auto_mixed_precision_onednn_bfloat16': True}): "
                "Grappler rewrites a tf.function's float32 convolution to bfloat16 (Cast in, Cast out)",
                ("float32",),
                u_in=BF16_UNIT_ROUNDOFF,
                accumulator="float32",
                output_rounding="bfloat16",
                unsupported=onednn_unsupported,
                constraints=(graph_conv3d_dilations, bf16_depth_padded_conv3d),
            ),
            PrecisionMode(
                TF32_MODE,
                "tf.config.experimental.enable_tensor_float_32_execution(True) (TensorFlow's default): float32 "
                "convolutions may round their inputs to TF32",
                ("float32",),
                u_in=TF32_UNIT_ROUNDOFF,
                accumulator="float32",
                unsupported=None if cuda else TF32_CPU_REASON,
            ),
            PrecisionMode(
                KERAS_POLICY_MODE,
                "tf.keras.mixed_precision.set_global_policy('mixed_bfloat16')",
                ("float32",),
                u_in=BF16_UNIT_ROUNDOFF,
                accumulator="float32",
                unsupported=KERAS_POLICY_REASON,
            ),
        )

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        tf = self._framework()
        if mode == ONEDNN_BF16_MODE and self.device == "cpu":
            option = "auto_mixed_precision_onednn_bfloat16"
            tf.config.optimizer.set_experimental_options({option: True})
            try:
                return self._execute(problem, graph=True)
            finally:
                tf.config.optimizer.set_experimental_options({option: False})
        if mode == TF32_MODE and self.device == "cuda":
            tf.config.experimental.enable_tensor_float_32_execution(True)
            try:
                return self._execute(problem)
            finally:
                tf.config.experimental.enable_tensor_float_32_execution(False)
        return super().run_mode(problem, mode)

    def native_snippet(self, problem: ConvProblem) -> str:
        spec = problem.spec
        call = self.plan(spec)
        lines = [
            standalone_problem_code(problem),
            "import numpy as np",
            "import tensorflow as tf",
            "tf.config.experimental.enable_tensor_float_32_execution(False)",
        ]
        if spec.layout == "channels_first":
            lines.append("x = tf.constant(problem.x)")
        else:
            lines.append("x = tf.constant(np.moveaxis(problem.x, 1, -1))  # channels last")
        perm = (*range(2, 2 + spec.rank), 1, 0)
        lines.append(f"f = np.transpose(problem.w, {perm})  # (*kernel, C_in/groups, C_out)")
        if call.op == "depthwise_conv2d":
            shape = (*spec.kernel, spec.in_channels, spec.out_channels // spec.in_channels)
            lines.append(f"f = f.reshape({shape})  # (*kernel, C_in, multiplier)")
        lines.append("f = tf.constant(f)")
        if call.pre_pad:
            lines.append(f"x = tf.pad(x, {call.pre_pad})  # tf.nn.{call.op} takes no explicit pads")
        lines.append(f"y = tf.nn.{call.op}(x, f, {call.arguments()}).numpy()")
        if spec.layout != "channels_first":
            lines.append("y = np.moveaxis(y, -1, 1)  # back to (N, C_out, *spatial)")
        return "\n".join(lines)
