"""Keras 3 layers on each Keras backend (crosscheck.backends.keras_backends).

Keras loads one backend per process, so this file runs one of them in its own process (keras.torch, the cheapest to
load, unless another test file's `import tensorflow` loaded Keras on tensorflow first) and another once in a worker
process; the run (`crosscheck run --backends ported`) covers all three.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

# Not importorskip: importing Keras here would load it on its default backend (tensorflow) for the whole process.
if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
    pytest.skip(
        "keras or torch is not installed (keras.torch is this file's in-process backend)", allow_module_level=True
    )

from crosscheck import ConvProblem, ConvSpec, compare, make_problem
from crosscheck.backends import keras_backends as kb
from crosscheck.backends import registry
from crosscheck.backends.base import BackendUnavailable
from crosscheck.cli.main import main
from crosscheck.core.adjoint import cotangent, output_padding
from crosscheck.core.padding import effective_kernel
from crosscheck.properties import PROPERTIES
from crosscheck.reference.transposed import conv_transpose
from crosscheck.run.runner import run_property

# Keras's torch backend converts tensors with np.array(x), which NumPy 2 flags on every call: Keras's, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

# ---- the translation, without Keras --------------------------------------------------------------------


def test_import_loads_no_framework() -> None:
    frameworks = "('keras', 'torch', 'jax', 'tensorflow')"
    code = f"import sys, crosscheck.backends.keras_backends; print([m for m in {frameworks} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_ported_group_holds_one_backend_per_keras_backend() -> None:
    assert {n: registry.PORTED[n] for n in kb.BACKENDS} == {
        n: f"crosscheck.backends.keras_backends:{cls.__name__}" for n, cls in kb.BACKENDS.items()
    }
    assert not set(kb.BACKENDS) & set(registry.backend_names())  # a default run leaves them out


@pytest.mark.parametrize(
    "spec",
    [
        ConvSpec(1, 4, 6, (5, 4), (3, 2), groups=2),
        ConvSpec(2, 3, 6, (5,), (2,), groups=3),  # DepthwiseConv1D, multiplier 2
        ConvSpec(1, 2, 4, (4, 5, 3), (2, 3, 2), groups=2),
    ],
    ids=lambda s: s.describe(),
)
def test_the_kernel_is_the_weight_rearranged(spec: ConvSpec) -> None:
    w = make_problem(spec, seed=1).w
    plan = kb.forward_plan(spec)
    kernel = kb.keras_kernel(w, spec, plan)
    cin = spec.in_channels // spec.groups
    for co in range(spec.out_channels):
        for ci in range(cin):
            if plan.layer.startswith("Depthwise"):
                m = spec.out_channels // spec.in_channels
                # Output channel c·m + j reads input channel c through kernel[..., c, j].
                np.testing.assert_array_equal(kernel[..., co // m, co % m], w[co, ci])
            else:
                np.testing.assert_array_equal(kernel[..., ci, co], w[co, ci])
    assert plan.layer == ("DepthwiseConv1D" if spec.rank == 1 else f"Conv{spec.rank}D")


def test_padding_translation() -> None:
    explicit = ConvSpec(1, 1, 1, (6,), (3,), padding=((2, 1),))
    assert kb.forward_plan(explicit).kwargs()["padding"] == "valid"
    assert kb.forward_plan(explicit).zero_padding == ((2, 1),)
    causal = ConvSpec(1, 1, 1, (6,), (3,), dilation=(2,), padding=((4, 0),))
    assert kb.forward_plan(causal).kwargs()["padding"] == "causal" and kb.forward_plan(causal).zero_padding is None
    assert kb.forward_plan(ConvSpec(1, 1, 1, (6, 6), (3, 3), padding="SAME")).kwargs()["padding"] == "same"
    assert not kb.is_causal(ConvSpec(1, 1, 1, (6,), (3,), padding=((2, 1),)))
    # DepthwiseConv1D takes no padding='causal' (its padding is 'valid' or 'same' only): ZeroPadding1D instead.
    depthwise = ConvSpec(1, 2, 2, (6,), (2,), groups=2, padding=((1, 0),))
    assert kb.forward_plan(depthwise).kwargs()["padding"] == "valid" and kb.forward_plan(depthwise).zero_padding


def test_same_transposed_output_padding_gives_the_forward_input_size() -> None:
    """Keras's 'same' transposed output is (t − 1)·s + eff_k mod 2 + output_padding (output_padding < stride), or
    t·s without one."""
    for n in range(1, 10):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                for d in (1, 2):
                    spec = ConvSpec(1, 1, 1, (n,), (k,), stride=(s,), dilation=(d,), padding="SAME")
                    if effective_kernel(k, d) > n + sum(spec.pads[0]):
                        continue
                    reachable, op = kb.same_output_padding(spec)
                    (t,) = spec.out_size
                    if not reachable:
                        assert all(n - (t - 1) * s - effective_kernel(k, d) % 2 != p for p in range(s)) and n != t * s
                    elif op is None:  # Keras's default: the input size times the stride
                        assert n == t * s
                    else:
                        assert (t - 1) * s + effective_kernel(k, d) % 2 + op[0] == n and 0 <= op[0] < s


# ---- one Keras backend in this process ----------------------------------------------------------------------


def _in_process_name() -> str:
    """keras.torch (the cheapest to load), unless this process has Keras already: another test file's
    `import tensorflow` loads it on the tensorflow backend, and a process keeps the backend it loaded first."""
    keras = sys.modules.get("keras")
    return f"keras.{keras.config.backend()}" if keras is not None else "keras.torch"


@pytest.fixture(scope="module")
def keras_here() -> kb.KerasBackend:
    backend = registry.get_backend(_in_process_name())
    assert isinstance(backend, kb.KerasBackend)
    return backend


def _runs(backend: kb.KerasBackend, spec: ConvSpec, transposed: bool = False) -> None:
    """Skip, saying why, a problem this Keras backend's layers refuse here (measured; e.g. TensorFlow's float64
    kernels take no channels_first on the CPU)."""
    caps = backend.capabilities()
    space = caps.transposed if transposed else caps
    assert space is not None
    reason = space.refuses(spec)
    if reason:
        assert "keras.layers." in reason or "not supported" in reason
        pytest.skip(f"{backend.name} refuses it here: {reason}")


EXACT = [
    ConvSpec(2, 3, 4, (7, 6), (4, 3), stride=(2, 1), padding="SAME"),  # odd total pads: the extra one at the end
    ConvSpec(1, 2, 3, (6, 5), (3, 2), padding=((2, 0), (1, 3)), layout="channels_first"),  # ZeroPadding2D
    ConvSpec(1, 2, 2, (7,), (3,), dilation=(2,), padding=((4, 0),), layout="channels_last"),  # padding='causal'
    ConvSpec(1, 3, 6, (6, 6), (3, 3), groups=3, stride=(2, 2), padding="SAME", layout="channels_last"),  # Depthwise2D
    ConvSpec(1, 2, 4, (5,), (2,), groups=2, stride=(2,), dilation=(2,), padding=((1, 2),)),  # DepthwiseConv1D
    ConvSpec(1, 2, 2, (4,), (2,), groups=2, padding=((1, 0),), layout="channels_last"),  # causal pads: ZeroPadding1D
    ConvSpec(1, 4, 2, (4, 3, 5), (2, 2, 3), groups=2, padding=((1, 0), (0, 1), (2, 2)), layout="channels_first"),
    ConvSpec(1, 2, 2, (4, 3, 5), (2, 2, 3), padding=((1, 0), (0, 1), (2, 2)), layout="channels_last"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", EXACT, ids=lambda s: s.describe())
def test_layers_compute_the_exact_correlation(keras_here: kb.KerasBackend, spec: ConvSpec, dtype: str) -> None:
    # float64 with explicit pads also pins the ZeroPadding layer's dtype (an untyped one rounds to float32).
    spec = replace(spec, dtype=dtype)
    _runs(keras_here, spec)
    problem = make_problem(spec, seed=3, values="exact")
    y = keras_here.run(problem)
    assert y.dtype == np.dtype(dtype) and y.shape == spec.y_shape
    result = compare(problem, y)
    assert result.passed and result.exact, result.message  # exact-mode inputs: bit for bit


def test_float64_explicit_pads_stay_float64(keras_here: kb.KerasBackend) -> None:
    spec = ConvSpec(1, 1, 1, (3,), (1,), padding=((1, 1),), dtype="float64", layout="channels_last")
    x = np.array([[[1.0 + 2.0**-40, 1.0, 1.0]]])
    y = keras_here.run(ConvProblem(spec, x, np.ones((1, 1, 1))))
    assert y[0, 0, 1] == 1.0 + 2.0**-40  # float32 would give 1.0


@pytest.mark.parametrize(
    "spec",
    [
        ConvSpec(1, 2, 3, (7, 5), (3, 3), stride=(2, 1), padding="SAME"),  # Keras 'same' with output_padding
        ConvSpec(1, 2, 3, (8, 5), (2, 2), stride=(2, 1), padding="SAME"),  # Keras 'same' without output_padding
        ConvSpec(2, 2, 2, (9,), (4,), stride=(3,), padding=((2, 0),)),  # 'valid', cropped
        ConvSpec(1, 2, 2, (4, 3, 5), (2, 2, 2), stride=(2, 1, 2), padding="VALID"),
    ],
    ids=lambda s: s.describe(),
)
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_transposed_layers_compute_the_exact_adjoint(keras_here: kb.KerasBackend, spec: ConvSpec, layout: str) -> None:
    spec = replace(spec, dtype="float32", layout=layout)
    _runs(keras_here, spec, transposed=True)
    problem = make_problem(spec, seed=2, values="exact")
    g = cotangent(problem)
    np.testing.assert_array_equal(keras_here.conv_transpose(problem, g), conv_transpose(problem, g).value)
    plan = kb.transposed_plan(spec)
    assert plan.kwargs()["padding"] == ("same" if spec.padding == "SAME" else "valid")
    if spec.padding != "SAME":
        assert all(p <= op for p, op in zip(plan.kwargs()["output_padding"], output_padding(spec)))


def test_capabilities_quote_what_keras_refuses(keras_here: kb.KerasBackend) -> None:
    caps = keras_here.capabilities()
    reasons = dict(caps.unsupported)
    assert {"float64", "float32", "float16", "bfloat16"} <= set(caps.dtypes)
    for dtype in ("int32", "int64"):
        assert dtype in caps.dtypes or reasons[f"dtype {dtype}"]
    if keras_here.name == "keras.torch":
        # Measured: Keras's torch variables require gradients, which torch refuses for integer tensors.
        assert "can require gradients" in reasons["dtype int32"]
    refusal = caps.refuses(ConvSpec(1, 1, 1, (9,), (2,), stride=(2,), dilation=(2,), layout="channels_last"))
    assert refusal is not None and "`strides > 1` not supported in conjunction with `dilation_rate > 1`" in refusal
    # DepthwiseConv layers take stride with dilation.
    depthwise = ConvSpec(1, 2, 2, (9, 9), (2, 2), groups=2, stride=(2, 2), dilation=(2, 2), layout="channels_last")
    assert caps.refuses(depthwise) is None
    assert caps.refuses(ConvSpec(1, 1, 1, (5,), (2,), padding="SAME_LOWER")) is not None
    assert caps.transposed is not None and not caps.transposed.groups


def test_a_second_keras_backend_in_this_process_is_refused_with_the_reason(keras_here: kb.KerasBackend) -> None:
    other = next(n for n in kb.BACKENDS if n != keras_here.name)
    have = keras_here.keras_backend
    with pytest.raises(BackendUnavailable, match=rf"{other}: this process already loaded Keras on its {have} backend"):
        registry.get_backend(other)


def test_backends_command_lists_them(
    keras_here: kb.KerasBackend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry, "BUILTIN", {})
    monkeypatch.setattr(registry, "PORTED", {n: registry.PORTED[n] for n in kb.BACKENDS})
    assert main(["backends", "--no-isolation"]) == 0
    out = capsys.readouterr().out
    head = (
        f"{keras_here.name:<16} keras {keras_here.version()}: Keras 3 layers on its {keras_here.keras_backend} backend"
    )
    assert head in out
    assert "float64, float32, float16, bfloat16" in out and "layouts channels_last, channels_first" in out
    assert "unsupported: padding SAME_LOWER" in out and "`crosscheck run --backends ported` runs it" in out
    # In one process only the Keras backend loaded first can run; the others say why.
    other = next(n for n in kb.BACKENDS if n != keras_here.name)
    assert f"{other}: this process already loaded Keras on its {keras_here.keras_backend} backend" in out


def test_native_snippet_reproduces_run(keras_here: kb.KerasBackend) -> None:
    spec = ConvSpec(1, 2, 4, (6, 5), (3, 2), padding=((0, 2), (1, 1)), dtype="float64", layout="channels_last")
    problem = make_problem(spec, seed=4)
    scope: dict[str, object] = {}
    exec(keras_here.native_snippet(problem), scope)
    np.testing.assert_array_equal(np.asarray(scope["y"]), keras_here.run(problem))


# ---- a worker process gets its own Keras backend ---------------------------------------------------------


def test_a_worker_loads_keras_on_its_own_backend(keras_here: kb.KerasBackend) -> None:
    from crosscheck.run.session import close_backends, load_backend

    other = "keras.tensorflow" if keras_here.name != "keras.tensorflow" else "keras.torch"
    backend = load_backend(other, isolation=True, timeout=120)
    try:
        assert backend.precision_flags()["keras.config.backend()"] == other.split(".")[1]
        spec = ConvSpec(1, 2, 2, (6, 5), (3, 2), padding=((2, 0), (0, 1)), layout="channels_last")
        problem = make_problem(spec, seed=5, values="exact")
        assert compare(problem, backend.run(problem)).passed
    finally:
        close_backends([backend])


# ---- meta: a mistranslating Keras stand-in is caught -------------------------------------------------------


class SameForAnyPads:
    """A porter's slip: explicit pads given to Keras as padding='same' (right whenever they are SAME's pads)."""

    def run(self, problem: ConvProblem) -> np.ndarray:
        assert isinstance(self, kb.KerasBackend)
        spec = problem.spec
        if isinstance(spec.padding, str):
            return super().run(problem)  # type: ignore[misc,no-any-return]
        plan = kb.forward_plan(spec.with_(padding="SAME"))
        y = self.layers()(plan, kb._to_keras(problem.x, spec), kb.keras_kernel(problem.w, spec, plan))
        return kb._from_keras(y, spec)


class KernelSpatiallyTransposed:
    """A porter's slip: a 2-D kernel's height and width swapped (a square kernel hides it)."""

    def run(self, problem: ConvProblem) -> np.ndarray:
        w = problem.w
        if problem.spec.rank == 2 and w.shape[2] == w.shape[3]:
            w = np.ascontiguousarray(np.swapaxes(w, 2, 3))
        return super().run(replace(problem, w=w))  # type: ignore[misc,no-any-return]


@pytest.mark.parametrize("slip", [SameForAnyPads, KernelSpatiallyTransposed])
def test_a_mistranslating_keras_stand_in_is_caught(keras_here: kb.KerasBackend, slip: type) -> None:
    wrong = type(slip.__name__, (slip, type(keras_here)), {"name": f"{keras_here.name}-{slip.__name__}"})()
    wrong._caps = keras_here.capabilities()  # measured once, by the real backend
    wrong._layers = keras_here.layers()
    result = run_property(wrong, PROPERTIES["matches_reference"], profile="ci", max_examples=60)
    assert result.status == "failed", f"{slip.__name__} slipped through {result.tally.examples} examples"
    message = result.failures[0]["message"]
    assert "Mismatched elements" in message or "Shape mismatch" in message
