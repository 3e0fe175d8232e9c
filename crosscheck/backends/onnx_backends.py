"""ONNX: a one-node `Conv` model built in memory with onnx.helper, run by onnxruntime and by
onnx's own reference evaluator (`onnx.reference.ReferenceEvaluator`, plain NumPy im2col + matmul).

Both run the same model (`conv_model`), so a difference between them is a difference between the
two runtimes, not between two translations of the problem. Named padding modes go in as ONNX's own
`auto_pad` (SAME -> SAME_UPPER); explicit pads as `pads` in ONNX's order, all begins then all ends.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.problem import ConvProblem, ConvSpec
from crosscheck.reproducer import problem_code

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


def conv_model(spec: ConvSpec) -> onnx.ModelProto:
    """A one-node model Y = Conv(X, W) with `spec`'s static shapes, dtype and attributes."""
    from onnx import helper

    elem = _ELEM_TYPE[spec.dtype]
    node = helper.make_node("Conv", ["X", "W"], ["Y"], **conv_attributes(spec))
    graph = helper.make_graph(
        [node],
        "conv",
        [
            helper.make_tensor_value_info("X", elem, list(spec.x_shape)),
            helper.make_tensor_value_info("W", elem, list(spec.w_shape)),
        ],
        [helper.make_tensor_value_info("Y", elem, list(spec.y_shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


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
def _ort_session(spec: ConvSpec, device: str) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(
        conv_model(spec).SerializeToString(), _ort_options(), providers=_ort_providers(device)
    )
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
                *_NCHW_ONLY,
                ("padding SAME/SAME_LOWER with dilation > 1", _DILATED_AUTO_PAD),
            ),
            constraints=(_dilated_auto_pad,),
        )

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

    def native_snippet(self, problem: ConvProblem) -> str | None:
        providers = json.dumps([p if isinstance(p, str) else p[0] for p in _ort_providers(self.device)])
        return "\n".join(
            [
                problem_code(problem),
                *_model_snippet(problem.spec),
                "import onnxruntime as ort",
                f"session = ort.InferenceSession(model.SerializeToString(), providers={providers})",
                'y = session.run(None, {"X": problem.x, "W": problem.w})[0]',
            ]
        )


@lru_cache(maxsize=256)
def _reference_evaluator(spec: ConvSpec) -> Any:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(conv_model(spec))


class OnnxReferenceBackend(Backend):
    name = "onnx.reference"
    framework = "onnx"
    module = "onnx.reference"
    description = f"onnx.reference.ReferenceEvaluator on a one-node Conv model (opset {OPSET}): NumPy im2col + matmul"

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float64", "float32", "float16", "bfloat16"), unsupported=(_NO_INTS, *_NCHW_ONLY))

    def precision_flags(self) -> dict[str, Any]:
        return {
            "opset": OPSET,
            "ir_version": IR_VERSION,
            "numpy": np.__version__,
            # Measured: NumPy's float16 matmul sums in float32; ml_dtypes' bfloat16 matmul returns float32.
            "float16/bfloat16": "im2col matmul accumulates in float32, rounded once to the input dtype",
        }

    def run(self, problem: ConvProblem) -> np.ndarray:
        (y,) = _reference_evaluator(problem.spec).run(None, {"X": problem.x, "W": problem.w})
        return np.asarray(y)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        return "\n".join(
            [
                problem_code(problem),
                *_model_snippet(problem.spec),
                "from onnx.reference import ReferenceEvaluator",
                'y = ReferenceEvaluator(model).run(None, {"X": problem.x, "W": problem.w})[0]',
            ]
        )
