"""Converted models (crosscheck.backends.converted_backends): torch.onnx, tf2onnx, onnx2torch and OpenVINO, each
with measured capabilities, its padding translations checked bit for bit on both sides of the conversion, and
the conversion property on a few examples. Each backend's tests skip, saying why, where it is not installed
(they run in its own nox session: `nox -t converters`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")

from crosscheck.backends import get_backend, registry
from crosscheck.backends.base import Backend, BackendUnavailable
from crosscheck.backends.converted_backends import (
    Templates,
    conv_model_with_weight,
    conv_weight_initializer,
    initializer_array,
)
from crosscheck.cli.main import main
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import make_problem
from crosscheck.properties import PROPERTIES
from crosscheck.reference import reference
from crosscheck.run.runner import run_property

NAMES = ("torch.onnx", "tf2onnx", "onnx2torch", "openvino")
_LOADED: dict[str, Backend | str] = {}


def _backend(name: str) -> Backend:
    if name not in _LOADED:
        try:
            _LOADED[name] = get_backend(name)
        except BackendUnavailable as exc:
            _LOADED[name] = str(exc)
    loaded = _LOADED[name]
    if isinstance(loaded, str):
        pytest.skip(loaded)
    return loaded


@pytest.fixture(params=NAMES)
def backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request.param)


def test_they_are_ported_backends_and_importing_them_loads_no_framework() -> None:
    assert set(NAMES) <= set(registry.PORTED) and not set(NAMES) & set(registry.backend_names())
    code = (
        "import sys, crosscheck.backends.converted_backends; "
        "print([m for m in ('torch', 'tensorflow', 'onnx', 'onnxruntime', 'openvino', 'tf2onnx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_capabilities_are_measured_with_reasons(backend: Backend) -> None:
    caps = backend.capabilities()
    assert "float32" in caps.dtypes and "explicit" in caps.padding and caps.layouts == ("channels_first",)
    assert all(reason for _, reason in caps.unsupported)
    refused = dict(caps.unsupported)
    assert backend.converted_from and backend.version()
    if backend.name in ("torch.onnx", "tf2onnx"):  # onnxruntime runs them: no double or bfloat16 Conv kernel
        assert "onnxruntime" in refused["dtype float64"] and "onnxruntime" in refused["dtype bfloat16"]
        assert "SAME_LOWER" in refused["padding SAME_LOWER"]  # neither nn.ConvNd nor Keras has it
    if backend.name == "torch.onnx":
        assert "not supported for strided convolutions" in refused["padding SAME with stride > 1"]
        assert caps.refuses(ConvSpec(1, 1, 1, (5, 5), (2, 2), stride=(2, 1), padding="SAME")) is not None
    if backend.name == "onnx2torch":  # its padding helper raises for both auto_pad modes
        assert "auto_pad is not implemented" in refused["padding SAME"]
        assert "SAME" not in caps.padding and "SAME_LOWER" not in caps.padding
    if backend.name == "openvino":
        assert "float32" in refused["dtype float64"]
        assert backend.precision_flags()["INFERENCE_PRECISION_HINT"] == "f32"


# An odd total pad in both dimensions (SAME's extra pad lands on one side), asymmetric explicit pads, a non-square
# kernel: a padding translation or a weight layout that is off shows on exact-mode values as a wrong element.
GEOMETRY = ConvSpec(1, 2, 4, (7, 5), (4, 2), groups=1)
PADDINGS = ["SAME", "SAME_LOWER", "VALID", ((2, 1), (0, 1))]


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
def test_each_padding_it_accepts_is_translated_exactly_on_both_sides(backend: Backend, padding: object) -> None:
    spec = GEOMETRY.with_(padding=padding)
    reason = backend.capabilities().refuses(spec)
    if reason:
        assert padding in ("SAME", "SAME_LOWER")  # the measured refusals; explicit pads and VALID always convert
        return
    problem = make_problem(spec, seed=5, values="exact")
    expected = reference(problem).approx
    for label, y in (("source", backend.run_source(problem)), ("converted", backend.run(problem))):
        assert y.shape == spec.y_shape and y.dtype == np.float32, label
        np.testing.assert_array_equal(y, expected, err_msg=f"{backend.name} {label} side, padding {padding}")


def test_the_conversion_property_holds_on_a_few_examples(backend: Backend) -> None:
    result = run_property(backend, PROPERTIES["conversion_end_to_end"], profile="ci", max_examples=4)
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 4


def test_a_geometry_is_converted_once_when_its_weight_initializer_is_the_layers_weight() -> None:
    backend = _backend("torch.onnx")
    templates: Templates = backend._templates  # type: ignore[attr-defined]
    spec = ConvSpec(2, 2, 3, (6, 5), (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)))
    before = templates.conversions
    for seed in (1, 2):
        problem = make_problem(spec, seed=seed, values="exact")
        np.testing.assert_array_equal(backend.run(problem), reference(problem).approx)
    assert templates.conversions == before + 1


def test_a_conversion_that_reorders_the_weight_is_never_reused() -> None:
    """A converter whose initializer is not the layer's weight (here: transposed) is converted for every problem,
    so its wrong weight is what runs, every time."""

    def transposing(problem: ConvProblem) -> object:
        w = np.ascontiguousarray(np.swapaxes(problem.w, -1, -2)).reshape(problem.w.shape)
        return conv_model_with_weight(problem.spec, w)

    templates = Templates(transposing)  # type: ignore[arg-type]
    spec = ConvSpec(1, 1, 1, (4, 4), (2, 2))
    for seed in (1, 2):
        problem = make_problem(spec, seed=seed)
        model = templates.model(problem)
        name = conv_weight_initializer(model)
        assert name == "W" and not np.array_equal(initializer_array(model, name), problem.w)
    assert templates.conversions == 2


def test_onnx2torch_leaves_no_torchvision_placeholder_behind() -> None:
    _backend("onnx2torch")
    module = sys.modules.get("torchvision")
    assert module is None or getattr(module, "__file__", None), "the placeholder stayed in sys.modules"


def test_crosscheck_backends_lists_them_with_versions_and_capabilities(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry, "BUILTIN", {})  # the default group is listed (and tested) elsewhere
    monkeypatch.setattr(registry, "PORTED", {n: registry.PORTED[n] for n in NAMES})
    assert main(["backends", "--no-isolation"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in NAMES:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
        block = "\n".join(lines[start:end])
        if "not installed" in lines[start]:
            continue
        backend = _backend(name)
        assert f"{name:<16} {backend.framework} {backend.version()}: " in block
        assert "dtypes float32" in block and "unsupported: dtype" in block
        assert "`crosscheck run --backends ported` runs it" in block
