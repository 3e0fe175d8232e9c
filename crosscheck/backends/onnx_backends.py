"""ONNX: a one-node `Conv` model built in memory with onnx.helper, run by onnxruntime and by
onnx's own reference evaluator (`onnx.reference.ReferenceEvaluator`, plain NumPy im2col + matmul).

Both run the same model (`conv_model`), so a difference between them is a difference between the
two runtimes, not between two translations of the problem. Named padding modes go in as ONNX's own
`auto_pad` (SAME -> SAME_UPPER); explicit pads as `pads` in ONNX's order, all begins then all ends.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import standalone_problem_code

if TYPE_CHECKING:
    import onnx

# Conv-22 is the newest Conv (it added bfloat16); IR 10 is the IR that came with opset 22 and
# onnxruntime 1.32 loads both.
OPSET = 22
IR_VERSION = 10

# TensorProto.DataType numbers, spelled out so that this module imports nothing from onnx.
_ELEM_TYPE = {"float32": 1, "float16": 10, "float64": 11, "bfloat16": 16, "int32": 6, "int64": 7}
_ELEM_NAME = {"float32": "FLOAT", "float16": "FLOAT16", "float64": "DOUBLE", "bfloat16": "BFLOAT16"}
_AUTO_PAD = {"VALID": "VALID", "SAME": "SAME_UPPER", "SAME_LOWER": "SAME_LOWER"}

_NCHW_ONLY = (
    (
        "layout channels_last",
        "ONNX Conv has no layout attribute: X is always (N, C, D1, ..., Dn); onnxruntime's contrib "
        "com.microsoft.NhwcConv has no CPU kernel: 'NOT_IMPLEMENTED : Could not find an implementation for "
        "NhwcConv(1) node with name '''",
    ),
    (
        "layout strided",
        "ONNX tensors are dense: the Python bindings copy a non-contiguous array into a contiguous tensor "
        "before Conv sees it (measured: results identical), so it would only repeat channels_first",
    ),
)
# Measured with onnxruntime 1.32 / onnx (opset 22): the standard's Conv excludes complex; onnx.reference's
# NumPy evaluator would run a complex model anyway, but such a model is not valid ONNX.
_NO_COMPLEX = (
    "dtype complex64/complex128",
    "ONNX Conv's type constraint T is bfloat16/float16/float/double: onnxruntime raises 'INVALID_GRAPH : This is "
    "an invalid model. Type Error: Type 'tensor(complex64)' of input parameter (X) of operator (Conv) in node () "
    "is invalid.'",
)
_NO_INTS = (
    "dtype int32/int64",
    "ONNX Conv's type constraint T is bfloat16/float16/float/double: onnx.checker raises "
    "'[ShapeInferenceError] (op_type:Conv): X typestr: T, has unsupported type: tensor(int32)' and onnxruntime "
    "'INVALID_GRAPH : ... Type 'tensor(int32)' of input parameter (X) of operator (Conv) in node () is invalid.'",
)


def conv_attributes(spec: ConvSpec) -> dict[str, Any]:
    """The Conv node's attributes for `spec`; named padding modes stay named (auto_pad)."""
    attrs: dict[str, Any] = {
        "kernel_shape": list(spec.kernel),
        "strides": list(spec.stride),
        "dilations": list(spec.dilation),
        "group": spec.groups,
    }
    if isinstance(spec.padding, str):
        attrs["auto_pad"] = _AUTO_PAD[spec.padding]
    else:
        attrs["auto_pad"] = "NOTSET"
        attrs["pads"] = [lo for lo, _ in spec.padding] + [hi for _, hi in spec.padding]
    return attrs


def _one_node_model(
    op: str,
    attributes: dict[str, Any],
    dtype: str,
    *,
    x: tuple[int, ...],
    w: tuple[int, ...],
    y: tuple[int, ...],
) -> onnx.ModelProto:
    """A model of the single node Y = op(X, W) with static shapes, in `dtype`."""
    from onnx import helper

    elem = _ELEM_TYPE[dtype]
    node = helper.make_node(op, ["X", "W"], ["Y"], **attributes)
    graph = helper.make_graph(
        [node],
        op.lower(),
        [
            helper.make_tensor_value_info("X", elem, list(x)),
            helper.make_tensor_value_info("W", elem, list(w)),
        ],
        [helper.make_tensor_value_info("Y", elem, list(y))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def conv_model(spec: ConvSpec) -> onnx.ModelProto:
    """A one-node model Y = Conv(X, W) with `spec`'s static shapes, dtype and attributes."""
    return _one_node_model("Conv", conv_attributes(spec), spec.dtype, x=spec.x_shape, w=spec.w_shape, y=spec.y_shape)


def conv_transpose_attributes(spec: ConvSpec) -> dict[str, Any]:
    """ConvTranspose's attributes for the transposed convolution of `spec`: always explicit pads (the
    ones crosscheck resolves; ConvTranspose's auto_pad derives them from its own output size rule)
    and crosscheck's output_padding, so its output is the forward input's size."""
    from crosscheck.core.adjoint import output_padding

    return {
        "kernel_shape": list(spec.kernel),
        "strides": list(spec.stride),
        "dilations": list(spec.dilation),
        "group": spec.groups,
        "pads": [lo for lo, _ in spec.pads] + [hi for _, hi in spec.pads],
        "output_padding": list(output_padding(spec)),
    }


def conv_transpose_model(spec: ConvSpec) -> onnx.ModelProto:
    """A one-node model Y = ConvTranspose(X, W): X shaped like the forward output, W the forward weight
    (ConvTranspose's (C, M/group, *kernel) with C = the forward C_out), Y like the forward input."""
    attributes = conv_transpose_attributes(spec)
    return _one_node_model("ConvTranspose", attributes, spec.dtype, x=spec.y_shape, w=spec.w_shape, y=spec.x_shape)


@cache
def transposed_refusal(backend: str, dtype: str) -> str | None:
    """What a tiny ConvTranspose in `dtype` raises on `backend`, or None. (Sums kept in float16 and
    onnx.reference's grouped ConvTranspose are known findings judged inside their regions, not refusals.)"""
    from crosscheck.core.adjoint import cotangent
    from crosscheck.core.values import make_problem

    b: Backend = OnnxRuntimeBackend() if backend == "onnxruntime" else OnnxReferenceBackend()
    problem = make_problem(ConvSpec(1, 2, 2, (5,), (2,), dtype=dtype), 0)
    try:
        b.conv_transpose(problem, cotangent(problem))
    except Exception as exc:  # noqa: BLE001 - whatever the runtime raises is the reason, quoted
        message = str(exc).splitlines()[0] if str(exc) else ""
        return f"{backend} raises {type(exc).__name__}: {message}"
    return None


def _transposed_space(backend: str, dtypes: tuple[str, ...]) -> Capabilities:
    """Every padding mode goes in as explicit pads; dtypes as measured (`transposed_refusal`)."""
    refused = {d: why for d in dtypes if (why := transposed_refusal(backend, d))}
    return Capabilities(
        dtypes=tuple(d for d in dtypes if d not in refused),
        unsupported=(*[(f"dtype {d}", why) for d, why in refused.items()], _NO_INTS, _NO_COMPLEX, *_NCHW_ONLY),
    )


def _model_snippet(spec: ConvSpec) -> list[str]:
    elem = f"TensorProto.{_ELEM_NAME.get(spec.dtype, spec.dtype.upper())}"
    attrs = ", ".join(f"{k}={json.dumps(v)}" for k, v in conv_attributes(spec).items())
    return [
        "from onnx import TensorProto, helper",
        f'node = helper.make_node("Conv", ["X", "W"], ["Y"], {attrs})',
        "graph = helper.make_graph([node], 'conv',",
        f'    [helper.make_tensor_value_info("X", {elem}, {list(spec.x_shape)}),',
        f'     helper.make_tensor_value_info("W", {elem}, {list(spec.w_shape)})],',
        f'    [helper.make_tensor_value_info("Y", {elem}, {list(spec.y_shape)})])',
        f'model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", {OPSET})], ir_version={IR_VERSION})',
    ]


NO_GRADIENTS = "an ONNX model is inference only: the runtime computes no vector-Jacobian product"

_DILATED_AUTO_PAD = (
    "onnxruntime refuses auto_pad SAME_UPPER/SAME_LOWER with dilation > 1: "
    "'Dilation not supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER.'"
)


def _dilated_auto_pad(spec: ConvSpec) -> str | None:
    if spec.padding in ("SAME", "SAME_LOWER") and max(spec.dilation) > 1:
        return _DILATED_AUTO_PAD
    return None


# Each session holds native memory; a few hundred geometries cover a property run's repeats.
@lru_cache(maxsize=256)
def _ort_session(spec: ConvSpec, device: str, transposed: bool = False) -> Any:
    import onnxruntime as ort

    model = conv_transpose_model(spec) if transposed else conv_model(spec)
    session = ort.InferenceSession(model.SerializeToString(), _ort_options(), providers=_ort_providers(device))
    # ORT falls back to the CPU with only a warning when the CUDA provider fails to load.
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise BackendUnavailable(
            f"onnxruntime: the CUDA provider did not load (session runs on {session.get_providers()})"
        )
    return session


def _ort_options() -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    # A one-node graph whose weights are inputs, not initializers, leaves nothing for the optimizer
    # to fuse or re-layout (NCHWc needs constant weights); disabling it keeps that true by construction.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.use_deterministic_compute = True
    so.add_session_config_entry("session.set_denormal_as_zero", "0")
    # Refusals reach us as exceptions; ORT would also print each one to stderr.
    so.log_severity_level = 4
    return so


def _ort_providers(device: str) -> list[Any]:
    if device == "cuda":
        # TF32 is on by default in the CUDA provider; the default algorithm search may pick cuDNN's
        # FFT/Winograd kernels, which only satisfy a normwise bound. DEFAULT is implicit-precomp GEMM.
        cuda = {"use_tf32": "0", "cudnn_conv_algo_search": "DEFAULT"}
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    framework = "onnxruntime"
    module = "onnxruntime"
    description = f"onnxruntime InferenceSession on a one-node Conv model (opset {OPSET})"
    devices = ("cpu", "cuda")

    def check_available(self) -> None:
        super().check_available()
        if self.device == "cuda":
            import onnxruntime as ort

            found = ort.get_available_providers()
            if "CUDAExecutionProvider" not in found:
                raise BackendUnavailable(
                    f"{self.name}: CUDAExecutionProvider is not available (found {', '.join(found)}); "
                    "pip install onnxruntime-gpu"
                )

    def capabilities(self) -> Capabilities:
        not_implemented = "NOT_IMPLEMENTED : Could not find an implementation for Conv(22) node with name ''"
        return Capabilities(
            dtypes=("float32", "float16"),
            unsupported=(
                ("dtype float64", f"CPUExecutionProvider has no double Conv kernel: '{not_implemented}'"),
                ("dtype bfloat16", f"CPUExecutionProvider has no bfloat16 Conv kernel: '{not_implemented}'"),
                _NO_INTS,
                _NO_COMPLEX,
                *_NCHW_ONLY,
                ("padding SAME/SAME_LOWER with dilation > 1", _DILATED_AUTO_PAD),
                ("gradients", NO_GRADIENTS),
            ),
            constraints=(_dilated_auto_pad,),
            transposed=_transposed_space(self.name, ("float64", "float32", "float16", "bfloat16")),
        )

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch

        # MLAS picks its kernels by cpuid once; the library's strings name no variable that would cap them.
        return native_dispatch("onnxruntime (MLAS) has no ISA switch and does not report its kernels' ISA")

    def precision_flags(self) -> dict[str, Any]:
        import onnxruntime as ort

        so = _ort_options()
        flags: dict[str, Any] = {
            "providers": [p if isinstance(p, str) else p[0] for p in _ort_providers(self.device)],
            "graph_optimization_level": str(so.graph_optimization_level).split(".")[-1],
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "use_deterministic_compute": so.use_deterministic_compute,
            "session.set_denormal_as_zero": so.get_session_config_entry("session.set_denormal_as_zero"),
            "opset": OPSET,
            "ir_version": IR_VERSION,
            "build_device": ort.get_device(),
        }
        if self.device == "cuda":
            flags.update(_ort_providers("cuda")[0][1])
        else:
            # Measured: with no float16 CPU Conv kernel on x86, ORT inserts Cast(float32) around Conv.
            flags["float16"] = "computed in float32 (ORT inserts Cast nodes around the float32 Conv kernel)"
        return flags

    def run(self, problem: ConvProblem) -> np.ndarray:
        session = _ort_session(problem.spec, self.device)
        (y,) = session.run(None, {"X": problem.x, "W": problem.w})  # copies to and from the device, synchronously
        return np.asarray(y)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        (y,) = _ort_session(problem.spec, self.device, True).run(None, {"X": g, "W": problem.w})
        return np.asarray(y)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        providers = json.dumps([p if isinstance(p, str) else p[0] for p in _ort_providers(self.device)])
        return "\n".join(
            [
                standalone_problem_code(problem),
                *_model_snippet(problem.spec),
                "import onnxruntime as ort",
                f"session = ort.InferenceSession(model.SerializeToString(), providers={providers})",
                'y = session.run(None, {"X": problem.x, "W": problem.w})[0]',
            ]
        )


@lru_cache(maxsize=256)
def _reference_evaluator(spec: ConvSpec, transposed: bool = False) -> Any:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(conv_transpose_model(spec) if transposed else conv_model(spec))


# See the unsupported entry below; DeepLab's backbone rates (2, 4) and ASPP rate 12 stay in.
MAX_REFERENCE_DILATION = 12


class OnnxReferenceBackend(Backend):
    name = "onnx.reference"
    framework = "onnx"
    module = "onnx.reference"
    description = f"onnx.reference.ReferenceEvaluator on a one-node Conv model (opset {OPSET}): NumPy im2col + matmul"

    isa_switches = ("OPENBLAS_CORETYPE",)  # NumPy's matmul does the work

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", "float16", "bfloat16"),
            max_dilation=MAX_REFERENCE_DILATION,
            unsupported=(
                _NO_INTS,
                _NO_COMPLEX,
                *_NCHW_ONLY,
                ("gradients", NO_GRADIENTS),
                (
                    f"dilation > {MAX_REFERENCE_DILATION}",
                    "onnx.reference's im2col spans the dilated kernel: DeepLab's ASPP rate 36 at 2048->256 channels "
                    "(1.6e10 multiply-adds with the zeros) outlasted the worker's 60 s",
                ),
            ),
            transposed=_transposed_space(self.name, ("float64", "float32", "float16", "bfloat16")),
        )

    def precision_flags(self) -> dict[str, Any]:
        return {
            "opset": OPSET,
            "ir_version": IR_VERSION,
            "numpy": np.__version__,
            # Measured: NumPy's float16 matmul sums in float32; ml_dtypes' bfloat16 matmul returns float32.
            "float16/bfloat16": "im2col matmul accumulates in float32, rounded once to the input dtype",
        }

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import openblas_dispatch

        return openblas_dispatch()  # im2col + NumPy matmul

    def run(self, problem: ConvProblem) -> np.ndarray:
        (y,) = _reference_evaluator(problem.spec).run(None, {"X": problem.x, "W": problem.w})
        return np.asarray(y)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        (y,) = _reference_evaluator(problem.spec, True).run(None, {"X": g, "W": problem.w})
        return np.asarray(y)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        return "\n".join(
            [
                standalone_problem_code(problem),
                *_model_snippet(problem.spec),
                "from onnx.reference import ReferenceEvaluator",
                'y = ReferenceEvaluator(model).run(None, {"X": problem.x, "W": problem.w})[0]',
            ]
        )
