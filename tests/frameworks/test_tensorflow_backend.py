"""The TensorFlow adapter: the properties through the CLI's code path, and TensorFlow's own semantics
(which op runs what, named padding, layouts, dtypes, refusals, and the findings).

What TensorFlow refuses depends on which kernels serve a dtype here (oneDNN or Eigen), so the
declaration is measured by the adapter; these tests check that every measured refusal is real, that
everything declared runs, and pin the facts that hold everywhere (float64 is always served by
TensorFlow's own CPU kernels).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the import, or TF's banners flood the output
tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed: pip install 'crosscheck[tensorflow]'")

from crosscheck import ConvProblem, ConvSpec, compare, make_problem  # noqa: E402
from crosscheck.backends import BackendUnavailable, get_backend  # noqa: E402
from crosscheck.backends.tensorflow_backend import (  # noqa: E402
    DEPTHWISE_STRIDE_WITH_DILATION,
    NO_SAME_LOWER,
    TensorflowBackend,
    installed_distribution,
)
from crosscheck.backends.tensorflow_backward import tf_message  # noqa: E402
from crosscheck.core.dtypes import dtype_info  # noqa: E402
from crosscheck.core.padding import resolve_padding  # noqa: E402
from crosscheck.run.findings import regions_holding, replay  # noqa: E402

DECLARABLE = ("float64", "float32", "float16", "bfloat16", "int32")  # where the kernels take them (see below)


@pytest.fixture(scope="module")
def backend() -> TensorflowBackend:
    b = get_backend("tensorflow")
    assert isinstance(b, TensorflowBackend)
    return b


def spec(rank: int = 2, **kw: Any) -> ConvSpec:
    base: dict[str, Any] = dict(
        batch=2, in_channels=4, out_channels=6, in_size=(7,) * rank, kernel=(3,) * rank, layout="channels_last"
    )
    return ConvSpec(**{**base, **kw})


def depthwise(**kw: Any) -> ConvSpec:
    return spec(2, **{"in_channels": 4, "out_channels": 8, "groups": 4, **kw})


def declared_or_skip(backend: TensorflowBackend, dtype: str) -> None:
    """bfloat16 runs on oneDNN only, which has no bfloat16 kernels below AVX-512 (ONEDNN_MAX_CPU_ISA=AVX2, say): there
    the dtype is refused in TensorFlow's words, and what needs it is skipped with that reason."""
    if dtype not in backend.capabilities().dtypes:
        reason = dict(backend.capabilities().unsupported)[f"dtype {dtype}"]
        assert reason == backend.facts(dtype)["conv2d"] and "raises" in reason
        pytest.skip(f"dtype {dtype} is refused here: {reason}")


def run_exact(backend: TensorflowBackend, s: ConvSpec, seed: int = 1) -> tuple[ConvProblem, np.ndarray]:
    problem = make_problem(s, seed, "exact")
    return problem, backend.run(problem)


def raised(call: Any) -> str:
    with pytest.raises(Exception) as info:
        call()
    return tf_message(info.value)


def test_importing_the_adapter_does_not_import_tensorflow() -> None:
    code = "import sys, crosscheck, crosscheck.backends.tensorflow_backend; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- the measured declaration is true --------------------------------------------------------------

# One problem per measured feature, exercising it and little else.
FEATURE_SPECS = {
    "conv2d": spec(2),
    "conv2d channels_first": spec(2, layout="channels_first", padding=((1, 0), (0, 2))),
    "conv3d": spec(3),
    "conv3d channels_first": spec(3, layout="channels_first", padding="SAME"),
    "conv3d groups": spec(3, groups=2),
    "conv3d dilation": spec(3, in_size=(9, 8, 7), dilation=(2, 1, 3)),
    "conv3d stride with dilation": spec(3, in_size=(9, 8, 7), dilation=(2, 1, 1), stride=(1, 2, 1)),
    "depthwise_conv2d": depthwise(),
    "depthwise_conv2d channels_first": depthwise(layout="channels_first"),
    "depthwise_conv2d unequal strides": depthwise(stride=(2, 1)),
    "conv3d sums": spec(3, padding="SAME"),
    "depthwise_conv2d sums": depthwise(padding="SAME"),
}


def test_every_measured_feature_has_a_problem(backend: TensorflowBackend) -> None:
    assert set(backend.facts("float16")) == set(FEATURE_SPECS)


@pytest.mark.parametrize("feature", sorted(FEATURE_SPECS))
@pytest.mark.parametrize("dtype", DECLARABLE)
def test_declared_refusals_are_real_and_the_rest_runs(backend: TensorflowBackend, dtype: str, feature: str) -> None:
    declared_or_skip(backend, dtype)
    s = FEATURE_SPECS[feature].with_(dtype=dtype)
    reason = backend.capabilities().refuses(s)
    message = backend.facts(dtype).get(feature)
    rerouted = feature in ("conv3d dilation", "depthwise_conv2d", "depthwise_conv2d unequal strides")
    sums = feature.endswith(" sums")  # a known finding judged inside its region, not a refusal
    if message and not rerouted and not sums:
        assert reason is not None
    if message and sums and dtype == "float16":
        assert regions_holding(backend, "matches_reference", s), feature
    if reason is None:
        problem, y = run_exact(backend, s)
        assert compare(problem, y).passed
    elif "finding:" not in reason:
        if s.layout in backend.capabilities().layouts:  # else no dtype takes it and `unsupported` says why
            assert any(m and m in reason for m in backend.facts(dtype).values()), reason  # TF's own words
        with pytest.raises((tf.errors.OpError, ValueError)):
            run_exact(backend, s)


def test_unsupported_lists_each_refusal_with_its_dtypes(backend: TensorflowBackend) -> None:
    from crosscheck.core.hardware import isa_rank

    caps = backend.capabilities()
    unsupported = dict(caps.unsupported)
    assert caps.dtypes == tuple(
        d for d in DECLARABLE if not (backend.facts(d)["conv2d"] and backend.facts(d)["conv3d"])
    )
    isa_class = backend.dispatch()["isa_class"]
    if isa_rank(isa_class) >= isa_rank("avx512"):
        assert "bfloat16" in caps.dtypes
    elif isa_class in ("sse41", "avx", "avx2"):  # oneDNN has no bfloat16 convolution there
        assert "could not create a primitive descriptor" in unsupported["dtype bfloat16"]
    assert "Value for attr 'T' of int64" in unsupported["dtype int64"]
    for feature, message in backend.facts("float64").items():
        if message and feature not in ("conv3d dilation", "depthwise_conv2d unequal strides"):
            assert any(f.startswith(feature + " (") and "float64" in f and r == message for f, r in caps.unsupported)


# --- which op runs what --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "op"),
    [
        (spec(1), "conv1d"),
        (spec(1, in_channels=4, out_channels=4, groups=4), "conv1d"),
        (spec(2), "conv2d"),
        (spec(2, groups=2), "conv2d"),
        (depthwise(), "depthwise_conv2d"),
        (depthwise(out_channels=4, stride=(2, 2), padding="SAME"), "depthwise_conv2d"),
        (depthwise(dilation=(2, 1)), "depthwise_conv2d"),
        (depthwise(dtype="float64", padding=((1, 0), (2, 2))), "depthwise_conv2d"),
        # depthwise_conv2d cannot: int32; unequal strides (Eigen kernels, as for float64);
        # stride > 1 with dilation > 1 (wrong values, any kernel).
        (depthwise(dtype="int32"), "conv2d"),
        (depthwise(dtype="float64", stride=(2, 1)), "conv2d"),
        (depthwise(in_size=(9, 9), stride=(2, 2), dilation=(2, 1)), "conv2d"),
        (spec(3), "conv3d"),
        # Eigen's Conv3D refuses dilation: tf.nn.convolution dilates by space-to-batch instead.
        (spec(3, in_size=(9, 7, 7), dilation=(2, 1, 1), dtype="float64"), "convolution"),
    ],
)
def test_op_for(backend: TensorflowBackend, s: ConvSpec, op: str) -> None:
    assert backend.op_for(s) == op


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"padding": ((2, 0), (1, 2))},
        {"padding": "SAME", "stride": (2, 2)},
        {"dilation": (2, 1), "padding": "SAME"},
        {"dilation": (1, 2), "padding": ((0, 1), (2, 1))},
    ],
)
def test_depthwise_conv2d_matches_the_reference(
    backend: TensorflowBackend, multiplier: int, dtype: str, changes: dict[str, Any]
) -> None:
    s = depthwise(in_size=(8, 7), in_channels=3, out_channels=3 * multiplier, groups=3, dtype=dtype, **changes)
    assert backend.op_for(s) == "depthwise_conv2d"
    for values in ("exact", "uniform"):
        problem = make_problem(s, 3, values)
        verdict = compare(problem, backend.run(problem))
        assert verdict.passed, verdict.message


# --- padding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rank", "changes", "op"),
    [
        (1, {}, "conv1d"),
        (1, {"stride": (2,), "dilation": (2,)}, "conv1d"),
        (2, {"stride": (2, 1), "dilation": (2, 1)}, "conv2d"),
        (2, {"in_channels": 4, "out_channels": 4, "groups": 4, "kernel": (4, 2)}, "depthwise_conv2d"),
        (2, {"in_channels": 4, "out_channels": 4, "groups": 4, "dilation": (2, 1)}, "depthwise_conv2d"),
        (3, {"kernel": (2, 3, 4)}, "conv3d"),
        (3, {"stride": (2, 1, 3)}, "conv3d"),
        (3, {"dilation": (2, 1, 1), "kernel": (2, 2, 3), "dtype": "float64"}, "convolution"),
    ],
)
def test_same_equals_the_resolved_pads_with_the_odd_pad_at_the_end(
    backend: TensorflowBackend, rank: int, changes: dict[str, Any], op: str
) -> None:
    named = spec(rank, in_size=(8, 7, 6)[:rank], kernel=(4,) * rank, padding="SAME").with_(**changes)
    assert backend.op_for(named) == op
    pads = resolve_padding("SAME", named.in_size, named.kernel, named.stride, named.dilation)
    assert any(lo < hi for lo, hi in pads), "choose geometry with an odd total pad"
    problem, y_named = run_exact(backend, named)
    _, y_explicit = run_exact(backend, named.with_(padding=pads))
    _, y_lower = run_exact(backend, named.with_(padding=tuple((hi, lo) for lo, hi in pads)))
    assert y_named.shape == named.y_shape
    np.testing.assert_array_equal(y_named, y_explicit)
    assert not np.array_equal(y_named, y_lower)  # the side of the odd pad is visible
    assert compare(problem, y_named).passed


def test_same_puts_the_extra_pad_after_the_input() -> None:
    # A two-tap filter that picks its first tap: with the extra zero at the end, y equals x.
    x = tf.reshape(tf.range(1.0, 6.0), (1, 5, 1))
    y = tf.nn.conv1d(x, tf.constant([[[1.0]], [[0.0]]]), 1, "SAME")
    assert y.numpy().ravel().tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("s", "padding", "pre_pad"),
    [
        (spec(1, padding="SAME"), "SAME", None),
        (spec(3, padding="VALID"), "VALID", None),
        (spec(2, padding=((1, 2), (0, 1))), [[0, 0], [1, 2], [0, 1], [0, 0]], None),
        (depthwise(padding=((1, 2), (0, 1))), [[0, 0], [1, 2], [0, 1], [0, 0]], None),
        (spec(1, padding=((1, 2),)), "VALID", [[0, 0], [1, 2], [0, 0]]),
        (spec(3, padding=((1, 2), (0, 1), (2, 0))), "VALID", [[0, 0], [1, 2], [0, 1], [2, 0], [0, 0]]),
        (spec(2, layout="channels_first", padding=((1, 2), (0, 1))), [[0, 0], [0, 0], [1, 2], [0, 1]], None),
    ],
)
def test_named_modes_are_passed_by_name_and_pad_lists_only_where_taken(
    backend: TensorflowBackend, monkeypatch: pytest.MonkeyPatch, s: ConvSpec, padding: Any, pre_pad: Any
) -> None:
    if backend.capabilities().refuses(s):
        pytest.skip(f"not declared here: {backend.capabilities().refuses(s)}")
    call = backend.plan(s)
    assert (call.padding, call.pre_pad) == (padding, pre_pad)
    seen: list[Any] = []
    real = getattr(tf.nn, call.op)

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(tf.nn, call.op, spy)
    problem, y = run_exact(backend, s)
    assert seen == [padding]
    assert compare(problem, y).passed


@pytest.mark.parametrize("rank", [1, 3])
def test_explicit_lists_are_refused_by_conv1d_conv3d_and_convolution(rank: int) -> None:
    x, f = tf.zeros((1, *(5,) * rank, 1)), tf.zeros((*(2,) * rank, 1, 1))
    pads = [[0, 0], *[[1, 0]] * rank, [0, 0]]
    conv = tf.nn.conv1d if rank == 1 else tf.nn.conv3d
    strides = 1 if rank == 1 else [1] * 5
    assert "Expected string for argument 'padding'" in raised(lambda: conv(x, f, strides, pads))
    assert "Expected string for argument 'padding'" in raised(lambda: tf.nn.convolution(x, f, padding=pads))


def test_same_lower_is_declared_unsupported_and_tensorflow_refuses_it(backend: TensorflowBackend) -> None:
    caps = backend.capabilities()
    assert "SAME_LOWER" not in caps.padding
    message = raised(lambda: tf.nn.conv2d(tf.zeros((1, 4, 4, 1)), tf.zeros((2, 2, 1, 1)), 1, "SAME_LOWER"))
    assert message == NO_SAME_LOWER
    assert message in dict(caps.unsupported)["padding SAME_LOWER"]


# --- layouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_first_is_refused_by_tensorflows_own_cpu_kernels(backend: TensorflowBackend, rank: int) -> None:
    # float64 never reaches oneDNN: this is docs/semantics.md's "NCHW raises UnimplementedError".
    s = spec(rank, layout="channels_first", dtype="float64")
    assert backend.capabilities().refuses(s) is not None
    reason = backend.refusal(s)
    assert reason is not None
    assert any(reason.endswith(message) for _, message in backend.capabilities().unsupported)
    if rank < 3:
        assert "UnimplementedError: The Conv2D op currently only supports the NHWC tensor format on the CPU" in reason
    else:
        assert "CPU implementation of Conv3D currently only supports the NHWC tensor format" in reason
    with pytest.raises(tf.errors.OpError):
        run_exact(backend, s)


def test_channels_first_on_the_cpu_comes_from_onednn(backend: TensorflowBackend) -> None:
    accepted = [d for d in DECLARABLE if not backend.facts(d)["conv2d channels_first"]]
    if accepted:
        assert backend.precision_flags().get("onednn_enabled") is True
        assert "channels_first" in backend.capabilities().layouts
    else:
        assert backend.capabilities().layouts == ("channels_last",)


def test_with_onednn_off_every_dtype_refuses_channels_first_and_dilated_conv3d() -> None:
    code = """if True:
        import json
        from crosscheck import ConvSpec
        from crosscheck.backends import get_backend
        b = get_backend("tensorflow")
        f = b.facts("float32")
        dilated = ConvSpec(1, 1, 1, (5, 5, 5), (2, 2, 2), dilation=(2, 1, 1), layout="channels_last")
        facts = [f["conv2d channels_first"], f["conv3d dilation"]]
        print(json.dumps([b.capabilities().layouts, *facts, b.op_for(dilated)]))
    """
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    layouts, nchw, dilation, op = json.loads(out.stdout.strip().splitlines()[-1])
    assert layouts == ["channels_last"]
    assert "The Conv2D op currently only supports the NHWC tensor format on the CPU" in nchw
    assert "CPU implementation of Conv3D currently only supports dilated rates of 1." in dilation
    assert op == "convolution"


def test_channels_first_plans_ncw_nchw_ncdhw(backend: TensorflowBackend) -> None:
    call = backend.plan(spec(3, layout="channels_first", stride=(2, 1, 1), padding=((1, 0), (0, 0), (0, 2))))
    assert call.data_format == "NCDHW"
    assert call.strides == [1, 1, 2, 1, 1]
    assert call.pre_pad == [[0, 0], [0, 0], [1, 0], [0, 0], [0, 2]]
    assert backend.plan(spec(1, layout="channels_first")).data_format == "NCW"


def test_cuda_without_a_gpu_is_unavailable_not_silently_the_cpu() -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match="no GPU"):
        TensorflowBackend("cuda").check_available()


def test_strided_layout_is_not_declared(backend: TensorflowBackend) -> None:
    caps = backend.capabilities()
    assert "strided" not in caps.layouts
    assert "layout strided" in dict(caps.unsupported)


# --- dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DECLARABLE)
@pytest.mark.parametrize("rank", [1, 2])
def test_each_declared_dtype_runs_and_comes_back_in_its_dtype(
    backend: TensorflowBackend, dtype: str, rank: int
) -> None:
    declared_or_skip(backend, dtype)
    s = spec(rank, dtype=dtype, padding="SAME", stride=(2,) * rank)
    assert backend.capabilities().refuses(s) is None
    problem, y = run_exact(backend, s)
    assert y.dtype == dtype_info(dtype).numpy
    if dtype == "bfloat16":
        assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    assert compare(problem, y).passed  # exact values: bit for bit


def test_int64_is_refused_by_tensorflow(backend: TensorflowBackend) -> None:
    x, f = tf.zeros((1, 4, 4, 1), tf.int64), tf.zeros((2, 2, 1, 1), tf.int64)
    message = raised(lambda: tf.nn.conv2d(x, f, 1, "VALID"))
    assert "Value for attr 'T' of int64 is not in the list of allowed values" in message
    assert "int64" not in backend.capabilities().dtypes


# --- 3-D refusals, in TensorFlow's words (float64: TensorFlow's own kernels everywhere) ------------


def test_int32_conv3d_is_a_declared_refusal(backend: TensorflowBackend) -> None:
    x, f = tf.zeros((1, 4, 4, 4, 1), tf.int32), tf.zeros((2, 2, 2, 1, 1), tf.int32)
    message = raised(lambda: tf.nn.conv3d(x, f, [1] * 5, "VALID"))
    assert "Value for attr 'T' of int32 is not in the list of allowed values: half, bfloat16, float, double" in message
    reason = backend.capabilities().refuses(spec(3, dtype="int32"))
    assert reason is not None and message in reason


def test_grouped_conv3d_is_a_declared_refusal(backend: TensorflowBackend) -> None:
    x, f = tf.zeros((1, 4, 4, 4, 4), tf.float64), tf.zeros((2, 2, 2, 2, 6), tf.float64)
    message = raised(lambda: tf.nn.conv3d(x, f, [1] * 5, "VALID"))
    assert message == "InvalidArgumentError: Number of channels in filter (2) must match last dimension of input (4)"
    for dtype in DECLARABLE:
        assert backend.capabilities().refuses(spec(3, groups=2, dtype=dtype)) is not None
    assert backend.capabilities().refuses(spec(2, groups=2, dtype="float64")) is None  # grouped Conv2D works


def test_dilated_conv3d_goes_through_convolution_which_refuses_stride(backend: TensorflowBackend) -> None:
    x, f = tf.zeros((1, 9, 9, 9, 1), tf.float64), tf.zeros((2, 2, 2, 1, 1), tf.float64)
    dilation = raised(lambda: tf.nn.conv3d(x, f, [1] * 5, "VALID", dilations=[1, 2, 1, 1, 1]))
    assert dilation == "InvalidArgumentError: CPU implementation of Conv3D currently only supports dilated rates of 1."
    stride = raised(lambda: tf.nn.convolution(x, f, [2, 1, 1], "VALID", dilations=[1, 2, 1]))
    assert stride.startswith("ValueError: `strides > 1` not supported in conjunction with `dilation_rate > 1`.")
    s = spec(3, in_size=(9, 9, 9), stride=(2, 1, 1), dilation=(1, 2, 1), dtype="float64")
    reason = backend.capabilities().refuses(s)
    assert reason is not None and dilation in reason and "`strides > 1` not supported" in reason
    # Without stride, tf.nn.convolution's space-to-batch dilation works.
    for padding in ("SAME", "VALID", ((1, 0), (2, 2), (0, 1))):
        s = spec(3, in_size=(9, 8, 7), dilation=(1, 2, 3), padding=padding, dtype="float64")
        assert backend.op_for(s) == "convolution"
        assert backend.capabilities().refuses(s) is None
        problem, y = run_exact(backend, s)
        assert compare(problem, y).passed


@pytest.mark.parametrize(
    "changes",
    [
        {"stride": (2, 1, 3)},
        {"stride": (1, 2, 1), "padding": "SAME"},
        {"padding": ((2, 0), (0, 1), (1, 1)), "stride": (1, 1, 2)},
        {"dilation": (2, 1, 1), "padding": "SAME", "dtype": "float64"},
        {"dilation": (2, 1, 2), "stride": (1, 2, 1), "padding": "SAME"},
        {"dtype": "bfloat16", "kernel": (1, 2, 3)},
        {"layout": "channels_first", "padding": ((1, 1), (0, 2), (2, 0))},
    ],
)
def test_rank3_matches_the_reference(backend: TensorflowBackend, changes: dict[str, Any]) -> None:
    # Few random 3-D problems survive the 3-D refusals, so the 3-D paths are pinned here too.
    s = spec(3, in_size=(8, 7, 6)).with_(**changes)
    if backend.capabilities().refuses(s):
        pytest.skip(f"not declared here: {backend.capabilities().refuses(s)}")
    for values in ("exact", "uniform"):
        problem = make_problem(s, 5, values)
        verdict = compare(problem, backend.run(problem))
        assert verdict.passed, verdict.message


# --- findings ------------------------------------------------------------------------------------


def test_finding_depthwise_conv2d_with_stride_and_dilation_warns_and_is_wrong(backend: TensorflowBackend) -> None:
    x = tf.reshape(tf.range(1.0, 8.0, dtype=tf.float64), (1, 7, 1, 1))
    f = tf.constant([1.0, 10.0], dtype=tf.float64, shape=(2, 1, 1, 1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        y = tf.nn.depthwise_conv2d(x, f, [1, 2, 2, 1], "VALID", dilations=[2, 1])
    assert any(DEPTHWISE_STRIDE_WITH_DILATION.split(": ", 1)[1] in str(w.message) for w in seen)
    exact = [1 + 10 * 3, 3 + 10 * 5, 5 + 10 * 7]  # windows start at 0, 2, 4 and read x[i], x[i + 2]
    assert y.numpy().ravel().tolist() == [31.0, 42.0, 75.0] != exact  # the middle window starts at 1
    assert tf.nn.conv2d(x, f, 2, "VALID", dilations=[2, 1]).numpy().ravel().tolist() == exact
    # The adapter routes such problems through conv2d's groups, which computes them.
    s = depthwise(in_size=(9, 9), stride=(2, 2), dilation=(2, 1))
    assert backend.op_for(s) == "conv2d"
    problem, out = run_exact(backend, s)
    assert compare(problem, out).passed


def test_depthwise_conv2d_refuses_unequal_strides_in_tensorflows_own_kernel(backend: TensorflowBackend) -> None:
    x, f = tf.zeros((1, 6, 6, 2), tf.float64), tf.zeros((2, 2, 2, 1), tf.float64)
    message = raised(lambda: tf.nn.depthwise_conv2d(x, f, [1, 2, 1, 1], "VALID"))
    assert "Current implementation only supports equal length strides in the row and column dimensions." in message
    s = depthwise(dtype="float64", stride=(2, 1))
    assert backend.op_for(s) == "conv2d"
    problem, y = run_exact(backend, s)
    assert compare(problem, y).passed


def test_a_probe_that_raises_is_a_recorded_refusal_not_a_dead_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN cannot build TensorFlow's bfloat16 Conv3D primitive ("AbortedError:
    could not create a primitive descriptor"); measuring must record that, not end the run."""
    from crosscheck.backends.tensorflow_backend import measure

    def aborted(*args: Any, **kwargs: Any) -> Any:
        raise tf.errors.AbortedError(None, None, "could not create a primitive descriptor for the convolution")

    monkeypatch.setattr(tf.nn, "conv3d", aborted)
    facts = measure(tf, "bfloat16")
    assert "AbortedError: could not create a primitive descriptor" in str(facts["conv3d"])
    assert facts["conv3d sums"] is None  # not measurable where the op refuses: the refusal above says why


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["conv3d", "depthwise_conv2d"])
def test_finding_half_sums_stay_in_the_half_type(backend: TensorflowBackend, dtype: str, op: str) -> None:
    declared_or_skip(backend, dtype)
    # With p significand bits, 2^p + 1 rounds back to 2^p, so a sum kept in the type loses both ones;
    # a float32 sum gives 2^p + 2, which the type represents.
    big = 2.0 ** dtype_info(dtype).significand_bits
    v = tf.constant([big, 1, 1], tf.as_dtype(dtype))
    if op == "conv3d":
        y = tf.nn.conv3d(tf.reshape(v, (1, 1, 1, 1, 3)), tf.ones((1, 1, 1, 3, 1), v.dtype), [1] * 5, "VALID")
    else:
        y = tf.nn.depthwise_conv2d(tf.reshape(v, (1, 3, 1, 1)), tf.ones((3, 1, 1, 1), v.dtype), [1] * 4, "VALID")
    got = float(np.float64(y.numpy().ravel()[0]))
    finding = backend.facts(dtype)[f"{op} sums"]
    assert got == (big if finding else big + 2)
    conv2d = tf.nn.conv2d(tf.reshape(v, (1, 1, 1, 3)), tf.ones((1, 1, 3, 1), v.dtype), 1, "VALID")
    assert float(np.float64(conv2d.numpy().ravel()[0])) == big + 2  # Conv2D sums in float32
    s = (spec(3) if op == "conv3d" else depthwise()).with_(dtype=dtype)
    if finding and dtype == "float16":
        # Not a refusal: the known finding's region, judged by its float16-accumulator contract.
        assert backend.capabilities().refuses(s) is None
        (known,) = regions_holding(backend, "matches_reference", s)
        assert known.id == f"tensorflow-{op.split('_')[0]}-float16-sums-in-float16"


def test_finding_float16_depthwise_minimal_example(backend: TensorflowBackend) -> None:
    # Shrunk by Hypothesis from the matches_reference property with the finding's refusal lifted.
    s = depthwise(batch=1, in_channels=2, out_channels=2, groups=2, in_size=(1, 4), kernel=(1, 3), dtype="float16")
    problem = make_problem(s, 0)
    if not backend.facts("float16")["depthwise_conv2d sums"]:
        pytest.skip("float16 depthwise_conv2d sums in float32 here")
    y = backend.run(problem)
    products = [np.float16(a * b) for a, b in zip(problem.x[0, 0, 0, :3], problem.w[0, 0, 0])]
    f16_sum = np.float16(np.float16(products[0] + products[1]) + products[2])
    assert float(y[0, 0, 0, 0]) == float(f16_sum) == 2.11328125
    verdict = compare(problem, y)
    assert not verdict.passed and 1 < verdict.max_ratio < 1.1  # exact 2.11440646648407, f32 sum 2.115234375
    assert compare(problem, y, u_acc=dtype_info("float16").unit_roundoff).passed


@pytest.mark.parametrize(
    "s",
    [
        spec(3, in_size=(5, 5, 5), in_channels=8, out_channels=2, padding="SAME"),
        spec(3, in_size=(7, 5, 5), in_channels=8, out_channels=2, dilation=(2, 1, 1)),
        depthwise(in_size=(8, 8), in_channels=8, out_channels=8, groups=8, kernel=(5, 5), padding="SAME"),
    ],
)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_sums_in_the_half_type_hold_that_types_accumulator_bound(
    backend: TensorflowBackend, s: ConvSpec, dtype: str
) -> None:
    s = s.with_(dtype=dtype)
    finding = backend.facts(dtype).get(f"{backend.op_for(s).replace('convolution', 'conv3d')} sums")
    if not finding:
        pytest.skip(f"{dtype} sums in float32 here (the properties check it)")
    worst = 0.0
    for seed in range(4):
        problem = make_problem(s, seed)
        y = backend.run(problem)
        assert compare(problem, y, u_acc=dtype_info(dtype).unit_roundoff).passed
        worst = max(worst, compare(problem, y).max_ratio)
    assert worst > 1  # beyond the float32-accumulator bound, as the finding says


# --- reporting -----------------------------------------------------------------------------------


def test_precision_flags_pin_tf32_off(backend: TensorflowBackend) -> None:
    flags = backend.precision_flags()
    assert flags["tensor_float_32_execution"] is False
    assert tf.config.experimental.tensor_float_32_execution_enabled() is False
    assert flags["TF_ENABLE_ONEDNN_OPTS"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    assert {"inter_op_parallelism_threads", "intra_op_parallelism_threads"} <= set(flags)


def test_version_names_the_installed_distribution(backend: TensorflowBackend) -> None:
    assert backend.framework == installed_distribution()
    assert backend.framework in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly")
    assert backend.version() == tf.__version__


@pytest.mark.parametrize(
    "s",
    [
        spec(1, padding=((2, 1),), stride=(2,)),
        depthwise(in_channels=3, out_channels=6, groups=3, padding=((1, 0), (0, 2)), dilation=(1, 2)),
        spec(2, groups=2, padding="SAME", dtype="bfloat16"),
        spec(3, in_size=(9, 7, 7), dilation=(2, 1, 1), padding=((0, 1), (1, 1), (2, 0)), dtype="float64"),
        spec(2, layout="channels_first", padding=((0, 1), (1, 1)), dtype="float32"),
    ],
)
def test_native_snippet_runs_and_reproduces_the_adapter(backend: TensorflowBackend, s: ConvSpec) -> None:
    if backend.capabilities().refuses(s):
        pytest.skip(f"not declared here: {backend.capabilities().refuses(s)}")
    problem = make_problem(s, 7)
    snippet = backend.native_snippet(problem)
    assert f"tf.nn.{backend.op_for(s)}(" in snippet
    scope: dict[str, Any] = {}
    exec(snippet, scope)
    np.testing.assert_array_equal(scope["y"], backend.run(problem))


# --- the backward pass: GradientTape and tf.nn.conv*_transpose ---------------------------------


def _exact_backward(s: ConvSpec, seed: int = 2) -> tuple[ConvProblem, np.ndarray]:
    from crosscheck.core.adjoint import cotangent

    problem = make_problem(s, seed, "exact")
    return problem, cotangent(problem)


def test_conv1d_and_conv3d_transpose_take_no_explicit_pads() -> None:
    """Why the adapter sends explicit pads to conv1d_transpose/conv3d_transpose as VALID plus a crop."""
    t = tf.ones((1, 3, 2))
    with pytest.raises(TypeError, match="Expected string for argument 'padding'"):
        tf.nn.conv1d_transpose(t, tf.ones((2, 2, 2)), [1, 6, 2], 2, [[0, 0], [1, 0], [0, 0]])


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("padding", [((2, 0),), ((0, 1),), "SAME", "VALID", "SAME_LOWER"])
@pytest.mark.parametrize("size", [7, 8])  # with stride 2: both output sizes of one input size
def test_conv_transpose_every_padding_and_output_size(
    backend: TensorflowBackend, rank: int, padding: Any, size: int
) -> None:
    """Explicit pads and VALID reach the two sizes by output_padding 0 and 1, SAME and SAME_LOWER by their
    pads; conv2d_transpose takes the pads, conv1d/3d_transpose VALID and a crop: all exact."""
    from crosscheck.backends.tensorflow_backward import transposed_plan
    from crosscheck.reference.transposed import conv_transpose

    pads = padding if isinstance(padding, str) else padding * rank
    s = ConvSpec(
        1, 2, 3, (size,) * rank, (3,) * rank, stride=(2,) * rank, padding=pads, dtype="float32", layout="channels_last"
    )
    problem, g = _exact_backward(s)
    plan = transposed_plan(s)
    assert plan.output_shape[1:-1] >= list(s.in_size)
    assert plan.padding in ("SAME", "VALID") or plan.op == "conv2d_transpose"
    reason = backend.capabilities().transposed.refuses(s)  # type: ignore[union-attr]
    if reason:
        pytest.skip(f"refused here: {reason}")
    np.testing.assert_array_equal(backend.conv_transpose(problem, g), conv_transpose(problem, g).value)


def test_which_gradient_kernel_runs_depends_on_the_padding_so_refusals_are_per_signature(
    backend: TensorflowBackend,
) -> None:
    """float32 Conv2D's gradient with dilation runs on oneDNN with named padding; with explicit pads the
    call falls back to the Eigen kernel, which refuses dilation. The adapter measures each signature."""
    x, f = tf.ones((1, 6, 6, 1)), tf.ones((2, 2, 1, 1))

    def grad(padding: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, f, 1, padding, dilations=2)
        return tape.gradient(y, x, output_gradients=tf.ones_like(y))

    named = explicit = None
    try:
        grad("VALID")
    except tf.errors.InvalidArgumentError as exc:
        named = str(exc)
    try:
        grad([[0, 0], [0, 0], [0, 0], [0, 0]])
    except tf.errors.InvalidArgumentError as exc:
        explicit = str(exc)
    s = spec(2, in_channels=1, out_channels=1, in_size=(6, 6), kernel=(2, 2), dilation=(2, 2), dtype="float32")
    caps = backend.capabilities().gradients
    assert caps is not None
    # Whatever this machine's kernels do, the capabilities say the same.
    assert (caps.refuses(s.with_(padding="VALID")) is None) == (named is None)
    assert (caps.refuses(s.with_(padding=((0, 0), (0, 0)))) is None) == (explicit is None)


@pytest.mark.parametrize(
    ("prop", "finding", "result"),
    [
        ("gradient_input", "tensorflow-float16-input-gradient-sums-in-float16", "grad_x"),
        ("gradient_weight", "tensorflow-float16-weight-gradient-sums-in-float16", "grad_w"),
        ("transposed_matches_reference", "tensorflow-float16-conv-transpose-sums-in-float16", "convᵀ"),
    ],
)
def test_float16_backward_sums_are_probed_and_the_finding_follows_the_probe(
    backend: TensorflowBackend, prop: str, finding: str, result: str
) -> None:
    """Whether TensorFlow's float16 backward kernels keep their sums in float16 depends on the kernels this CPU
    (and the caps) select: probe it, and the replayed finding must say the same."""
    from crosscheck.backends.accumulation import narrow_sum_errors
    from crosscheck.backends.tensorflow_backward import conv_transpose, vjp
    from crosscheck.properties import PROPERTIES

    if result == "convᵀ":
        wrong = narrow_sum_errors("float16", "channels_last", conv_transpose=lambda p, g: conv_transpose(backend, p, g))
    else:
        wrong = narrow_sum_errors("float16", "channels_last", vjp=lambda p, g: vjp(backend, p, g))
    sums_in_float16 = any(what.startswith(result) for what in wrong)
    caps = backend.capabilities()
    space = caps.transposed if result == "convᵀ" else caps.gradients
    assert space is not None and "float16" in space.dtypes  # explored either way: a region, not a refusal
    (entry,) = [e for e in replay(backend, PROPERTIES[prop]) if e["id"] == finding]
    assert entry["outcome"] == ("reproduced" if sums_in_float16 else "not reproduced here"), (wrong, entry)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_vjp_through_the_forward_call_is_exact_on_exact_values(backend: TensorflowBackend, layout: str) -> None:
    from crosscheck.reference.gradients import input_gradient, weight_gradient

    # Named padding: with explicit pads float32's grouped gradient falls back to Eigen, which refuses groups.
    s = spec(2, groups=2, stride=(2, 1), padding="SAME", layout=layout, dtype="float32")
    reason = backend.capabilities().gradients.refuses(s)  # type: ignore[union-attr]
    if reason:
        pytest.skip(f"refused here: {reason}")
    problem, g = _exact_backward(s)
    gx, gw = backend.vjp(problem, g)
    np.testing.assert_array_equal(gx, input_gradient(problem, g).value)
    np.testing.assert_array_equal(gw, weight_gradient(problem, g).value)


def test_loading_tensorflow_prints_no_banner() -> None:
    """TensorFlow's C++ libraries log a start-up banner (twice) before TF_CPP_MIN_LOG_LEVEL applies, and oneDNN an
    E-level note on the first float16 convolution; the adapter drops those, and passes on what else is written."""
    code = (
        "import sys\n"
        "from crosscheck.backends.tensorflow_backend import _tensorflow\n"
        "tf = _tensorflow()\n"
        "tf.nn.conv2d(tf.ones((1, 3, 3, 2), tf.float16), tf.ones((2, 2, 2, 2), tf.float16), 1, 'VALID')\n"
        "print('kept', file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert proc.stderr == "kept\n", proc.stderr
