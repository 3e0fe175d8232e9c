"""Converted models: a convolution layer built in one framework, converted, and run in another.

Each backend here builds the problem's layer where a model would start (a torch `nn.ConvNd`, a Keras `ConvND`
layer on TensorFlow, an ONNX `Conv` graph with its weight as an initializer), converts it the way a user ports a
model (`torch.onnx.export`, `tf2onnx`, `onnx2torch`, OpenVINO's ONNX reader) and runs the converted model
(`run`). `run_source` runs the layer before conversion; the property `conversion_end_to_end` holds both sides to
their bounds of the reference and to each other.

What a conversion translates per geometry (padding attributes or modes, weight layout, Pad nodes, Transposes) is
done once per `ConvSpec` and cached. Where the converted model carries the weight as one initializer feeding its
Conv, and that initializer was found bit-equal to the source layer's weight in the canonical (C_out, C_in/groups,
*kernel) order when the geometry was first converted, a later problem of the same geometry gets its weight written
into that initializer instead of a new conversion (a dynamo export costs ~1 s). A conversion that reorders the
weight in any other way is converted afresh for every problem, so a transposed kernel is always seen.

Capabilities are measured: each dtype, and each padding or geometry feature per rank, is tried once on a tiny problem
through both sides, and what raises is recorded as unsupported with the framework's own words.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities, PrecisionMode
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import make_problem

if TYPE_CHECKING:
    import onnx

# Each dtype is tried on this geometry (rank 2, plain), before any feature probe.
_DTYPES = ("float32", "float16", "float64", "bfloat16")
_NO_INTS = (
    "dtype int32/int64/complex",
    "ONNX Conv's type constraint T is bfloat16/float16/float/double (crosscheck.backends.onnx_backends): "
    "no converter here emits an integer or complex Conv",
)
_NCHW_ONLY = (
    "layout channels_last/strided",
    "the converted model is an ONNX graph (or a module converted from one) whose Conv input is (N, C, *spatial): "
    "the layout is the conversion's own choice, not the caller's",
)
_NO_GRADIENTS = (
    "gradients",
    "a converted model is checked for inference: the converters emit forward graphs (onnxruntime and OpenVINO "
    "compute no vector-Jacobian product)",
)
_NO_TRANSPOSED = ("transposed convolution", "the converted layers are forward convolutions (ConvNd, Keras ConvND)")


# ---------------------------------------------------------------------------------------------------- probes

# Features tried per rank on a tiny float32 problem: (label, does a spec have it, the probe's extra settings).
_FEATURES: tuple[tuple[str, Callable[[ConvSpec], bool], dict[str, Any]], ...] = (
    ("groups > 1", lambda s: s.groups > 1, {"groups": 2}),
    ("stride > 1 with dilation > 1", lambda s: max(s.stride) > 1 and max(s.dilation) > 1, {"stride": 2, "dilation": 2}),
    ("padding SAME", lambda s: s.padding == "SAME", {"padding": "SAME"}),
    ("padding SAME_LOWER", lambda s: s.padding == "SAME_LOWER", {"padding": "SAME_LOWER"}),
    (
        "padding SAME with dilation > 1",
        lambda s: s.padding in ("SAME", "SAME_LOWER") and max(s.dilation) > 1,
        {"padding": "SAME", "dilation": 2},
    ),
    (
        "padding SAME with stride > 1",
        lambda s: s.padding in ("SAME", "SAME_LOWER") and max(s.stride) > 1,
        {"padding": "SAME", "stride": 2},
    ),
    ("asymmetric explicit pads", lambda s: not isinstance(s.padding, str) and any(a != b for a, b in s.padding), {}),
)


def _probe_spec(rank: int, dtype: str, settings: dict[str, Any]) -> ConvSpec:
    """A tiny problem of `rank` with one feature: odd sizes (SAME's odd total pad), kernel 2, asymmetric pads."""
    groups = settings.get("groups", 1)
    padding = settings.get("padding", ((1, 2),) * rank)
    return ConvSpec(
        1,
        2 * groups,
        2 * groups,
        (7,) * rank,
        (2,) * rank,
        stride=(settings.get("stride", 1),) * rank,
        dilation=(settings.get("dilation", 1),) * rank,
        padding=padding,
        groups=groups,
        dtype=dtype,
    )


def _attempt(backend: ConvertedBackend, spec: ConvSpec) -> str | None:
    """What converting and running `spec` on both sides raises, in the framework's words, or None."""
    problem = make_problem(spec, 0)
    for side, call in (("source", backend.run_source), ("converted", backend.run)):
        try:
            y = np.asarray(call(problem))
        except Exception as exc:  # noqa: BLE001 - whatever the framework raises is the reason, quoted
            message = (str(exc).strip().splitlines() or [""])[0][:300]
            return f"{backend.describe_side(side)} raises {type(exc).__name__}: {message}"
        if y.shape != spec.y_shape or y.dtype != dtype_info(spec.dtype).numpy:
            return f"{backend.describe_side(side)} returns {y.dtype} {y.shape} for {spec.dtype} {spec.y_shape}"
    return None


def measured_capabilities(backend: ConvertedBackend) -> Capabilities:
    """The backend's space as measured here (see the module's docstring); called once per backend and process."""
    dtypes, unsupported = [], []
    for dtype in _DTYPES:
        why = backend.static_dtype_refusal(dtype) or _attempt(backend, _probe_spec(2, dtype, {}))
        if why:
            unsupported.append((f"dtype {dtype}", why))
        else:
            dtypes.append(dtype)
    refused: dict[tuple[str, int], str] = {}
    for label, _has, settings in _FEATURES:
        for rank in backend.probe_ranks:
            static = backend.static_feature_refusal(label)
            why = static or _attempt(backend, _probe_spec(rank, "float32", settings))
            if why:
                refused[(label, rank)] = why
    for label, _has, _settings in _FEATURES:
        ranks = [r for r in backend.probe_ranks if (label, r) in refused]
        if ranks:
            where = "" if len(ranks) == len(backend.probe_ranks) else f" (rank {', '.join(map(str, ranks))})"
            unsupported.append((label + where, refused[(label, ranks[0])]))
    rule = functools.partial(_refused_feature, refused, len(backend.probe_ranks) == 1)
    named = ("VALID", *[m for m in ("SAME", "SAME_LOWER") if not any(k == ("padding " + m) for k, _ in refused)])
    return Capabilities(
        dtypes=tuple(dtypes),
        padding=("explicit", *named),
        groups=not all(("groups > 1", r) in refused for r in backend.probe_ranks),
        unsupported=(*unsupported, _NO_INTS, _NCHW_ONLY, _NO_GRADIENTS, _NO_TRANSPOSED),
        constraints=(rule,),
    )


def _refused_feature(refused: dict[tuple[str, int], str], rank_free: bool, spec: ConvSpec) -> str | None:
    """The measured reason refusing one of `spec`'s features at its rank (every rank when only one was probed)."""
    for label, has, _settings in _FEATURES:
        if has(spec):
            for (lab, rank), why in refused.items():
                if lab == label and (rank_free or rank == spec.rank):
                    return why
    return None


# ------------------------------------------------------------------------------------------------- ONNX glue


def conv_weight_initializer(model: onnx.ModelProto) -> str | None:
    """The initializer the model's single Conv takes as W, or None (several Convs, or W computed by other nodes)."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if len(convs) != 1 or len(convs[0].input) < 2:
        return None
    name = convs[0].input[1]
    return name if any(i.name == name for i in model.graph.initializer) else None


def initializer_array(model: onnx.ModelProto, name: str) -> np.ndarray:
    from onnx import numpy_helper

    (init,) = [i for i in model.graph.initializer if i.name == name]
    return np.asarray(numpy_helper.to_array(init))


def with_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> onnx.ModelProto:
    """A copy of `model` whose initializer `name` holds `value`."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and a.dtype.itemsize == b.dtype.itemsize
        and bool(np.all(a.view(np.uint8) == b.view(np.uint8)))
    )


def conv_model_with_weight(spec: ConvSpec, w: np.ndarray, opset: int | None = None) -> onnx.ModelProto:
    """crosscheck's one-node Conv model (crosscheck.backends.onnx_backends.conv_model) with W an initializer,
    as a model file carries it, in opset `opset` (None: that module's)."""
    from onnx import numpy_helper

    from crosscheck.backends.onnx_backends import conv_model

    model = conv_model(spec)
    del model.graph.input[1]  # W
    model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), "W"))
    if opset is not None:
        model.opset_import[0].version = opset
    return model


def ort_session(model_bytes: bytes) -> Any:
    """An onnxruntime CPU session on a converted model, optimized as a user's session is by default
    (ORT_ENABLE_ALL: constant weights may be re-laid out, e.g. NCHWc), one thread, deterministic."""
    import onnxruntime as ort

    from crosscheck.backends.onnx_backends import _ort_options

    so = _ort_options()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort_session(model.SerializeToString())
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    return np.asarray(y)


@functools.lru_cache(maxsize=256)
def _reference_evaluator(model_bytes: bytes) -> Any:
    import onnx
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(onnx.load_from_string(model_bytes))


def onnx_reference_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    (y,) = _reference_evaluator(model.SerializeToString()).run(None, {"X": x})
    return np.asarray(y)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters print progress and deprecation notes on every call: kept off the run's output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


class Templates:
    """Converted models per geometry, whose weight initializer later problems overwrite (see the module's docstring)."""

    def __init__(self, convert: Callable[[ConvProblem], onnx.ModelProto], size: int = 128) -> None:
        self._convert = convert
        self._size = size
        self._cache: OrderedDict[ConvSpec, tuple[onnx.ModelProto, str] | None] = OrderedDict()
        self.conversions = 0

    def model(self, problem: ConvProblem) -> onnx.ModelProto:
        spec = problem.spec
        if spec in self._cache:
            self._cache.move_to_end(spec)
            entry = self._cache[spec]
            if entry is not None:
                return with_initializer(entry[0], entry[1], problem.w)
        self.conversions += 1
        model = self._convert(problem)
        if spec not in self._cache:
            name = conv_weight_initializer(model)
            reusable = name is not None and same_bits(initializer_array(model, name), problem.w)
            self._cache[spec] = (model, name) if reusable and name else None
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return model


# ------------------------------------------------------------------------------------------------- backends


def onnxruntime_dtype_refusal(dtype: str) -> str | None:
    """Why onnxruntime's CPU provider cannot run a `dtype` Conv at all (the onnxruntime adapter's measured reason):
    a converted model in that dtype cannot run either, and is not converted to find out."""
    from crosscheck.backends.onnx_backends import OnnxRuntimeBackend

    why = OnnxRuntimeBackend().capabilities().reason_for(f"dtype {dtype}")
    return f"onnxruntime runs the converted model: {why}" if why else None


# Measured once per backend class and process (several instances share it: `crosscheck backends`, tests).
_MEASURED: dict[type, Capabilities] = {}


class ConvertedBackend(Backend):
    """Shared plumbing: measured capabilities, and how each side is named in refusals."""

    target = ""  # what runs the converted model
    probe_ranks: tuple[int, ...] = (1, 2, 3)
    converter_modules: tuple[str, ...] = ()

    def check_available(self) -> None:
        import importlib

        for module in (self.module, *self.converter_modules):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise BackendUnavailable(
                    f"{self.name}: {module} is not installed ({exc}); pip install -c constraints/ci.txt "
                    "-e '.[converters]' (README: converted models)"
                ) from exc

    def capabilities(self) -> Capabilities:
        caps = _MEASURED.get(type(self))
        if caps is None:
            with _quiet():
                caps = _MEASURED[type(self)] = measured_capabilities(self)
        return caps

    def describe_side(self, side: str) -> str:
        return self.converted_from if side == "source" else f"the converted model in {self.target}"

    def static_dtype_refusal(self, dtype: str) -> str | None:
        return None

    def static_feature_refusal(self, label: str) -> str | None:
        return None

    # The distributions on both sides of the conversion besides `framework` (whose version is the backend's).
    companions: tuple[str, ...] = ()

    def precision_flags(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        versions = {}
        for dist in (self.framework, *self.companions):
            try:
                versions[dist] = version(dist)
            except PackageNotFoundError:
                versions[dist] = "not installed"
        return {"converted_from": self.converted_from, "runs_in": self.target, "versions": versions}


class OnnxruntimeTarget(ConvertedBackend):
    """A conversion to ONNX whose model onnxruntime runs."""

    target = "onnxruntime (CPUExecutionProvider, ORT_ENABLE_ALL)"

    def static_dtype_refusal(self, dtype: str) -> str | None:
        return onnxruntime_dtype_refusal(dtype)


# ---- torch.onnx -------------------------------------------------------------------------------------------


def torch_conv_module(spec: ConvSpec, w: np.ndarray) -> Any:
    """`nn.ConvNd` (bias off) with `w`, as a model would hold it: symmetric pads as its `padding`, an asymmetric
    rest as `nn.ZeroPadNd` in front (what torch users write), SAME as padding='same', VALID as 'valid'."""
    import torch
    from torch import nn

    from crosscheck.backends.torch_backend import split_pads, to_torch

    conv_cls: Any = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spec.rank - 1]  # the rank is the problem's
    padding: str | tuple[int, ...]
    front: list[nn.Module] = []
    if spec.padding == "SAME":
        padding = "same"
    elif spec.padding == "VALID":
        padding = "valid"
    elif isinstance(spec.padding, str):
        raise NotImplementedError(f"torch.nn.Conv{spec.rank}d has no padding {spec.padding}")
    else:
        padding, extra = split_pads(spec)
        if any(extra):
            pad_cls: Any = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d)[spec.rank - 1]
            front.append(pad_cls(tuple(extra)))
    weight = to_torch(w, "cpu")
    conv = conv_cls(
        spec.in_channels,
        spec.out_channels,
        spec.kernel,
        stride=spec.stride,
        padding=padding,
        dilation=spec.dilation,
        groups=spec.groups,
        bias=False,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
    return nn.Sequential(*front, conv).eval()


class TorchOnnxBackend(OnnxruntimeTarget):
    name = "torch.onnx"
    framework = "torch"
    module = "torch"
    converter_modules = ("onnxscript", "onnxruntime", "onnx")
    companions = ("onnxscript", "onnx", "onnxruntime")
    converted_from = "torch.nn.ConvNd (eager torch)"
    description = (
        "torch.nn.ConvNd (bias off; asymmetric pads as nn.ZeroPadNd) exported with torch.onnx.export(dynamo=True, "
        "torch 2.13's default: torch.export + onnxscript) and run in onnxruntime"
    )
    # nn.Conv1d/2d/3d all lower to aten.convolution, which the exporter translates rank-generically: the features
    # are measured on rank 2 only (each dynamo export costs about a second).
    probe_ranks = (2,)

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._templates = Templates(self._export)

    def static_feature_refusal(self, label: str) -> str | None:
        if label == "padding SAME_LOWER":
            return "torch.nn.ConvNd has no SAME_LOWER: padding='same' puts the odd extra pad at the end, as TF SAME"
        return None

    def _export(self, problem: ConvProblem) -> onnx.ModelProto:
        import torch

        from crosscheck.backends.torch_backend import to_torch

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notes
        module = torch_conv_module(problem.spec, problem.w)
        with _quiet():
            program = torch.onnx.export(module, (to_torch(problem.x, "cpu"),), dynamo=True, input_names=["X"])
        assert program is not None
        return program.model_proto

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        import torch

        from crosscheck.backends.torch_backend import to_numpy, to_torch

        with torch.no_grad():
            y = torch_conv_module(problem.spec, problem.w)(to_torch(problem.x, "cpu"))
        return to_numpy(y, problem.spec.dtype)

    def run(self, problem: ConvProblem) -> np.ndarray:
        return ort_run(self._templates.model(problem), problem.x)

    def precision_flags(self) -> dict[str, Any]:
        return {
            **super().precision_flags(),
            "exporter": "torch.onnx.export(dynamo=True): torch.export + onnxscript (torch 2.13's default exporter)",
        }


# ---- tf2onnx ----------------------------------------------------------------------------------------------


def _keras() -> Any:
    """Keras on TensorFlow (a KERAS_BACKEND of another framework would not give tf2onnx a TensorFlow graph)."""
    from crosscheck.backends.tensorflow_backend import _tensorflow

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _tensorflow()  # quietly, as the TensorFlow adapter loads it
    import keras

    if keras.backend.backend() != "tensorflow":
        raise BackendUnavailable(
            f"tf2onnx: Keras runs on {keras.backend.backend()} here (KERAS_BACKEND), not TensorFlow"
        )
    return keras


def keras_conv_model(spec: ConvSpec, w: np.ndarray) -> Any:
    """A Keras model of one ConvND layer (bias off, channels_last, Keras's default) with `w`: padding 'same' or
    'valid', explicit pads as a ZeroPaddingND layer in front of a 'valid' convolution."""
    keras = _keras()
    layers = keras.layers
    channels_last = (spec.batch, *spec.in_size, spec.in_channels)
    stack: list[Any] = [keras.Input(batch_shape=channels_last, dtype=spec.dtype)]
    if isinstance(spec.padding, str):
        if spec.padding not in ("SAME", "VALID"):
            raise NotImplementedError(f"Keras Conv{spec.rank}D has no padding {spec.padding}")
        padding = spec.padding.lower()
    else:
        padding = "valid"
        if any(lo or hi for lo, hi in spec.padding):
            pads = spec.padding[0] if spec.rank == 1 else spec.padding
            stack.append((layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)[spec.rank - 1](pads))
    conv = (layers.Conv1D, layers.Conv2D, layers.Conv3D)[spec.rank - 1](
        spec.out_channels,
        spec.kernel,
        strides=spec.stride,
        padding=padding,
        dilation_rate=spec.dilation,
        groups=spec.groups,
        use_bias=False,
        dtype=spec.dtype,
    )
    stack.append(conv)
    model = keras.Sequential(stack)
    conv.set_weights([np.transpose(w, (*range(2, 2 + spec.rank), 1, 0))])  # Keras: (*kernel, C_in/groups, C_out)
    return model


@functools.cache
def _onnx_ops() -> frozenset[str]:
    from onnx import defs

    return frozenset(schema.name for schema in defs.get_all_schemas_with_history() if schema.domain == "")


def _to_channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


class Tf2OnnxBackend(OnnxruntimeTarget):
    name = "tf2onnx"
    framework = "tf2onnx"
    module = "tf2onnx"
    converter_modules = ("tensorflow", "keras", "onnxruntime")
    companions = ("tensorflow-cpu", "keras", "onnx", "onnxruntime")
    converted_from = "keras.layers.ConvND on TensorFlow (channels_last)"
    description = (
        "a Keras ConvND layer (TensorFlow backend, bias off, channels_last; explicit pads as ZeroPaddingND) converted "
        "with tf2onnx.convert.from_function and run in onnxruntime"
    )

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._templates = Templates(self._convert)

    def check_available(self) -> None:
        try:
            _keras()  # before tf2onnx imports TensorFlow: quietly, as the TensorFlow adapter loads it
        except ImportError as exc:
            raise BackendUnavailable(f"{self.name}: Keras on TensorFlow is not installed ({exc})") from exc
        super().check_available()

    def static_feature_refusal(self, label: str) -> str | None:
        if label == "padding SAME_LOWER":
            return "Keras ConvND has no SAME_LOWER: padding='same' is TensorFlow's SAME (the odd extra pad at the end)"
        return None

    def _convert(self, problem: ConvProblem) -> onnx.ModelProto:
        import tf2onnx

        _keras()
        import tensorflow as tf

        model = keras_conv_model(problem.spec, problem.w)
        signature = [tf.TensorSpec(model.inputs[0].shape, problem.spec.dtype, name="X")]
        fn = tf.function(lambda t: model(t, training=False), input_signature=signature)
        from crosscheck.core.hardware import held_output

        # tf2onnx runs Grappler, whose C++ session logs a line per conversion on file descriptor 2: dropped.
        with _quiet(), held_output(2):
            onnx_model, _ = tf2onnx.convert.from_function(fn, input_signature=signature)
        left = sorted({n.op_type for n in onnx_model.graph.node if n.domain in ("", "ai.onnx")} - _onnx_ops())
        if left:
            # Keras runs grouped convolutions on TensorFlow's CPU through a tf.function(jit_compile=True) (TensorFlow's
            # own CPU kernels have none): tf2onnx leaves that call unconverted.
            raise NotImplementedError(f"tf2onnx left TensorFlow ops unconverted in the ONNX graph: {', '.join(left)}")
        converted: onnx.ModelProto = onnx_model
        return converted

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        model = keras_conv_model(problem.spec, problem.w)
        y = np.asarray(model(_to_channels_last(problem.x), training=False))
        return np.ascontiguousarray(np.moveaxis(y, -1, 1))

    def run(self, problem: ConvProblem) -> np.ndarray:
        y = ort_run(self._templates.model(problem), _to_channels_last(problem.x))
        return np.ascontiguousarray(np.moveaxis(y, -1, 1))


# ---- onnx2torch -------------------------------------------------------------------------------------------

# onnx2torch's newest Conv converter is Conv-11 (`add_converter(operation_type='Conv', version=11)`); Conv-22 only
# widened the types (bfloat16), so the same graph is declared at opset 11.
ONNX2TORCH_OPSET = 11


@functools.cache
def _onnx2torch() -> Any:
    """onnx2torch, imported where torchvision is missing: it imports torchvision at import time for its
    NonMaxSuppression and RoiAlign converters only (Conv never reaches them), and no torchvision wheel on this
    project's machines works with torch's CPU build (PyPI's is a CUDA build: 'operator torchvision::nms does not
    exist'). A placeholder stands in while onnx2torch loads and is removed again, so nothing else sees it."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        placeholder, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

        def missing(*args: object, **kwargs: object) -> None:
            raise NotImplementedError("torchvision is not installed: onnx2torch's NMS/RoiAlign converters cannot run")

        ops.nms = ops.roi_align = ops.box_convert = missing  # type: ignore[attr-defined]
        placeholder.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = placeholder, ops
        try:
            import onnx2torch
        finally:
            for name in ("torchvision", "torchvision.ops"):
                if sys.modules.get(name) in (placeholder, ops):
                    del sys.modules[name]
        return onnx2torch
    import onnx2torch

    return onnx2torch


class Onnx2TorchBackend(ConvertedBackend):
    name = "onnx2torch"
    framework = "onnx2torch"
    module = "onnx"
    converter_modules = ("torch",)
    companions = ("onnx", "torch")
    converted_from = f"an ONNX Conv graph (opset {ONNX2TORCH_OPSET}, W an initializer) in onnx.reference"
    target = "torch (the module onnx2torch.convert returns, eager)"
    description = (
        f"crosscheck's one-node ONNX Conv (opset {ONNX2TORCH_OPSET}, the weight an initializer) converted with "
        "onnx2torch.convert and run as a torch module"
    )

    def check_available(self) -> None:
        super().check_available()
        try:
            _onnx2torch()
        except Exception as exc:  # an import that fails for any reason is the reason
            raise BackendUnavailable(f"{self.name}: onnx2torch does not import ({type(exc).__name__}: {exc})") from exc

    def _model(self, problem: ConvProblem) -> onnx.ModelProto:
        return conv_model_with_weight(problem.spec, problem.w, ONNX2TORCH_OPSET)

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        return onnx_reference_run(self._model(problem), problem.x)

    def run(self, problem: ConvProblem) -> np.ndarray:
        import torch

        from crosscheck.backends.torch_backend import to_numpy, to_torch

        with _quiet():
            module = _onnx2torch().convert(self._model(problem))
        with torch.no_grad():
            y = module(to_torch(problem.x, "cpu"))
        return to_numpy(y, problem.spec.dtype)


# ---- OpenVINO ---------------------------------------------------------------------------------------------

# Pinned for `run`: OpenVINO's CPU plugin defaults INFERENCE_PRECISION_HINT to bf16 on CPUs with AVX-512 BF16 or AMX
# (measured here: <Type: 'bfloat16'>), i.e. a float32 model computes in bfloat16 unless told otherwise.
OPENVINO_DEFAULT_MODE = "openvino-default-precision"
OPENVINO_CONFIG: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1}


@functools.cache
def _openvino_core() -> Any:
    import openvino

    return openvino.Core()


def _float64_rounded_to_float32() -> bool:
    """Whether OpenVINO's CPU plugin computes a float64 Conv in float32: 1 + 2^-30 survives float64, not float32."""
    spec = ConvSpec(1, 1, 1, (1,), (1,), dtype="float64")
    model = conv_model_with_weight(spec, np.ones((1, 1, 1)))
    compiled = _openvino_core().compile_model(
        _openvino_core().read_model(model.SerializeToString()), "CPU", OPENVINO_CONFIG
    )
    y = np.asarray(compiled({"X": np.full((1, 1, 1), 1 + 2.0**-30)})[0])
    return bool(y.item() != 1 + 2.0**-30)


class OpenvinoBackend(ConvertedBackend):
    name = "openvino"
    framework = "openvino"
    module = "openvino"
    converter_modules = ("onnx",)
    companions = ("onnx",)
    converted_from = "an ONNX Conv graph (opset 22, W an initializer) in onnx.reference"
    target = "OpenVINO (Core.read_model of the ONNX file, CPU plugin, INFERENCE_PRECISION_HINT f32)"
    description = (
        "crosscheck's one-node ONNX Conv (opset 22, the weight an initializer) read by OpenVINO's ONNX frontend and "
        "compiled for its CPU plugin (inference precision pinned to f32, one thread)"
    )

    def static_dtype_refusal(self, dtype: str) -> str | None:
        if dtype == "float64" and _float64_rounded_to_float32():
            return (
                "OpenVINO's CPU plugin computes float64 models in float32 (measured: a float64 Conv of 1 + 2^-30 "
                "returns 1.0); its float64 results would be judged by a bound it does not claim"
            )
        return None

    def _model(self, problem: ConvProblem) -> onnx.ModelProto:
        return conv_model_with_weight(problem.spec, problem.w)

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        return onnx_reference_run(self._model(problem), problem.x)

    def run(self, problem: ConvProblem) -> np.ndarray:
        return self._compiled_run(problem, OPENVINO_CONFIG)

    def _compiled_run(self, problem: ConvProblem, config: dict[str, Any]) -> np.ndarray:
        core = _openvino_core()
        compiled = core.compile_model(core.read_model(self._model(problem).SerializeToString()), "CPU", config)
        return np.asarray(compiled({"X": problem.x})[0])

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        default = str(_openvino_core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
        mode = PrecisionMode(
            OPENVINO_DEFAULT_MODE,
            "a float32 model compiled with the CPU plugin's own INFERENCE_PRECISION_HINT, bf16 on CPUs with AVX-512 "
            "BF16 or AMX: inputs and weights rounded to bfloat16, sums and output in float32 (measured: the outputs "
            "are not bfloat16 values)",
            ("float32",),
            u_in=2.0**-8,
            accumulator="float32",
        )
        if "bfloat16" not in default:
            mode = replace(mode, unsupported=f"the CPU plugin's default INFERENCE_PRECISION_HINT here is {default}")
        return (mode,)

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        if mode != OPENVINO_DEFAULT_MODE:
            raise NotImplementedError(f"{self.name}: no precision mode {mode!r}")
        config = {k: v for k, v in OPENVINO_CONFIG.items() if k != "INFERENCE_PRECISION_HINT"}
        return self._compiled_run(problem, config)

    def precision_flags(self) -> dict[str, Any]:
        default = _openvino_core().get_property("CPU", "INFERENCE_PRECISION_HINT")
        return {
            **super().precision_flags(),
            **{k: str(v) for k, v in OPENVINO_CONFIG.items()},
            "cpu_default_inference_precision_hint": str(default),
        }
