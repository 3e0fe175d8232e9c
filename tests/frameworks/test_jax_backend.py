"""The JAX adapter: the properties through the CLI's code path, and JAX's own semantics."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings

jax = pytest.importorskip("jax", reason="jax is not installed: pip install 'crosscheck[jax]'")
from jax import lax  # noqa: E402

from crosscheck import ConvProblem, ConvSpec, compare, make_problem  # noqa: E402
from crosscheck.backends import (  # noqa: E402
    BackendUnavailable,
    get_backend,
    jax_backend,
)
from crosscheck.backends.jax_backend import (  # noqa: E402
    STRIDED_REASON,
    JaxBackend,
    Static,
    compile_options,
    compiled,
    dimension_numbers,
    to_jax_layout,
)
from crosscheck.core.layouts import strided_view  # noqa: E402
from crosscheck.core.padding import resolve_padding  # noqa: E402
from crosscheck.strategies import conv_problems  # noqa: E402


@pytest.fixture(scope="module")
def backend() -> JaxBackend:
    b = get_backend("jax")
    assert isinstance(b, JaxBackend)
    return b


def spec(rank: int = 2, **kw: Any) -> ConvSpec:
    base: dict[str, Any] = dict(batch=2, in_channels=4, out_channels=6, in_size=(7,) * rank, kernel=(3,) * rank)
    return ConvSpec(**{**base, **kw})


def run_exact(backend: JaxBackend, s: ConvSpec, seed: int = 1) -> tuple[ConvProblem, np.ndarray]:
    problem = make_problem(s, seed, "exact")
    return problem, backend.run(problem)


def test_importing_the_adapter_does_not_import_jax() -> None:
    code = "import sys, crosscheck, crosscheck.backends.jax_backend; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["SAME", "SAME_LOWER"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("kernel", "stride", "dilation"), [(2, 1, 1), (4, 1, 1), (3, 2, 1), (2, 3, 2), (1, 2, 1)])
def test_named_mode_equals_the_pads_crosscheck_resolves(
    backend: JaxBackend, mode: str, rank: int, kernel: int, stride: int, dilation: int
) -> None:
    named = spec(
        rank,
        in_size=(6,) * rank,
        kernel=(kernel,) * rank,
        stride=(stride,) * rank,
        dilation=(dilation,) * rank,
        padding=mode,
    )
    pads = resolve_padding(mode, named.in_size, named.kernel, named.stride, named.dilation)
    problem, y_named = run_exact(backend, named)
    _, y_explicit = run_exact(backend, named.with_(padding=pads))
    np.testing.assert_array_equal(y_named, y_explicit)
    assert y_named.shape[2:] == (-(-6 // stride),) * rank  # ceil(n / stride), stride > 1 included
    assert compare(problem, y_named).passed
    lo, hi = pads[0]
    if lo != hi:  # the odd case: SAME puts the extra pad at the end, SAME_LOWER at the start
        assert (lo < hi) == (mode == "SAME")
        _, y_swapped = run_exact(backend, named.with_(padding=tuple((h, lo_) for lo_, h in pads)))
        assert not np.array_equal(y_named, y_swapped)


@pytest.mark.parametrize(("mode", "expected"), [("SAME", [1.0, 2.0, 3.0, 4.0]), ("SAME_LOWER", [0.0, 1.0, 2.0, 3.0])])
def test_where_jax_puts_the_odd_pad(mode: str, expected: list[float]) -> None:
    # A two-tap filter that picks its first tap: a zero at the start shifts the output right.
    x, w = jax.numpy.arange(1.0, 5.0).reshape(1, 1, 4), jax.numpy.array([[[1.0, 0.0]]])
    y = lax.conv_general_dilated(x, w, (1,), mode)
    assert np.asarray(y).ravel().tolist() == expected


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("pads", [(0, 0), (1, 1), (0, 2), (2, 1)])
def test_explicit_pads_match_the_reference(backend: JaxBackend, rank: int, pads: tuple[int, int]) -> None:
    problem, y = run_exact(backend, spec(rank, padding=(pads,) * rank, stride=(2,) * rank, dilation=(2,) * rank))
    assert compare(problem, y).passed


# --- layouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_hands_jax_really_transposed_arrays(rank: int) -> None:
    s = spec(rank, layout="channels_last", groups=2, in_size=(5, 6, 7)[:rank], kernel=(1, 2, 3)[:rank])
    problem = make_problem(s, 2, "uniform")
    x, w = to_jax_layout(problem)
    assert x.shape == (2, *s.in_size, 4) and x.flags.c_contiguous
    assert w.shape == (*s.kernel, 2, 6) and w.flags.c_contiguous
    np.testing.assert_array_equal(np.moveaxis(x, -1, 1), problem.x)
    np.testing.assert_array_equal(np.moveaxis(w, (-1, -2), (0, 1)), problem.w)
    lhs, rhs, out = dimension_numbers(rank, "channels_last")
    assert lhs == out and lhs[0] == "N" and lhs[-1] == "C" and rhs[-2:] == "IO"


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "int32"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channels_last_agrees_with_channels_first_bit_for_bit(backend: JaxBackend, dtype: str, rank: int) -> None:
    s = spec(rank, dtype=dtype, groups=2, stride=(2,) * rank, dilation=(1, 2, 1)[:rank], padding=((1, 2),) * rank)
    first, y_first = run_exact(backend, s)
    _, y_last = run_exact(backend, s.with_(layout="channels_last"))
    assert y_last.shape == s.y_shape and y_last.flags.c_contiguous
    np.testing.assert_array_equal(y_first, y_last)
    assert compare(first, y_first).passed


def test_strided_is_declared_unsupported_because_jax_arrays_have_no_strides(backend: JaxBackend) -> None:
    view = strided_view(np.arange(24.0).reshape(2, 3, 4))
    assert not view.flags.c_contiguous
    on_device = jax.device_put(view)
    with pytest.raises(AttributeError) as info:
        _ = on_device.strides
    assert str(info.value) in STRIDED_REASON
    assert np.asarray(on_device).flags.c_contiguous  # device_put made a dense copy
    caps = backend.capabilities()
    assert "strided" not in caps.layouts and ("layout strided", STRIDED_REASON) in caps.unsupported
    strided = make_problem(spec(2, layout="strided"), 1)
    assert caps.refuses(strided.spec) is not None
    with pytest.raises(ValueError, match="no strides"):
        backend.run(strided)


# --- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "int32", "int64"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_every_declared_dtype_round_trips(backend: JaxBackend, dtype: str, rank: int) -> None:
    s = spec(rank, dtype=dtype, groups=2, dilation=(2,) * rank, stride=(1, 2, 1)[:rank], padding="SAME")
    problem = make_problem(s, 3, "uniform")
    y = backend.run(problem)
    assert y.dtype == problem.x.dtype and y.shape == s.y_shape
    assert compare(problem, y).passed


def test_x64_is_enabled_so_float64_and_int64_keep_their_bits(backend: JaxBackend) -> None:
    assert backend.precision_flags()["jax_enable_x64"] is True
    s = spec(1, batch=1, in_channels=1, out_channels=1, in_size=(1,), kernel=(1,), dtype="float64")
    y = backend.run(ConvProblem(s, np.full((1, 1, 1), 1 + 2.0**-40), np.ones((1, 1, 1))))
    assert y.dtype == np.float64 and y.item() == 1 + 2.0**-40  # float32 would round it to 1
    big = np.full((1, 1, 1), 2**20, dtype=np.int64)
    y_int = backend.run(ConvProblem(s.with_(dtype="int64"), big, big))
    assert y_int.dtype == np.int64 and y_int.item() == 2**40  # int32 would wrap


@pytest.mark.parametrize(("dtype", "big"), [("float16", 2048.0), ("bfloat16", 256.0)])
def test_half_precision_accumulates_in_float32(backend: JaxBackend, dtype: str, big: float) -> None:
    """The default contract (`crosscheck.core.bounds`): big + eight ones − big sums to 8 only in a wider accumulator.

    At `big` the dtype's spacing is 2, so any order that adds a one to ±big in the input's own
    precision loses it (ties round to even); float32 holds every partial sum exactly.
    """
    npdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    s = spec(1, batch=1, in_channels=10, out_channels=1, in_size=(1,), kernel=(1,), dtype=dtype)
    layouts = ("channels_first", "channels_last")
    x = np.array([big, *[1.0] * 8, -big], dtype=npdt).reshape(1, 10, 1)
    w = np.ones((1, 10, 1), dtype=npdt)
    for layout in layouts:
        assert backend.run(ConvProblem(s.with_(layout=layout), x, w)).item() == 8.0
    taps = ConvProblem(s.with_(in_channels=1, in_size=(10,), kernel=(10,)), x.reshape(1, 1, 10), w.reshape(1, 1, 10))
    assert backend.run(taps).item() == 8.0
    assert backend.capabilities().accumulator(dtype) == "float32"


# --- flags, compilation, devices, snippets -----------------------------------------------------


def test_precision_flags_are_pinned_and_reported(backend: JaxBackend) -> None:
    flags = backend.precision_flags()
    config: Any = jax.config
    assert flags["jax_enable_x64"] is True and config.jax_enable_x64
    assert flags["jax_default_matmul_precision"] == config.jax_default_matmul_precision
    assert flags["precision"] == "HIGHEST" and flags["preferred_element_type"] is None
    assert flags["platform"] == "cpu"
    assert flags["xla_compile_options"] == compile_options("cpu")


def test_a_repeated_shape_is_compiled_once(backend: JaxBackend) -> None:
    s = spec(2, in_size=(11, 13), kernel=(2, 5), stride=(3, 1), padding="SAME_LOWER", dtype="float16")
    first, second = make_problem(s, 1), make_problem(s, 2)
    before = compiled.cache_info()
    backend.run(first)
    backend.run(second)
    backend.run(second.flipped())
    after = compiled.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 2
    x, w = to_jax_layout(first)
    assert compiled(Static.of(s, x, w, "cpu")) is compiled(Static.of(s, x, w, "cpu"))


def test_a_named_mode_and_its_pads_share_one_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process sharing; the persistent store (off here) keeps one file per key instead.
    monkeypatch.setattr(jax_backend, "compilation_cache_dir", lambda: None)
    named = spec(2, in_size=(9, 10), kernel=(2, 3), stride=(2, 1), dilation=(1, 2), padding="SAME_LOWER")
    explicit = named.with_(padding=named.pads)
    x, w = to_jax_layout(make_problem(named, 1))
    assert compiled(Static.of(named, x, w, "cpu")) is compiled(Static.of(explicit, x, w, "cpu"))
    swapped = named.with_(padding=tuple((hi, lo) for lo, hi in named.pads))
    assert compiled(Static.of(swapped, x, w, "cpu")) is not compiled(Static.of(named, x, w, "cpu"))


def test_executables_persist_between_runs_and_give_the_same_bits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(jax_backend, "compilation_cache_dir", lambda: str(tmp_path))
    s = spec(2, in_size=(7, 9), kernel=(3, 2), stride=(1, 2), padding="SAME", dtype="float64")
    problem = make_problem(s, 3)
    x, w = to_jax_layout(problem)
    key = Static.of(s, x, w, "cpu")
    fresh = compiled.__wrapped__(key)  # lowered, compiled and stored
    stored = list(tmp_path.glob("crosscheck-executables/*.pickle"))
    assert len(stored) == 1
    lowerings = []
    monkeypatch.setattr(jax_backend, "_executable", lambda *a: lowerings.append(a))
    loaded = compiled.__wrapped__(key)  # a new process would find it on disk: no tracing, no lowering
    assert lowerings == [] and loaded is not fresh
    np.testing.assert_array_equal(np.asarray(loaded(x, w)), np.asarray(fresh(x, w)))
    # A damaged entry is rebuilt, never trusted.
    monkeypatch.undo()
    monkeypatch.setattr(jax_backend, "compilation_cache_dir", lambda: str(tmp_path))
    stored[0].write_bytes(b"not an executable")
    rebuilt = compiled.__wrapped__(key)
    np.testing.assert_array_equal(np.asarray(rebuilt(x, w)), np.asarray(fresh(x, w)))
    assert stored[0].read_bytes() != b"not an executable"


@pytest.mark.parametrize("value", ["off", "0", ""])
def test_the_persistent_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", value)
    assert jax_backend.compilation_cache_dir() is None
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "/somewhere")
    assert jax_backend.compilation_cache_dir() == "/somewhere"
    monkeypatch.delenv("CROSSCHECK_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert jax_backend.compilation_cache_dir() == "/xdg/crosscheck/jax"


@settings(max_examples=25, database=None, deadline=None)
@given(conv_problems(JaxBackend().capabilities(), values=("uniform",)))
def test_faster_compile_options_change_no_bit(problem: ConvProblem) -> None:
    """The CPU compile options only speed compilation up: JAX's default pipeline gives the same bits."""
    backend = get_backend("jax")
    x, w = to_jax_layout(problem)
    key = Static.of(problem.spec, x, w, "cpu")

    def conv(a: Any, b: Any) -> Any:
        return lax.conv_general_dilated(
            a,
            b,
            key.strides,
            key.padding,
            rhs_dilation=key.dilation,
            feature_group_count=key.groups,
            dimension_numbers=key.dims,
            precision=lax.Precision.HIGHEST,
        )

    default = np.asarray(jax.jit(conv)(x, w))
    if problem.spec.layout == "channels_last":
        default = np.moveaxis(default, -1, 1)
    assert backend.run(problem).tobytes() == np.ascontiguousarray(default).tobytes()


def test_cuda_without_a_gpu_is_unavailable_with_the_reason() -> None:
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match="no JAX cuda device"):
        get_backend("jax", device="cuda")


@pytest.mark.parametrize(
    "s",
    [
        spec(1, padding=((0, 2),), dilation=(2,)),
        spec(2, layout="channels_last", dtype="bfloat16", padding="SAME", groups=2, stride=(2, 1)),
        spec(3, layout="channels_last", dtype="int64", stride=(1, 2, 1), padding="SAME_LOWER"),
        spec(2, dtype="float64", padding="VALID", groups=4, out_channels=4),
    ],
)
def test_native_snippet_runs_and_gives_the_adapters_result(backend: JaxBackend, s: ConvSpec) -> None:
    problem = make_problem(s, 7, "uniform")
    snippet = backend.native_snippet(problem)
    assert snippet is not None and "lax.conv_general_dilated(" in snippet
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(snippet, namespace)
    y = np.asarray(namespace["y"])
    assert y.dtype == problem.x.dtype
    assert y.tobytes() == np.ascontiguousarray(backend.run(problem)).tobytes()


# --- the backward pass: jax.vjp and lax.conv_transpose / lhs_dilation ---------------------------


def _exact_backward(s: ConvSpec, seed: int = 2) -> tuple[ConvProblem, np.ndarray]:
    from crosscheck.core.adjoint import cotangent

    problem = make_problem(s, seed, "exact")
    return problem, cotangent(problem)


def test_lax_conv_transpose_same_reaches_one_output_size_only() -> None:
    """lax.conv_transpose's padding='SAME' fixes the output at in·stride, so of the two inputs (7 and 8)
    whose stride-2 SAME convolution has 4 outputs it can only be the adjoint of one; the adapter passes
    the explicit pads of the adjoint (`transposed_padding`) instead."""
    from crosscheck.backends.jax_backend import transposed_padding
    from crosscheck.reference.transposed import conv_transpose

    for n in (7, 8):
        s = ConvSpec(1, 1, 1, (n,), (3,), stride=(2,), padding="SAME", dtype="float64")
        problem, g_np = _exact_backward(s)
        g, w = jax.numpy.asarray(g_np), jax.numpy.asarray(problem.w)
        dims = ("NCH", "OIH", "NCH")
        same = np.asarray(lax.conv_transpose(g, w, (2,), "SAME", dimension_numbers=dims, transpose_kernel=True))
        assert same.shape[-1] == 8
        pads = transposed_padding(s)
        ours = np.asarray(lax.conv_transpose(g, w, (2,), pads, dimension_numbers=dims, transpose_kernel=True))
        np.testing.assert_array_equal(ours, conv_transpose(problem, g_np).value)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize(("c_in", "c_out", "groups"), [(4, 6, 2), (3, 3, 3), (2, 6, 2), (6, 4, 2)])
def test_grouped_transposed_convolution_equals_one_lax_conv_transpose_per_group(
    backend: JaxBackend, layout: str, c_in: int, c_out: int, groups: int
) -> None:
    """lax.conv_transpose takes no feature groups; the adapter's grouped lhs_dilation path must equal
    conv_transpose run group by group, bit for bit."""
    from crosscheck.backends.jax_backend import transposed_padding

    s = ConvSpec(
        2, c_in, c_out, (9, 8), (3, 2), stride=(2, 3), dilation=(1, 2), padding=((2, 0), (0, 1)), groups=groups
    )
    problem, g = _exact_backward(s.with_(layout=layout, dtype="float32"))
    got = backend.conv_transpose(problem, g)
    cg, og = c_in // groups, c_out // groups
    dims = ("NCHW", "OIHW", "NCHW")
    for k in range(groups):
        part = lax.conv_transpose(
            jax.numpy.asarray(g[:, k * og : (k + 1) * og]),
            jax.numpy.asarray(problem.w[k * og : (k + 1) * og]),
            s.stride,
            transposed_padding(s),
            rhs_dilation=s.dilation,
            dimension_numbers=dims,
            transpose_kernel=True,
            precision=lax.Precision.HIGHEST,
        )
        np.testing.assert_array_equal(got[:, k * cg : (k + 1) * cg], np.asarray(part))


def test_pads_wider_than_the_window_give_negative_transposed_pads(backend: JaxBackend) -> None:
    """A pad of at least the dilated kernel's extent makes the transposed correlation's pad negative
    (a crop), which XLA accepts; the result is still the reference's."""
    from crosscheck.backends.jax_backend import transposed_padding
    from crosscheck.reference.transposed import conv_transpose

    s = ConvSpec(1, 2, 2, (4,), (2,), padding=((3, 2),), dtype="float64")
    assert min(transposed_padding(s)[0]) < 0
    problem, g = _exact_backward(s)
    np.testing.assert_array_equal(backend.conv_transpose(problem, g), conv_transpose(problem, g).value)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_vjp_is_exact_on_exact_values(backend: JaxBackend, layout: str) -> None:
    from crosscheck.reference.gradients import input_gradient, weight_gradient

    s = spec(2, groups=2, stride=(2, 1), dilation=(1, 2), padding="SAME_LOWER", layout=layout, dtype="bfloat16")
    problem, g = _exact_backward(s)
    gx, gw = backend.vjp(problem, g)
    assert gx.dtype == gw.dtype == problem.x.dtype
    np.testing.assert_array_equal(gx.astype(np.float64), input_gradient(problem, g).value)
    np.testing.assert_array_equal(gw.astype(np.float64), weight_gradient(problem, g).value)


def test_integers_have_no_gradient_but_a_transposed_convolution(backend: JaxBackend) -> None:
    caps = backend.capabilities()
    assert caps.gradients is not None and caps.transposed is not None
    assert "int32" not in caps.gradients.dtypes and "int32" in caps.transposed.dtypes
    x = jax.numpy.ones((1, 1, 3), jax.numpy.int32)
    _, pull = jax.vjp(lambda a: lax.conv_general_dilated(a, a[..., :2], (1,), "VALID"), x)
    assert "float0" in str(pull(jax.numpy.ones((1, 1, 2), jax.numpy.int32))[0].dtype)
