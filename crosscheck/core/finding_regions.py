"""Where each known finding lives in the problem space: one explicit registry, keyed by finding id.

A region is a predicate on the forward problem (kept as narrow as the measurements that found it
allow), the properties it concerns, and which ISA classes it applies on. Inside a region the random
search goes on: a failure the finding explains is counted as *known, reproduced here* and the search
continues; a pass is counted as *not reproduced here* (`crosscheck.run.runner`). The data about each
finding (environments, minimal example, explanation) is in `crosscheck/data/known_findings.json`;
`tests/frameworks/test_findings.py` checks that the two name the same findings.

Crash findings have no region here: a crash would end an in-process run, so their adapters keep
those problems out of the search (where the finding was observed) and the minimal example is only
replayed in a worker process (`crosscheck.run.findings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvSpec

# The properties whose checks run the backend's forward convolution on the problem as drawn.
FORWARD = frozenset(
    {
        "matches_reference",
        "is_cross_correlation",
        "named_padding",
        "batch_independence",
        "linearity",
        "group_concatenation",
        "dilation_as_zero_insertion",
        "stride_as_subsampling",
        "shift_equivariance",
        "adjoint_identity",
    }
)
GRADIENTS = frozenset({"gradient_input", "gradient_weight"})
TRANSPOSED = frozenset({"transposed_matches_reference", "adjoint_identity"})


@dataclass(frozen=True)
class Region:
    """`contains(spec)` for the `properties` of one backend. `min_isa_class`: the region applies only where the
    backend dispatches to that class or a later one (a region known from one kind of CPU only, too wide to
    hold elsewhere); None: on every CPU."""

    backend: str
    properties: frozenset[str]
    contains: Callable[[ConvSpec], bool]
    min_isa_class: str | None = None


def _rank3_float16(spec: ConvSpec) -> bool:
    return spec.dtype == "float16" and spec.rank == 3


def _tf_depthwise_float16(spec: ConvSpec) -> bool:
    # What TensorflowBackend.op_for sends to depthwise_conv2d (equal strides, not stride with dilation).
    if spec.dtype != "float16" or spec.rank != 2 or not 1 < spec.groups == spec.in_channels:
        return False
    return spec.stride[0] == spec.stride[1] and not (max(spec.stride) > 1 and max(spec.dilation) > 1)


def _tf_bfloat16_depthwise_row_stride_below_column(spec: ConvSpec) -> bool:
    # oneDNN's bfloat16 depthwise kernels (TensorFlow sends bfloat16 depthwise problems with unequal strides to
    # depthwise_conv2d): a height stride of 1 under a larger width stride leaves output rows unwritten.
    if spec.dtype != "bfloat16" or spec.rank != 2 or not 1 < spec.groups == spec.in_channels:
        return False
    # A dilation along a one-tap kernel dimension changes no window, but sends the problem to grouped conv2d (stride
    # with dilation), which oneDNN runs with the same depthwise kernel: rows unwritten alike (found by issue 20's
    # full-suite run: kernel [1, 2], dilation [2, 1]).
    no_dilation = all(d == 1 or k == 1 for d, k in zip(spec.dilation, spec.kernel))
    return spec.stride[0] == 1 < spec.stride[1] and no_dilation


def _float16(spec: ConvSpec) -> bool:
    return spec.dtype == "float16"


def _tf_bfloat16_explicit_pads(spec: ConvSpec) -> bool:
    # conv2d and depthwise_conv2d take explicit pad lists (every other op gets tf.pad + VALID).
    return spec.dtype == "bfloat16" and spec.rank == 2 and not isinstance(spec.padding, str)


def _tf_bfloat16_same_depth_padded_conv3d(spec: ConvSpec) -> bool:
    both_sides = spec.padding == "SAME" and spec.kernel[0] >= 3
    return spec.dtype == "bfloat16" and spec.rank == 3 and spec.in_size[0] == 1 and both_sides


def _shallower_than_kernel(spec: ConvSpec) -> bool:
    """The input's depth is less than the (dilated) kernel's: only padding lets the kernel fit (oneDNN's
    bfloat16 backward-weights kernels go wrong there, in torch and TensorFlow alike)."""
    return spec.in_size[0] < effective_kernel(spec.kernel[0], spec.dilation[0])


def _tf_bfloat16_same_shallow_conv3d(spec: ConvSpec) -> bool:
    bf16_3d = spec.dtype == "bfloat16" and spec.rank == 3
    return bf16_3d and spec.padding == "SAME" and _shallower_than_kernel(spec)


def _torch_bfloat16_channels_last_depth_padded(spec: ConvSpec) -> bool:
    cl3 = spec.dtype == "bfloat16" and spec.rank == 3 and spec.layout == "channels_last"
    return cl3 and sum(spec.pads[0]) > 0 and _shallower_than_kernel(spec)


def _torch_bfloat16_strided_or_depth_padded(spec: ConvSpec) -> bool:
    depth_padded = spec.rank == 3 and sum(spec.pads[0]) > 0
    return spec.dtype == "bfloat16" and spec.rank in (2, 3) and (max(spec.stride) > 1 or depth_padded)


def _torch_float32_strided_or_depth_padded(spec: ConvSpec) -> bool:
    # precision_modes runs float32 problems in bfloat16 (autocast, oneDNN's fp32 downconversion).
    return _torch_bfloat16_strided_or_depth_padded(spec.with_(dtype="bfloat16")) and spec.dtype == "float32"


def _bfloat16(spec: ConvSpec) -> bool:
    return spec.dtype == "bfloat16"


def _unclamped_same_pad_negative(spec: ConvSpec) -> bool:
    # ONNX's SAME formula before any clamping: (ceil(n/s) - 1)·s + dilated kernel - n, per dimension.
    if spec.padding not in ("SAME", "SAME_LOWER"):
        return False
    for n, k, s, d in zip(spec.in_size, spec.kernel, spec.stride, spec.dilation):
        if (-(-n // s) - 1) * s + effective_kernel(k, d) - n < 0:
            return True
    return False


def _tf_eigen_conv3d_same_pad_below_minus_one(spec: ConvSpec) -> bool:
    # TensorFlow's Eigen Conv3D (the CPU dtypes oneDNN does not serve) halves a negative SAME pad with truncation:
    # from -2 down, the window moves.
    if spec.rank != 3 or spec.dtype not in ("float64", "float16") or spec.padding != "SAME":
        return False
    return any(
        (-(-n // s) - 1) * s + effective_kernel(k, d) - n <= -2
        for n, k, s, d in zip(spec.in_size, spec.kernel, spec.stride, spec.dilation)
    )


def _onnx_reference_grouped_transpose(spec: ConvSpec) -> bool:
    return spec.groups > 1 and not spec.in_channels == spec.out_channels == spec.groups


# One level up (`through` in known_findings.json): Keras layers reach TensorFlow's kernels only on some paths. Keras's
# tensorflow backend runs grouped and channels_first 3-D convolutions through XLA (jit_compile), the rest through
# tf.nn.convolution; DepthwiseConv1D/2D through tf.nn.depthwise_conv2d (1-D as a height-1 2-D).


def _keras_tf_conv3d(spec: ConvSpec) -> bool:
    return spec.rank == 3 and spec.groups == 1 and spec.layout == "channels_last"


def _keras_depthwise(spec: ConvSpec) -> bool:
    return spec.rank in (1, 2) and 1 < spec.groups == spec.in_channels


def _keras_tf_conv3d_float16(spec: ConvSpec) -> bool:
    return spec.dtype == "float16" and _keras_tf_conv3d(spec)


def _keras_tf_depthwise_float16(spec: ConvSpec) -> bool:
    return spec.dtype == "float16" and _keras_depthwise(spec)


def _keras_tf_bfloat16_same_depth_padded_conv3d(spec: ConvSpec) -> bool:
    return _tf_bfloat16_same_depth_padded_conv3d(spec) and _keras_tf_conv3d(spec)


def _keras_tf_eigen_conv3d_same_pad_below_minus_one(spec: ConvSpec) -> bool:
    return _tf_eigen_conv3d_same_pad_below_minus_one(spec) and _keras_tf_conv3d(spec)


def _openvino_float32_batched_strided_padded(spec: ConvSpec) -> bool:
    # OpenVINO's CPU plugin on AVX-512 (f32: oneDNN brg_conv_fwd; its default bf16 inference precision too): batch
    # items after the first lose output rows. Measured with the stride on the last axis (f32) and on the first (bf16).
    return (
        spec.dtype == "float32"
        and spec.batch > 1
        and spec.rank >= 2
        and max(spec.stride) > 1
        and any(lo or hi for lo, hi in spec.pads)
    )


TF, TORCH, ONNX_REF = "tensorflow", "torch", "onnx.reference"
KERAS_TF, KERAS_TORCH = "keras.tensorflow", "keras.torch"
GRAD_X, GRAD_W = frozenset({"gradient_input"}), frozenset({"gradient_weight"})

REGIONS: dict[str, tuple[Region, ...]] = {
    "tensorflow-conv3d-float16-sums-in-float16": (
        Region(TF, FORWARD, _rank3_float16),
        Region(KERAS_TF, FORWARD, _keras_tf_conv3d_float16),
    ),
    "tensorflow-depthwise-float16-sums-in-float16": (
        Region(TF, FORWARD, _tf_depthwise_float16),
        Region(KERAS_TF, FORWARD, _keras_tf_depthwise_float16),
    ),
    "tensorflow-float16-input-gradient-sums-in-float16": (Region(TF, GRAD_X, _float16),),
    "tensorflow-float16-weight-gradient-sums-in-float16": (Region(TF, GRAD_W, _float16),),
    "tensorflow-float16-conv-transpose-sums-in-float16": (
        Region(TF, TRANSPOSED, _float16),
        Region(KERAS_TF, TRANSPOSED, _float16),
    ),
    "tensorflow-bfloat16-explicit-padding-input-gradient": (Region(TF, GRAD_X, _tf_bfloat16_explicit_pads),),
    "tensorflow-bfloat16-explicit-padding-weight-gradient": (Region(TF, GRAD_W, _tf_bfloat16_explicit_pads),),
    "tensorflow-bfloat16-explicit-padding-conv-transpose": (Region(TF, TRANSPOSED, _tf_bfloat16_explicit_pads),),
    "tensorflow-bfloat16-same-depth-padded-conv3d-garbage": (
        Region(TF, FORWARD, _tf_bfloat16_same_depth_padded_conv3d),
        Region(KERAS_TF, FORWARD, _keras_tf_bfloat16_same_depth_padded_conv3d),
    ),
    "tensorflow-bfloat16-same-depth-padded-conv3d-weight-gradient": (
        Region(TF, GRAD_W, _tf_bfloat16_same_shallow_conv3d),
    ),
    "torch-float16-input-gradient-sums-in-float16": (Region(TORCH, GRAD_X, _float16),),
    "torch-float16-weight-gradient-sums-in-float16": (Region(TORCH, GRAD_W, _float16),),
    "torch-float16-conv-transpose-sums-in-float16": (
        Region(TORCH, TRANSPOSED, _float16),
        Region(KERAS_TORCH, TRANSPOSED, _float16),
    ),
    "torch-bfloat16-input-gradient-sums-in-bfloat16": (Region(TORCH, GRAD_X, _bfloat16),),
    "torch-bfloat16-weight-gradient-sums-in-bfloat16": (Region(TORCH, GRAD_W, _bfloat16),),
    "torch-bfloat16-conv-transpose-sums-in-bfloat16": (Region(TORCH, TRANSPOSED, _bfloat16),),
    "torch-bfloat16-channels-last-3d-depth-padded-weight-gradient": (
        Region(TORCH, GRAD_W, _torch_bfloat16_channels_last_depth_padded),
    ),
    "torch-amx-bfloat16-strided-or-depth-padded-conv-garbage": (
        Region(TORCH, FORWARD, _torch_bfloat16_strided_or_depth_padded, min_isa_class="amx"),
        Region(TORCH, frozenset({"precision_modes"}), _torch_float32_strided_or_depth_padded, min_isa_class="amx"),
    ),
    "onnx-reference-float16-conv-transpose-sums-in-float16": (Region(ONNX_REF, TRANSPOSED, _float16),),
    "onnxruntime-same-padding-negative-pad-shifts-the-window": (
        # precision_modes' default mode is the plain forward call: the same shifted window.
        Region("onnxruntime", FORWARD | {"precision_modes"}, _unclamped_same_pad_negative),
    ),
    "tensorflow-eigen-conv3d-same-negative-pad-shifts-the-window": (
        Region(TF, FORWARD, _tf_eigen_conv3d_same_pad_below_minus_one),
        Region(KERAS_TF, FORWARD, _keras_tf_eigen_conv3d_same_pad_below_minus_one),
    ),
    "tensorflow-onednn-bfloat16-depthwise-unequal-strides-skips-rows": (
        Region(TF, FORWARD, _tf_bfloat16_depthwise_row_stride_below_column, min_isa_class="avx512-bf16"),
        # DepthwiseConv2D only: DepthwiseConv1D runs as a height-1 2-D, one row, none to skip (measured: it passes).
        Region(KERAS_TF, FORWARD, _tf_bfloat16_depthwise_row_stride_below_column, min_isa_class="avx512-bf16"),
    ),
    "openvino-cpu-float32-batched-strided-padded-conv-zeros": (
        # precision_modes' default mode and the conversion's converted side are the same call as run().
        Region(
            "openvino",
            FORWARD | {"precision_modes", "conversion_end_to_end"},
            _openvino_float32_batched_strided_padded,
            min_isa_class="avx512",
        ),
    ),
    "onnx-reference-grouped-conv-transpose-slices-the-weight-wrongly": (
        Region(ONNX_REF, TRANSPOSED, _onnx_reference_grouped_transpose),
    ),
}
