"""ONNX Conv through onnxruntime and through onnx's reference evaluator (docs/semantics.md)."""

from __future__ import annotations

import subprocess
import sys
from typing import cast

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")

import onnx
import onnxruntime as ort
from hypothesis import given, settings

from crosscheck import ConvProblem, ConvSpec, compare, make_problem
from crosscheck.backends import get_backend
from crosscheck.backends.base import Backend, Capabilities
from crosscheck.backends.onnx_backends import conv_model
from crosscheck.core.dtypes import FLOAT_DTYPES, dtype_info
from crosscheck.core.layouts import strided_view
from crosscheck.run.findings import regions_holding
from crosscheck.strategies import conv_specs

NAMES = ("onnxruntime", "onnx.reference")


@pytest.fixture(params=NAMES)
def backend(request: pytest.FixtureRequest) -> Backend:
    return get_backend(request.param)


def test_import_loads_no_framework() -> None:
    code = "import sys, crosscheck.backends.onnx_backends; print([m for m in sys.modules if m.startswith('onnx')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@settings(max_examples=40, deadline=None)
@given(spec=conv_specs(Capabilities(dtypes=FLOAT_DTYPES), max_macs=2_000))
def test_model_is_valid_onnx_with_our_output_shape(spec: ConvSpec) -> None:
    # ONNX's own shape inference (full_check) must agree with crosscheck's output size, named modes included.
    onnx.checker.check_model(conv_model(spec), full_check=True)


# Odd total padding (in at least one dimension) so that SAME and SAME_LOWER put the extra pad on different sides.
ODD = [
    ConvSpec(1, 2, 3, (6,), (4,)),
    ConvSpec(2, 2, 2, (7, 5), (4, 2), stride=(2, 1)),
    ConvSpec(1, 2, 2, (5, 6, 4), (2, 4, 3), stride=(1, 2, 3), groups=2),
]


@pytest.mark.parametrize("mode", ["SAME", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("geometry", ODD, ids=lambda s: s.describe())
def test_named_padding_equals_resolved_pads(backend: Backend, geometry: ConvSpec, mode: str) -> None:
    named = make_problem(geometry.with_(padding=mode), seed=3, values="exact")
    explicit = make_problem(geometry.with_(padding=named.spec.pads), seed=3, values="exact")
    y = backend.run(named)
    np.testing.assert_array_equal(y, backend.run(explicit))
    assert compare(named, y).passed


def test_odd_padding_side(backend: Backend) -> None:
    upper = make_problem(ConvSpec(1, 1, 1, (6,), (4,), padding="SAME"), seed=0, values="exact")
    assert upper.spec.pads == ((1, 2),)
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 6)
    w = np.ones((1, 1, 4), dtype=np.float32)
    y_upper = backend.run(ConvProblem(upper.spec, x, w))
    y_lower = backend.run(ConvProblem(upper.spec.with_(padding="SAME_LOWER"), x, w))
    # SAME_UPPER: pads (1, 2) -> first window [0, 1, 2, 3]; SAME_LOWER: (2, 1) -> [0, 0, 1, 2].
    np.testing.assert_array_equal(y_upper.ravel(), [6, 10, 14, 18, 15, 11])
    np.testing.assert_array_equal(y_lower.ravel(), [3, 6, 10, 14, 18, 15])


@pytest.mark.parametrize("mode", ["SAME", "SAME_LOWER"])
def test_onnxruntime_refuses_auto_pad_with_dilation(mode: str) -> None:
    backend = get_backend("onnxruntime")
    problem = make_problem(ConvSpec(1, 1, 1, (7, 7), (3, 3), dilation=(1, 2), padding=mode), seed=0)
    reason = backend.capabilities().refuses(problem.spec)
    assert reason is not None
    with pytest.raises(Exception, match="Dilation not supported for AutoPadType::SAME_UPPER") as info:
        backend.run(problem)
    assert "Dilation not supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER." in str(info.value)
    assert "Dilation not supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER." in reason


def test_reference_evaluator_runs_auto_pad_with_dilation() -> None:
    backend = get_backend("onnx.reference")
    problem = make_problem(ConvSpec(1, 2, 2, (8, 7), (3, 2), dilation=(2, 3), padding="SAME_LOWER"), seed=1)
    assert backend.capabilities().refuses(problem.spec) is None
    assert compare(problem, backend.run(problem)).passed


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_onnxruntime_cpu_has_no_conv_kernel_for(dtype: str) -> None:
    backend = get_backend("onnxruntime")
    assert dtype not in backend.capabilities().dtypes
    reason = dict(backend.capabilities().unsupported)[f"dtype {dtype}"]
    problem = make_problem(ConvSpec(1, 1, 1, (5,), (3,), dtype=dtype), seed=0)
    with pytest.raises(Exception, match=r"Could not find an implementation for Conv\(22\)") as info:
        backend.run(problem)
    assert "NOT_IMPLEMENTED" in str(info.value) and "NOT_IMPLEMENTED" in reason


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_conv_is_not_onnx(backend: Backend, dtype: str) -> None:
    assert dtype not in backend.capabilities().dtypes
    spec = ConvSpec(1, 1, 1, (5,), (3,), dtype=dtype)
    with pytest.raises(onnx.shape_inference.InferenceError, match=rf"unsupported type: tensor\({dtype}\)"):
        onnx.checker.check_model(conv_model(spec), full_check=True)
    if backend.name == "onnxruntime":
        with pytest.raises(Exception, match=rf"Type 'tensor\({dtype}\)' of input parameter \(X\)"):
            backend.run(make_problem(spec, seed=0))


def ones(spec: ConvSpec) -> ConvProblem:
    dt = dtype_info(spec.dtype).numpy
    return ConvProblem(spec, np.ones(spec.x_shape, dt), np.ones(spec.w_shape, dt))


def test_float16_accumulates_in_float32(backend: Backend) -> None:
    # 4096 products of 1: a float16 accumulator stops at 2048 (2048 + 1 rounds back to 2048).
    assert backend.capabilities().accumulator("float16") == "float32"
    y = backend.run(ones(ConvSpec(1, 4096, 1, (1,), (1,), dtype="float16")))
    assert y.dtype == np.float16 and y.item() == 4096


def test_bfloat16_accumulates_in_float32() -> None:
    # bfloat16 keeps 8 significand bits: a bfloat16 accumulator stops at 256.
    y = get_backend("onnx.reference").run(ones(ConvSpec(1, 1024, 1, (1,), (1,), dtype="bfloat16")))
    assert str(y.dtype) == "bfloat16" and float(y.item()) == 1024.0


def test_onnx_conv_has_no_channels_last(backend: Backend) -> None:
    assert "channels_last" not in backend.capabilities().layouts
    assert set(onnx.defs.get_schema("Conv").attributes) == {
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "pads",
        "strides",
    }


def test_onnxruntime_has_no_nhwc_conv_on_cpu() -> None:
    from onnx import helper

    node = helper.make_node("NhwcConv", ["X", "W"], ["Y"], kernel_shape=[3, 3], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "nhwc",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("X", "W")],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
    )
    opsets = [helper.make_opsetid("", 22), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    with pytest.raises(Exception, match=r"Could not find an implementation for NhwcConv\(1\)"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_strided_arrays_are_copied_dense(backend: Backend) -> None:
    # The reason `strided` is left out: the bindings make it contiguous, so it tests nothing new.
    assert "strided" not in backend.capabilities().layouts
    problem = make_problem(ConvSpec(2, 3, 4, (6, 5), (3, 2), stride=(2, 1), padding=((2, 0), (0, 1))), seed=5)
    y = backend.run(problem)
    assert compare(problem, y).passed  # ONNX pads are all begins, then all ends
    model = conv_model(problem.spec)
    inputs = {"X": strided_view(problem.x), "W": strided_view(problem.w)}
    if backend.name == "onnxruntime":
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y_strided = session.run(None, inputs)[0]
    else:
        from onnx.reference import ReferenceEvaluator

        y_strided = cast(list[np.ndarray], ReferenceEvaluator(model).run(None, inputs))[0]
    np.testing.assert_array_equal(y_strided, y)


def test_native_snippet_reproduces_run(backend: Backend) -> None:
    problem = make_problem(ConvSpec(1, 4, 2, (6, 5), (3, 2), stride=(2, 1), padding="SAME_LOWER", groups=2), seed=9)
    snippet = backend.native_snippet(problem)
    assert snippet is not None
    scope: dict[str, object] = {}
    exec(snippet, scope)
    np.testing.assert_array_equal(np.asarray(scope["y"]), backend.run(problem))


def test_precision_flags_are_pinned() -> None:
    flags = get_backend("onnxruntime").precision_flags()
    assert flags["graph_optimization_level"] == "ORT_DISABLE_ALL"
    assert flags["intra_op_num_threads"] == 1
    assert flags["session.set_denormal_as_zero"] == "0"
    assert flags["providers"] == ["CPUExecutionProvider"]
    assert get_backend("onnx.reference").precision_flags()["opset"] == flags["opset"]


# --- ConvTranspose ------------------------------------------------------------------------------


def _exact_backward(s: ConvSpec, seed: int = 2) -> tuple[ConvProblem, np.ndarray]:
    from crosscheck.core.adjoint import cotangent

    problem = make_problem(s, seed, "exact")
    return problem, cotangent(problem)


@settings(max_examples=25, deadline=None)
@given(conv_specs(dtypes=["float32"], max_macs=2_000))
def test_conv_transpose_model_is_valid_onnx_with_the_forward_input_shape(spec: ConvSpec) -> None:
    from crosscheck.backends.onnx_backends import conv_transpose_model

    model = onnx.shape_inference.infer_shapes(conv_transpose_model(spec), strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    (out,) = model.graph.output
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == list(spec.x_shape)


def test_conv_transpose_every_output_padding_is_exact(backend: Backend) -> None:
    from crosscheck.reference.transposed import conv_transpose

    for n in (9, 10, 11):  # output_padding 0, 1, 2 for stride 3
        s = ConvSpec(2, 2, 4, (n, 5), (4, 2), stride=(3, 1), dilation=(1, 2), padding=((2, 0), (0, 1)))
        problem, g = _exact_backward(s)
        np.testing.assert_array_equal(backend.conv_transpose(problem, g), conv_transpose(problem, g).value)


def test_onnxruntime_refuses_an_output_padding_the_stride_does_not_allow() -> None:
    """PyTorch accepts stride <= output_padding < dilation; onnxruntime refuses it (crosscheck draws
    output_padding < stride only, see crosscheck.core.adjoint)."""
    from onnx import helper

    node = helper.make_node(
        "ConvTranspose", ["X", "W"], ["Y"], kernel_shape=[2], strides=[2], dilations=[3], output_padding=[2]
    )
    graph = helper.make_graph(
        [node],
        "t",
        [helper.make_tensor_value_info("X", 1, [1, 1, 3]), helper.make_tensor_value_info("W", 1, [1, 1, 2])],
        [helper.make_tensor_value_info("Y", 1, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="output_padding"):
        session.run(None, {"X": np.ones((1, 1, 3), np.float32), "W": np.ones((1, 1, 2), np.float32)})


def test_onnx_reference_grouped_conv_transpose_works_only_with_one_channel_per_group() -> None:
    """The finding onnx-reference-grouped-conv-transpose-slices-the-weight-wrongly: a group's weight is
    sliced by output channels, so only C == M (one channel each side per group here) survives."""
    from crosscheck.reference.transposed import conv_transpose

    ref = get_backend("onnx.reference")
    ok = ConvSpec(1, 2, 2, (5,), (2,), groups=2)
    problem, g = _exact_backward(ok)
    np.testing.assert_array_equal(ref.conv_transpose(problem, g), conv_transpose(problem, g).value)
    caps = ref.capabilities().transposed
    assert caps is not None and caps.refuses(ok) is None
    bad = ConvSpec(1, 2, 4, (5,), (2,), groups=2)
    problem, g = _exact_backward(bad)
    with pytest.raises(ValueError, match="cannot reshape"):
        ref.conv_transpose(problem, g)
    # Not refused: the finding's region, where the search counts such errors as the known finding.
    assert caps.refuses(bad) is None
    (known,) = regions_holding(ref, "transposed_matches_reference", bad)
    assert known.id == "onnx-reference-grouped-conv-transpose-slices-the-weight-wrongly"
    assert not regions_holding(ref, "transposed_matches_reference", ok)


def test_float16_conv_transpose_sums_in_float32_in_onnxruntime_but_not_in_onnx_reference() -> None:
    from crosscheck.backends.accumulation import narrow_sum_errors

    ort, ref = get_backend("onnxruntime"), get_backend("onnx.reference")
    assert not narrow_sum_errors("float16", "channels_first", conv_transpose=ort.conv_transpose)
    wrong = narrow_sum_errors("float16", "channels_first", conv_transpose=ref.conv_transpose)
    assert wrong == {"convᵀ over kernel taps (big first)": (2048.0, 2050.0)}
    # Both explore float16: onnx.reference's is the known finding's region, judged by a float16 accumulator.
    ref_caps = ref.capabilities().transposed
    assert ref_caps is not None and "float16" in ref_caps.dtypes
    (known,) = regions_holding(ref, "transposed_matches_reference", ConvSpec(1, 2, 2, (5,), (2,), dtype="float16"))
    assert known.id == "onnx-reference-float16-conv-transpose-sums-in-float16" and known.kind == "weaker-contract"


def test_finding_same_padding_with_a_negative_pad_shifts_every_window() -> None:
    """Finding onnxruntime-same-padding-negative-pad-shifts-the-window, as a standalone onnxruntime model:
    length 8, one tap, stride 4: the unclamped SAME pad is (2 - 1)·4 + 1 - 8 = -3 and every window moves by one."""
    from onnx import TensorProto, helper

    node = helper.make_node("Conv", ["X", "W"], ["Y"], auto_pad="SAME_UPPER", strides=[4])
    graph = helper.make_graph(
        [node],
        "same",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 8]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, 1]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8)
    (y,) = session.run(None, {"X": x, "W": np.ones((1, 1, 1), np.float32)})
    assert y.ravel().tolist() == [1.0, 5.0]  # x[1], x[5]: TensorFlow, JAX and onnx.reference give x[0], x[4]
    explicit = helper.make_node("Conv", ["X", "W"], ["Y"], pads=[0, 0], strides=[4])
    graph.node[0].CopyFrom(explicit)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"X": x, "W": np.ones((1, 1, 1), np.float32)})
    assert y.ravel().tolist() == [0.0, 4.0]
