"""The PyTorch adapter: both properties through the CLI's code path, and torch's own semantics."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from typing import Any

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: pip install 'crosscheck[torch]'")
F = torch.nn.functional

from crosscheck import ConvProblem, ConvSpec, compare, make_problem  # noqa: E402
from crosscheck.backends import get_backend  # noqa: E402
from crosscheck.backends.torch_backend import (  # noqa: E402
    SAME_LOWER_REASON,
    TorchBackend,
    refusal,
    split_pads,
    to_numpy,
    to_torch,
    with_layout,
)
from crosscheck.core.padding import resolve_padding  # noqa: E402


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    b = get_backend("torch")
    assert isinstance(b, TorchBackend)
    return b


def spec(rank: int = 2, **kw: Any) -> ConvSpec:
    base: dict[str, Any] = dict(batch=2, in_channels=4, out_channels=6, in_size=(7,) * rank, kernel=(3,) * rank)
    return ConvSpec(**{**base, **kw})


def run_exact(backend: TorchBackend, s: ConvSpec, seed: int = 1) -> tuple[ConvProblem, np.ndarray]:
    problem = make_problem(s, seed, "exact")
    return problem, backend.run(problem)


def test_importing_the_adapter_does_not_import_torch() -> None:
    code = "import sys, crosscheck, crosscheck.backends.torch_backend; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("kernel", "dilation"), [(2, 1), (4, 1), (3, 2), (1, 1), (5, 1)])
def test_same_equals_resolved_pads_with_the_odd_pad_at_the_end(
    backend: TorchBackend, rank: int, kernel: int, dilation: int
) -> None:
    named = spec(rank, in_size=(6,) * rank, kernel=(kernel,) * rank, dilation=(dilation,) * rank, padding="SAME")
    pads = resolve_padding("SAME", named.in_size, named.kernel, named.stride, named.dilation)
    if (kernel - 1) * dilation % 2:
        assert pads[0][0] < pads[0][1]  # the odd case: the extra pad goes at the end
    problem, y_named = run_exact(backend, named)
    _, y_explicit = run_exact(backend, named.with_(padding=pads))
    assert y_named.shape == named.y_shape == (2, 6, *(6,) * rank)
    np.testing.assert_array_equal(y_named, y_explicit)
    assert compare(problem, y_named).passed


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_same_puts_the_extra_pad_after_the_input() -> None:
    # A two-tap filter that picks its first tap: with the extra zero at the end, y equals x.
    x = torch.arange(1.0, 6.0).reshape(1, 1, 5)
    y = F.conv1d(x, torch.tensor([[[1.0, 0.0]]]), padding="same")
    assert y.flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_valid_pads_nothing(backend: TorchBackend, rank: int) -> None:
    named = spec(rank, stride=(2,) * rank, padding="VALID")
    _, y_named = run_exact(backend, named)
    _, y_explicit = run_exact(backend, named.with_(padding=((0, 0),) * rank))
    np.testing.assert_array_equal(y_named, y_explicit)


def test_explicit_pads_split_into_conv_padding_and_f_pad() -> None:
    assert split_pads(spec(2, padding=((1, 1), (2, 2)))) == ((1, 2), [0, 0, 0, 0])
    # F.pad lists the last dimension first.
    assert split_pads(spec(2, padding=((0, 2), (3, 1)))) == ((0, 1), [2, 0, 0, 2])


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("pads", [(1, 1), (0, 2), (2, 1)])
def test_explicit_pads_match_the_reference(backend: TorchBackend, rank: int, pads: tuple[int, int]) -> None:
    problem, y = run_exact(backend, spec(rank, padding=(pads,) * rank, stride=(2,) * rank))
    assert compare(problem, y).passed


def test_same_with_stride_is_a_declared_refusal_carrying_torchs_message(backend: TorchBackend) -> None:
    with pytest.raises(RuntimeError) as info:
        F.conv2d(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 3, 3), stride=(1, 2), padding="same")
    message = str(info.value).splitlines()[0]
    assert "strided" in message
    reason = backend.capabilities().refuses(spec(2, padding="SAME", stride=(1, 2)))
    assert reason is not None and message in reason
    assert backend.capabilities().refuses(spec(2, padding="SAME")) is None
    assert (
        dict(backend.capabilities().unsupported)["padding SAME with stride > 1"]
        == f"torch raises RuntimeError: {message}"
    )


def test_same_lower_is_declared_unsupported_and_torch_refuses_it(backend: TorchBackend) -> None:
    caps = backend.capabilities()
    assert "SAME_LOWER" not in caps.padding
    assert ("padding SAME_LOWER", SAME_LOWER_REASON) in caps.unsupported
    with pytest.raises(RuntimeError) as info:
        F.conv1d(torch.zeros(1, 1, 4), torch.zeros(1, 1, 2), padding="same_lower")
    assert f"{type(info.value).__name__}: {info.value}" in SAME_LOWER_REASON


# --- dtypes ------------------------------------------------------------------------------------


def test_int32_with_dilation_is_a_declared_refusal_carrying_torchs_message(backend: TorchBackend) -> None:
    x, w = torch.ones(1, 2, 6, 6, dtype=torch.int32), torch.ones(3, 2, 2, 2, dtype=torch.int32)
    with pytest.raises(NotImplementedError) as info:
        F.conv2d(x, w, dilation=2)
    reason = backend.capabilities().refuses(spec(2, dtype="int32", dilation=(1, 2)))
    assert reason is not None and str(info.value) in reason
    assert refusal("int32_dilation") == f"torch raises NotImplementedError: {info.value}"
    # int64 has the dilated kernel, and int32 without dilation is fine.
    assert F.conv2d(x.long(), w.long(), dilation=2).dtype == torch.int64
    assert backend.capabilities().refuses(spec(2, dtype="int32")) is None
    assert "dtype int32 with dilation > 1" in dict(backend.capabilities().unsupported)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "int32", "int64"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_every_declared_dtype_round_trips(backend: TorchBackend, dtype: str, rank: int) -> None:
    s = spec(rank, dtype=dtype, groups=2, dilation=(2,) * rank if dtype != "int32" else ())
    problem = make_problem(s, 3, "uniform")
    y = backend.run(problem)
    assert y.dtype == problem.x.dtype and y.shape == s.y_shape and y.flags.c_contiguous
    assert compare(problem, y).passed


def test_bfloat16_values_survive_the_trip_bit_for_bit() -> None:
    a = np.array([1.0, -2.5, 3.140625, 1e-30, 65280.0], dtype=ml_dtypes.bfloat16)
    t = to_torch(a, "cpu")
    assert t.dtype == torch.bfloat16
    assert t.float().tolist() == a.astype(np.float32).tolist()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_accumulates_in_float32(dtype: str) -> None:
    """Our contract (`crosscheck.core.bounds`), measured two ways.

    1. 256 positive products per output: every output is the correctly rounded exact sum, which an
       accumulator of the input's own precision misses on most outputs (sequentially ~85%, pairwise ~30%).
    2. Terms big + half-ulp-tie + 2^-20: exact rounding would break the tie upwards; float32 drops the
       2^-20 and rounds the tie to even, which is what torch returns, in every order.
    """
    npdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1, size=(1, 256, 400)).astype(npdt)
    w = rng.uniform(0.5, 1, size=(1, 256, 1)).astype(npdt)
    exact = (x[0].astype(np.float64) * w[0].astype(np.float64)).sum(axis=0)
    y = F.conv1d(to_torch(x, "cpu"), to_torch(w, "cpu")).float().numpy()[0, 0]
    np.testing.assert_array_equal(y, exact.astype(npdt).astype(np.float32))
    own = np.zeros(400, dtype=npdt)
    for c in range(256):
        own = (own.astype(np.float32) + (x[0, c] * w[0, c, 0]).astype(np.float32)).astype(npdt)
    assert np.mean(own.astype(np.float32) == y) < 0.5  # the test can tell the accumulators apart

    half_ulp = 0.5 if dtype == "float16" else 4.0  # at 1024
    tdt = getattr(torch, dtype)
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        xs, ws = [1024.0, half_ulp, 2.0**-10], [1.0, 1.0, 2.0**-10]
        xt = torch.tensor([xs[i] for i in order], dtype=tdt).reshape(1, 3, 1)
        wt = torch.tensor([ws[i] for i in order], dtype=tdt).reshape(1, 3, 1)
        assert F.conv1d(xt, wt).item() == 1024.0  # float64 accumulation would give 1024 + 2·half_ulp


# --- layouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [2, 3])
def test_channels_last_uses_torchs_memory_format(rank: int) -> None:
    fmt = torch.channels_last if rank == 2 else torch.channels_last_3d
    t = with_layout(torch.randn(2, 3, *(5,) * rank), "channels_last")
    assert t.is_contiguous(memory_format=fmt) and not t.is_contiguous()


def test_channels_last_1d_is_emulated_by_nwc_storage() -> None:
    with pytest.raises(RuntimeError, match="required rank 4 tensor"):
        torch.zeros(2, 3, 5).contiguous(memory_format=torch.channels_last)
    t = with_layout(torch.randn(2, 3, 5), "channels_last")
    assert t.stride() == (15, 1, 3) and not t.is_contiguous()
    # torch runs conv1d as a 2-D convolution, where this storage is channels_last.
    assert t.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_strided_layout_is_really_non_contiguous(rank: int) -> None:
    base = torch.randn(2, 3, *(5,) * rank)
    t = with_layout(base, "strided")
    assert torch.equal(t, base)
    assert not t.is_contiguous()
    if rank > 1:
        assert not t.is_contiguous(memory_format=torch.channels_last if rank == 2 else torch.channels_last_3d)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "strided"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_each_layout_matches_the_reference(backend: TorchBackend, layout: str, rank: int) -> None:
    for dtype in ("float32", "bfloat16"):
        s = spec(rank, layout=layout, dtype=dtype, groups=2, stride=(2,) * rank, padding=((1, 2),) * rank)
        problem = make_problem(s, 5, "uniform")
        assert compare(problem, backend.run(problem)).passed


# --- flags, devices, snippets ------------------------------------------------------------------


def test_precision_flags_are_pinned_and_reported(backend: TorchBackend) -> None:
    flags = backend.precision_flags()
    assert flags["torch.backends.cudnn.allow_tf32"] is False
    assert flags["torch.backends.cuda.matmul.allow_tf32"] is False
    assert flags["torch.get_float32_matmul_precision()"] == "highest"
    assert flags["torch.backends.mkldnn.conv.fp32_precision"] in ("ieee", None)
    assert flags["torch.get_num_threads()"] == torch.get_num_threads()
    assert flags["torch.backends.mkldnn.is_available()"] == torch.backends.mkldnn.is_available()


def test_cuda_capabilities_leave_integers_out_with_a_reason() -> None:
    caps = TorchBackend("cuda").capabilities()
    assert not {"int32", "int64"} & set(caps.dtypes)
    assert any("cuda" in feature for feature, _ in caps.unsupported)


@pytest.mark.parametrize(
    "s",
    [
        spec(1, layout="channels_last", padding=((0, 2),)),
        spec(2, layout="strided", dtype="bfloat16", padding="SAME", groups=2),
        spec(3, layout="channels_last", dtype="int64", stride=(1, 2, 1)),
    ],
)
def test_native_snippet_runs_and_gives_the_adapters_result(backend: TorchBackend, s: ConvSpec) -> None:
    problem = make_problem(s, 7, "uniform")
    snippet = backend.native_snippet(problem)
    assert snippet is not None
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(snippet, namespace)
    got = to_numpy(namespace["y"], s.dtype)
    np.testing.assert_array_equal(got.astype(np.float64), backend.run(problem).astype(np.float64))


# --- the backward pass: autograd and F.conv_transpose*d ----------------------------------------


def _exact_backward(s: ConvSpec, seed: int = 2) -> tuple[ConvProblem, np.ndarray]:
    from crosscheck.core.adjoint import cotangent

    problem = make_problem(s, seed, "exact")
    return problem, cotangent(problem)


@pytest.mark.parametrize(
    "pads",
    [((2, 0),), ((0, 2),), ((1, 1),), ((3, 1),), ((0, 0),)],
)
@pytest.mark.parametrize("size", [9, 10, 11])  # output_padding 0, 1 and 2 for stride 3
def test_conv_transpose_with_asymmetric_pads_and_every_output_padding(
    backend: TorchBackend, pads: tuple[tuple[int, int]], size: int
) -> None:
    """torch's padding= is one int per dimension: the adapter passes the common part and crops; with
    exact values every output_padding and pad split must give the reference bit for bit."""
    from crosscheck.backends.torch_backend import transposed_args
    from crosscheck.core.adjoint import output_padding
    from crosscheck.reference.transposed import conv_transpose

    s = ConvSpec(2, 2, 4, (size,), (4,), stride=(3,), padding=pads, dtype="float64")
    problem, g = _exact_backward(s)
    padding, extra, _ = transposed_args(s)
    assert padding == (min(pads[0]),)
    if pads[0][0] >= pads[0][1]:
        assert extra == output_padding(s)  # symmetric or low-heavy pads: crosscheck's output_padding as is
    np.testing.assert_array_equal(backend.conv_transpose(problem, g), conv_transpose(problem, g).value)


def test_output_padding_beyond_the_stride_only_appends_zeros() -> None:
    """PyTorch accepts stride <= output_padding < dilation. Those outputs run past the last position
    any product lands on: they are zeros, and such a size is the adjoint of no forward convolution
    (crosscheck.core.adjoint's docstring), so the property draws output_padding < stride only."""
    g = torch.arange(1.0, 5.0, dtype=torch.float64).view(1, 1, 4)
    w = torch.tensor([[[1.0, 10.0]]], dtype=torch.float64)
    base = F.conv_transpose1d(g, w, stride=1, dilation=3)
    wide = F.conv_transpose1d(g, w, stride=1, dilation=3, output_padding=2)
    assert wide.shape[-1] == base.shape[-1] + 2
    torch.testing.assert_close(wide[..., : base.shape[-1]], base, rtol=0, atol=0)
    assert wide[..., base.shape[-1] :].abs().sum() == 0
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
        F.conv_transpose1d(g, w, stride=2, output_padding=2)


def test_backward_refusals_are_quoted_from_torch() -> None:
    from crosscheck.backends.torch_backend import backward_refusal

    assert "only Tensors of floating point dtype can require gradients" in str(backward_refusal("gradients", "int64"))
    assert "not implemented for 'Int'" in str(backward_refusal("transposed", "int32"))
    assert backward_refusal("transposed", "int64") is None  # torch has an int64 transposed convolution


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    ("kind", "prop", "result"),
    [
        ("gradients", "gradient_input", "input-gradient"),
        ("gradients", "gradient_weight", "weight-gradient"),
        ("transposed", "transposed_matches_reference", "conv-transpose"),
    ],
)
def test_half_backward_sums_are_probed_and_the_finding_follows_the_probe(
    backend: TorchBackend, dtype: str, kind: str, prop: str, result: str
) -> None:
    """torch keeps float16 backward sums in float16 on AVX-512 and AVX2 kernels (not on AVX-512 FP16 / AMX), and
    bfloat16 ones in bfloat16 where oneDNN has no bfloat16 kernels (AVX2): probe it here, under the caps in
    effect, and the replayed finding must say the same."""
    from crosscheck.backends.torch_backend import backward_sums
    from crosscheck.properties import PROPERTIES
    from crosscheck.run.findings import replay

    finding = f"torch-{dtype}-{result}-sums-in-{dtype}"
    probe = backward_sums(kind, dtype)
    sums_in_half = probe is not None and finding in probe
    space = getattr(backend.capabilities(), kind)
    assert space is not None and dtype in space.dtypes  # explored either way: a region, not a refusal
    (entry,) = [e for e in replay(backend, PROPERTIES[prop]) if e["id"] == finding]
    assert entry["outcome"] == ("reproduced" if sums_in_half else "not reproduced here"), (probe, entry)
    isa_class = backend.dispatch()["isa_class"]
    assert entry["expected_here"] == any(e["reproduced"] and e["isa_class"] == isa_class for e in entry["environments"])


def test_the_amx_crash_finding_is_left_out_only_where_torch_dispatches_to_amx(backend: TorchBackend) -> None:
    from crosscheck.core.hardware import isa_rank
    from crosscheck.properties import PROPERTIES
    from crosscheck.run.findings import known_findings, replay

    finding = "torch-amx-bfloat16-grouped-dilated-conv-transpose3d-segfault"
    (f,) = [f for f in known_findings() if f["id"] == finding]
    spec = ConvSpec.from_dict(f["example"]["spec"])
    caps = backend.capabilities().transposed
    assert caps is not None
    amx = isa_rank(backend.dispatch()["isa_class"]) >= isa_rank("amx")
    reason = caps.refuses(spec)
    assert (reason is not None and finding in reason) if amx else reason is None
    (entry,) = [e for e in replay(backend, PROPERTIES["transposed_matches_reference"]) if e["id"] == finding]
    # Replayed in a worker process: on AMX it dies there (reproduced), elsewhere torch computes it.
    assert entry["outcome"] == ("reproduced" if amx else "not reproduced here"), entry


def test_the_amx_garbage_finding_applies_only_where_torch_dispatches_to_amx(backend: TorchBackend) -> None:
    from crosscheck.core.hardware import isa_rank
    from crosscheck.run.findings import regions_holding

    isa_class = backend.dispatch()["isa_class"]
    strided = ConvSpec(1, 2, 2, (6, 6), (3, 3), stride=(2, 2), dtype="bfloat16")
    held = [k.id for k in regions_holding(backend, "batch_independence", strided)]
    if isa_rank(isa_class) < isa_rank("amx"):
        assert held == [], f"torch dispatches to {isa_class} here: the AMX-only region must not apply"
        pytest.skip(f"torch dispatches to {isa_class} here; the finding was seen on AMX kernels")
    assert held == ["torch-amx-bfloat16-strided-or-depth-padded-conv-garbage"]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "strided"])
def test_vjp_in_every_layout_is_exact_on_exact_values(backend: TorchBackend, layout: str) -> None:
    from crosscheck.reference.gradients import input_gradient, weight_gradient

    s = spec(2, groups=2, stride=(2, 1), dilation=(1, 2), padding=((2, 0), (1, 1)), layout=layout, dtype="float32")
    problem, g = _exact_backward(s)
    gx, gw = backend.vjp(problem, g)
    np.testing.assert_array_equal(gx, input_gradient(problem, g).value)
    np.testing.assert_array_equal(gw, weight_gradient(problem, g).value)


def test_the_native_snippet_of_a_small_problem_runs_without_crosscheck(backend: TorchBackend) -> None:
    """Ready for an upstream issue: the problem's arrays are literals, the call is torch's own."""
    s = spec(2, dtype="bfloat16", padding=((1, 0), (2, 1)), stride=(2, 1))
    problem = make_problem(s, 4)
    code = backend.native_snippet(problem)
    assert code is not None and "crosscheck" not in code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "tensor(" in out.stdout and "bfloat16" in out.stdout
