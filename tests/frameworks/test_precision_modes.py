"""The reduced-precision modes the adapters declare: what they are, that they run and restore the
framework's settings, and the measured facts behind the modes declared unsupported here."""

from __future__ import annotations

import numpy as np
import pytest

from crosscheck.backends import BackendUnavailable, get_backend
from crosscheck.backends.base import Backend
from crosscheck.checks.forward import compare
from crosscheck.core.problem import ConvSpec
from crosscheck.core.reproducer import problem_code
from crosscheck.core.values import make_problem
from crosscheck.properties.precision import runnable_modes

PROBLEM = make_problem(ConvSpec(2, 6, 4, (9, 8), (3, 3), padding=((1, 1), (0, 2)), dtype="float32"), 7)


def backend_or_skip(name: str) -> Backend:
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def _within_own_bound(backend: Backend, mode_name: str) -> np.ndarray:
    mode = {m.name: m for m in backend.precision_modes()}[mode_name]
    y = backend.run_mode(PROBLEM, mode_name)
    v = compare(
        PROBLEM,
        y,
        u_in=mode.u_in,
        out_dtype=mode.output_dtype,
        rounded_to=mode.output_rounding or mode.output_dtype,
    )
    assert v.passed, v.message
    return np.asarray(y)


def test_torch_modes_run_and_restore_the_pinned_settings() -> None:
    torch = pytest.importorskip("torch")
    backend = backend_or_skip("torch")
    assert set(runnable_modes(backend)) == {
        "autocast-bfloat16",
        "autocast-float16",
        "mkldnn-fp32-bf16",
        "mkldnn-fp32-tf32",
    }
    assert _within_own_bound(backend, "autocast-bfloat16").dtype.name == "bfloat16"
    assert _within_own_bound(backend, "autocast-float16").dtype == np.float16
    for mode in ("mkldnn-fp32-bf16", "mkldnn-fp32-tf32"):
        assert _within_own_bound(backend, mode).dtype == np.float32
        assert torch.backends.mkldnn.conv.fp32_precision == "ieee"
    assert not torch.is_autocast_enabled("cpu")
    cudnn = {m.name: m for m in backend.precision_modes()}["cudnn-allow_tf32"]
    assert cudnn.unsupported and "CUDA" in cudnn.unsupported


def test_jax_precision_modes_are_plain_float32_on_the_cpu() -> None:
    pytest.importorskip("jax")
    backend = backend_or_skip("jax")
    default = backend.run(PROBLEM)
    for name in ("precision-DEFAULT", "precision-HIGH"):
        # Measured with jaxlib 0.10.2: XLA's CPU convolution ignores the precision config.
        np.testing.assert_array_equal(_within_own_bound(backend, name), default)
    bf16 = make_problem(PROBLEM.spec.with_(dtype="bfloat16"), 7)
    mode = {m.name: m for m in backend.precision_modes()}["preferred_element_type-float32"]
    y = backend.run_mode(bf16, mode.name)
    assert y.dtype == np.float32
    assert compare(bf16, y, out_dtype="float32").passed


def test_tensorflow_modes_and_the_reasons_for_the_ones_not_run() -> None:
    backend = backend_or_skip("tensorflow")
    import tensorflow as tf

    modes = {m.name: m for m in backend.precision_modes()}
    bf16_kernels = "bfloat16" in backend.capabilities().dtypes  # none under ONEDNN_MAX_CPU_ISA=AVX2, say
    assert set(runnable_modes(backend)) == ({"grappler-onednn-bfloat16"} if bf16_kernels else set())
    if bf16_kernels:
        _within_own_bound(backend, "grappler-onednn-bfloat16")
        assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16", False)
    else:
        reason = str(modes["grappler-onednn-bfloat16"].unsupported)
        assert "bfloat16 Conv2D/Conv3D, which refuse here" in reason and "tf.nn.conv2d raises" in reason
    # The facts behind the two reasons: TF32 and the Keras policy leave tf.nn's float32 results alone.
    x = np.random.default_rng(0).standard_normal((2, 9, 9, 8)).astype(np.float32)
    f = np.random.default_rng(1).standard_normal((3, 3, 8, 4)).astype(np.float32)
    plain = tf.nn.conv2d(x, f, 1, "VALID").numpy()
    tf.config.experimental.enable_tensor_float_32_execution(True)
    try:
        np.testing.assert_array_equal(tf.nn.conv2d(x, f, 1, "VALID").numpy(), plain)
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(False)
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        y = tf.nn.conv2d(x, f, 1, "VALID")
        assert y.dtype == tf.float32
        np.testing.assert_array_equal(y.numpy(), plain)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert "bit-identical" in str(modes["tensor_float_32"].unsupported)
    assert "Keras layer policy" in str(modes["keras-mixed_bfloat16"].unsupported)


def test_backends_without_modes_check_only_their_default() -> None:
    for name in ("numpy", "onnxruntime"):
        try:
            backend = get_backend(name)
        except BackendUnavailable:
            continue
        assert runnable_modes(backend) == {}


def test_a_precision_mode_travels_in_the_reproducer() -> None:
    from dataclasses import replace

    p = replace(PROBLEM, meta={"precision_mode": "autocast-bfloat16"})
    namespace: dict[str, object] = {}
    exec(problem_code(p), namespace)
    rebuilt = namespace["problem"]
    assert getattr(rebuilt, "meta", {}) == {"precision_mode": "autocast-bfloat16"}


def test_finding_conv3d_graph_shape_inference_swaps_height_and_width_dilations() -> None:
    """Finding tensorflow-conv3d-graph-swaps-hw-dilations (crosscheck/data/known_findings.json): in a
    tf.function, Conv3D's static shape uses the width dilation for the height and vice versa; eager is right."""
    backend_or_skip("tensorflow")
    import tensorflow as tf

    x, f = tf.ones((1, 3, 5, 4, 1)), tf.ones((2, 2, 2, 1, 1))
    dilations = [1, 1, 2, 1, 1]  # height 2: output (3 - 1, 5 - 2, 4 - 1) = (2, 3, 3)
    static = {}

    def trace(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv3d(a, b, [1] * 5, "VALID", dilations=dilations)
        static["shape"] = tuple(y.shape)
        return y

    traced = tf.function(trace)

    assert tuple(traced(x, f).shape) == tuple(tf.nn.conv3d(x, f, [1] * 5, "VALID", dilations=dilations).shape)
    assert tuple(tf.nn.conv3d(x, f, [1] * 5, "VALID", dilations=dilations).shape) == (1, 2, 3, 3, 1)
    assert static["shape"] == (1, 2, 4, 2, 1)  # the width's dilation applied to the height
    with pytest.raises(ValueError, match="Negative dimension size"):
        tf.function(lambda a, b: tf.nn.conv3d(a, b, [1] * 5, "VALID", dilations=dilations))(
            tf.ones((1, 1, 1, 2, 1)), tf.ones((1, 1, 2, 1, 1))
        )
    mode = {m.name: m for m in get_backend("tensorflow").precision_modes()}["grappler-onednn-bfloat16"]
    assert mode.refuses(PROBLEM.spec) is None
    assert "tensorflow-conv3d-graph-swaps-hw-dilations" in str(
        mode.refuses(ConvSpec(1, 1, 1, (1, 1, 2), (1, 1, 2), dilation=(1, 2, 1)))
    )


def test_finding_onednn_bfloat16_rewrite_zeroes_a_depth_padded_conv3d() -> None:
    """Finding tensorflow-onednn-bfloat16-depth-padded-conv3d-zeros (crosscheck/data/known_findings.json): wrong on
    the kernels where it was recorded reproducing, right where it was recorded not reproducing."""
    backend = backend_or_skip("tensorflow")
    import tensorflow as tf

    from crosscheck.run.findings import known_findings

    (finding,) = [f for f in known_findings() if f["id"] == "tensorflow-onednn-bfloat16-depth-padded-conv3d-zeros"]
    mode = {m.name: m for m in backend.precision_modes()}["grappler-onednn-bfloat16"]
    if mode.unsupported:
        pytest.skip(f"the mode does not run here: {mode.unsupported}")
    isa_class = backend.dispatch()["isa_class"]
    recorded = [e["reproduced"] for e in finding["environments"] if e["isa_class"] == isa_class]

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-2, 2, (1, 1, 1, 3, 1)).astype(np.float32))
    f = tf.constant(rng.uniform(-2, 2, (2, 1, 3, 1, 1)).astype(np.float32))
    pads = [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]]

    def conv(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv3d(tf.pad(a, pads), b, [1] * 5, "VALID")

    eager = float(conv(x, f).numpy().ravel()[0])
    assert abs(eager - float(np.sum(np.pad(x.numpy(), pads)[0, ..., 0] * f.numpy()[..., 0, 0]))) < 1e-5
    option = "auto_mixed_precision_onednn_bfloat16"
    tf.config.optimizer.set_experimental_options({option: True})
    try:
        rewritten = float(tf.function(conv)(x, f).numpy().ravel()[0])
    finally:
        tf.config.optimizer.set_experimental_options({option: False})
    if rewritten == eager:
        pytest.skip("this CPU has no oneDNN bfloat16 rewrite (the graph ran in float32)")
    if not recorded:
        pytest.skip(f"never recorded on {isa_class} kernels: rewritten {rewritten}, eager {eager}")
    close = abs(rewritten - eager) <= 0.5 * abs(eager)
    if recorded[0]:
        # Zeros in a fresh process, garbage (-2.9e31 seen, and NaN: a CI run) after other graphs ran:
        # uninitialised memory. NaN compares False with everything, hence "not close" rather than "far".
        assert not close, rewritten
    else:
        assert close, (rewritten, eager)
