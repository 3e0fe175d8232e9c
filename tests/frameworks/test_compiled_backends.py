"""The compiled paths (crosscheck.backends.compiled_backends): tensorflow.xla, torch.compile and jax.jit, each on a
few small problems (every example costs a compilation; the sweeps are `crosscheck run --backends ported`), their
measured capabilities, and the fused property on them and on the eager torch and jax adapters."""

from __future__ import annotations

import pytest

from crosscheck.backends import registry
from crosscheck.backends.base import Backend
from crosscheck.core.problem import ConvSpec
from crosscheck.core.values import make_problem
from crosscheck.properties import PROPERTIES
from crosscheck.properties.fused import FusedBiasActivation

MATCHES = PROPERTIES["matches_reference"]
FUSED = PROPERTIES["fused_bias_activation"]
assert isinstance(FUSED, FusedBiasActivation)

# Every feature at once: grouped, strided, dilated, asymmetric explicit pads, batch > 1.
SPEC = ConvSpec(2, 4, 6, (7, 6), (3, 2), (2, 1), (1, 2), ((1, 0), (2, 1)), 2)


def _backend(name: str, module: str) -> Backend:
    pytest.importorskip(module)
    return registry.get_backend(name)


def test_the_compiled_backends_are_ported_not_default() -> None:
    for name in ("tensorflow.xla", "torch.compile", "jax.jit"):
        assert name in registry.PORTED and name not in registry.backend_names()
        assert registry.PORTED[name].startswith("crosscheck.backends.compiled_backends:")


# ---- tensorflow.xla ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xla() -> Backend:
    return _backend("tensorflow.xla", "tensorflow")


def test_xla_capabilities_are_xla_s_own_measured_refusals(xla: Backend) -> None:
    caps = xla.capabilities()
    # XLA compiles float16/bfloat16 Conv3D and NCHW, which TensorFlow's Eigen kernels refuse, and refuses int64 and
    # complex in TensorFlow's own words (the op's dtype list, raised while tracing).
    assert {"float64", "float32", "float16", "bfloat16"} <= set(caps.dtypes)
    assert "channels_first" in caps.layouts
    assert "not in list of allowed values" in str(caps.reason_for("dtype int64"))
    assert caps.gradients is None and "forward call only" in str(caps.reason_for("gradients"))
    assert caps.fused is not None and set(caps.fused.activations) == {"identity", "relu", "leaky_relu"}
    assert xla.describe()["version"] not in ("unknown", "not installed")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_xla_matches_the_reference_and_the_fused_bound(xla: Backend, dtype: str, layout: str) -> None:
    problem = make_problem(SPEC.with_(dtype=dtype, layout=layout), seed=3)
    MATCHES.check(xla, problem)
    FUSED.check(xla, problem)


def test_xla_really_compiles(xla: Backend) -> None:
    from crosscheck.backends.tensorflow_backend import _GRAPHS

    xla.run(make_problem(SPEC.with_(dtype="float32", layout="channels_last"), seed=4))
    assert any(", True)" in key for key in _GRAPHS)  # the tf.function was made with jit_compile=True


# ---- torch.compile ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled_torch() -> Backend:
    return _backend("torch.compile", "torch")


def test_torch_compile_never_falls_back_to_eager_silently(compiled_torch: Backend) -> None:
    import torch._dynamo.config as dynamo
    import torch._dynamo.utils

    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    problem = make_problem(SPEC.with_(dtype="float32"), seed=5)
    MATCHES.check(compiled_torch, problem)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > before  # dynamo captured a graph
    assert dynamo.fail_on_recompile_limit_hit is True
    assert dynamo.recompile_limit >= 10_000


def test_torch_compile_fused_and_complex_channels_last(compiled_torch: Backend) -> None:
    caps = compiled_torch.capabilities()
    assert caps.gradients is None and "forward call only" in str(caps.reason_for("gradients"))
    FUSED.check(compiled_torch, make_problem(SPEC.with_(dtype="bfloat16", layout="channels_last"), seed=6))
    # Static shapes compile complex channels_last, which dynamic=True fails to lower (see the module's docstring).
    MATCHES.check(compiled_torch, make_problem(SPEC.with_(dtype="complex64", layout="channels_last"), seed=6))


# ---- jax.jit ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_jax_jit_matches_and_fuses(layout: str) -> None:
    backend = _backend("jax.jit", "jax")
    for dtype in ("float32", "float16"):
        problem = make_problem(SPEC.with_(dtype=dtype, layout=layout), seed=7)
        MATCHES.check(backend, problem)
        FUSED.check(backend, problem)


# ---- the fused property on the eager adapters -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "module"), [("torch", "torch"), ("jax", "jax")])
def test_eager_adapters_have_a_fused_call_within_the_composed_bound(name: str, module: str) -> None:
    backend = _backend(name, module)
    for dtype in ("float64", "float16"):
        FUSED.check(backend, make_problem(SPEC.with_(dtype=dtype), seed=8))
    exact = make_problem(SPEC.with_(dtype="float16"), seed=9, values="exact")
    assert FUSED.check(backend, exact).exact  # small integers: bit for bit
