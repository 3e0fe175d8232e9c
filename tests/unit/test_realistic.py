"""Realistic shapes (crosscheck.strategies.realistic): the layers' data, the scaled draws, the CLI options, and a wrong
convolution only realistic shapes reach."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import wrong_convolutions as wc
from hypothesis import HealthCheck, given, settings

from crosscheck.backends.base import Capabilities
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.cli import main
from crosscheck.core.problem import ConvSpec
from crosscheck.strategies import DEFAULT_MAX_MACS, conv_specs, realistic

# What the issue asks the profile to cover, each by a property of its layers that only that network gives here.
REQUIRED: dict[str, Callable[[ConvSpec], bool]] = {
    "resnet50": lambda s: s.rank == 2 and s.groups == 1,
    "mobilenet_v2": lambda s: s.groups == s.in_channels > 1,
    "efficientnet_b0": lambda s: s.groups == s.in_channels > 1 and s.kernel == (5, 5),
    "convnext_tiny": lambda s: s.groups == s.in_channels > 1 and s.kernel == (7, 7),
    "deeplabv3": lambda s: max(s.dilation) > 1,
    "unet3d": lambda s: s.rank == 3,
    "wav2vec2": lambda s: s.rank == 1,
    "dcgan": lambda s: s.kernel == (4, 4) and s.stride == (2, 2),
}
_QUIET = settings(
    max_examples=150, database=None, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None
)


def _kind(spec: ConvSpec) -> str:
    if spec.groups == 1:
        return "plain"
    return "depthwise" if spec.groups == spec.in_channels else "grouped"


def test_every_network_is_listed_with_its_source_and_layers() -> None:
    nets = realistic.networks()
    layers = realistic.layers()
    assert set(REQUIRED) <= set(nets) and all(len(src) > 20 for src in nets.values())
    for name, has in REQUIRED.items():
        mine = [layer.forward() for layer in layers if layer.network == name]
        assert any(has(spec) for spec in mine), name
    assert any(layer.transposed for layer in layers), "a transposed-convolution decoder"
    for layer in layers:
        assert layer.source == nets[layer.network]
        full = layer.forward()  # valid at the network's own size
        if layer.transposed:
            # The forward convolution maps the decoder's output back onto its input size.
            assert full.out_size == layer.in_size and full.in_channels == layer.out_channels


def test_a_transposed_layer_is_the_adjoint_of_its_forward_convolution() -> None:
    (main3,) = [layer for layer in realistic.layers() if layer.name == "dcgan:main.3"]
    spec = main3.forward()
    # ConvTranspose2d(512, 256, 4, 2, 1) maps 4x4 to 8x8; its forward convolution 256 -> 512 maps 8x8 to 4x4.
    assert (spec.in_channels, spec.out_channels, spec.in_size, spec.out_size) == (256, 512, (8, 8), (4, 4))


@pytest.mark.parametrize("budget", [realistic.REALISTIC_MAX_MACS, realistic.DEFAULT_SHARE_FACTOR * DEFAULT_MAX_MACS])
def test_every_network_fits_the_budgets_of_both_profiles(budget: int) -> None:
    pool = realistic.pool(Capabilities(), budget)
    assert {s.layer.network for s in pool} == set(realistic.networks())


def test_fitting_keeps_what_selects_a_kernel() -> None:
    for layer in realistic.layers():
        full = layer.forward()
        scaled = realistic.fit(layer, 600_000)
        assert scaled is not None, layer.name
        s = scaled.base
        assert (s.kernel, s.stride, s.dilation, s.pads, _kind(s)) == (
            full.kernel,
            full.stride,
            full.dilation,
            full.pads,
            _kind(full),
        )
        assert s.macs // math.prod(s.out_size) <= 600_000 and scaled.positions >= 1
        for ours, theirs in ((s.in_channels // s.groups, full.in_channels // full.groups), (s.groups, full.groups)):
            # Channel blocks survive: as many as the layer had, or a multiple of 16 no smaller than 16.
            assert ours == theirs or (ours % 16 == 0 and ours >= 16) or (_kind(s) == "grouped" and ours >= 2)
        if full.macs // math.prod(full.out_size) <= 600_000:
            assert (s.in_channels, s.out_channels) == (full.in_channels, full.out_channels), "spatial size goes first"


def _collect(
    shapes: realistic.Shapes | None, caps: Capabilities, conf: settings = _QUIET, **kw: object
) -> list[ConvSpec]:
    seen: list[ConvSpec] = []

    @conf
    @given(conv_specs(caps, **kw))  # type: ignore[arg-type]
    def draw(spec: ConvSpec) -> None:
        seen.append(spec)

    with realistic.shaping(shapes):
        draw()
    return seen


CAPS = Capabilities(dtypes=("float32", "float64"), layouts=("channels_first", "channels_last"))


def test_the_realistic_profile_draws_valid_layers_within_budget() -> None:
    budget = 2_000_000
    seen = _collect(realistic.Shapes("realistic", budget), CAPS)
    nets = set()
    for spec in seen:
        assert spec.macs <= budget and CAPS.refuses(spec) is None
        source = realistic.origin(spec)
        assert source is not None, spec.describe()
        name = source.split(":", 1)[0]
        nets.add(name)
        full = next(x for x in realistic.layers() if source.startswith(x.name)).forward()
        assert (spec.kernel, spec.stride, spec.dilation, _kind(spec)) == (
            full.kernel,
            full.stride,
            full.dilation,
            _kind(full),
        )
        assert spec.pads == full.pads  # explicit padding: the layer's own
    # Draws in realistic's pool at this caps reach every network.
    assert nets == {s.layer.network for s in realistic.pool(CAPS, budget)} == set(realistic.networks())


def test_named_padding_only_backends_get_the_closest_mode() -> None:
    caps = Capabilities(dtypes=("float32",), padding=("VALID", "SAME"))
    for spec in _collect(realistic.Shapes("realistic", 1_000_000), caps):
        assert spec.padding in ("VALID", "SAME")


def test_a_default_run_draws_a_small_share_within_its_budget() -> None:
    # Not derandomized: its fixed sequence drew no share in 150 examples; 400 random ones hold ~25 (one in 16).
    seen = _collect(realistic.Shapes(), CAPS, settings(_QUIET, max_examples=400, derandomize=False))
    real = [s for s in seen if realistic.origin(s) is not None]
    assert 0 < len(real) < len(seen) / 4
    assert all(s.macs <= realistic.DEFAULT_SHARE_FACTOR * DEFAULT_MAX_MACS for s in real)


def test_outside_a_run_nothing_is_drawn_from_the_layers() -> None:
    seen = _collect(None, CAPS, max_macs=3_000)
    assert all(realistic.origin(s) is None or s.macs <= 3_000 for s in seen)


def test_the_transposed_properties_draw_the_decoders() -> None:
    seen = _collect(realistic.Shapes("realistic", 1_000_000), CAPS, transposed=True)
    assert seen and all("transposed convolution" in (realistic.origin(s) or "") for s in seen)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--shapes", "huge"], "invalid choice"),
        (["--shapes", "realistic", "--max-macs", "lots"], "expected a number of multiply-adds"),
        (["--shapes", "realistic", "--max-macs", "2.5"], "whole number"),
        (["--shapes", "realistic", "--max-macs", "1000"], "at least 100000"),
        (["--max-macs", "1e8"], "applies only with --shapes realistic"),
    ],
)
def test_bad_shape_options_are_one_line_usage_errors(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(["run", *args, "--out", str(tmp_path)])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_max_macs_takes_scientific_notation() -> None:
    assert realistic.parse_macs("2e8") == 200_000_000 and realistic.parse_macs("5000000") == 5_000_000


def wide_input_drops_a_channel(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Right, except that with 64 or more input channels per group the last one is left out: the kind of bug a
    blocked kernel's channel tail has, which no 1-48 channel problem reaches."""
    groups = int(kw["groups"])  # type: ignore[call-overload]
    if x.shape[1] // groups >= 64:
        w = w.copy()
        w[:, -1] = 0
    return wc.correlate(x, w, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("shapes", ["realistic", "default"])
def test_a_wrong_convolution_only_realistic_shapes_reach_is_caught(shapes: str) -> None:
    from crosscheck.run.session import RunOptions, run_backends

    backend = FunctionBackend(wide_input_drops_a_channel, "drops-a-channel", dtypes=("float64",), ranks=(1, 2))
    options = RunOptions(
        profile="ci", pairwise=False, shapes=realistic.Shapes(shapes, 1_000_000), max_examples=None, distinct_bugs=1
    )
    record = run_backends([backend], [], ["matches_reference"], options)
    (result,) = record["results"]
    assert result["status"] == "failed", result
    (failure,) = result["failures"]
    assert failure["layer"] and "a realistic shape, scaled from" in failure["message"]
    spec = ConvSpec.from_dict(failure["problem"]["spec"])
    assert spec.in_channels // spec.groups >= 64


def test_every_layer_is_in_the_default_declared_space() -> None:
    # Capabilities' default stride and dilation limits cover the data (wav2vec's k10/s5, the ASPP rates): a layer
    # the budget can hold is never left out for its geometry.
    budget = realistic.REALISTIC_MAX_MACS
    fitting = {layer.name for layer in realistic.layers() if realistic.fit(layer, budget) is not None}
    drawn = {s.layer.name for s in realistic.pool(Capabilities(), budget)}
    assert drawn == fitting and any("ASPP rate 36" in name for name in drawn), sorted(drawn)


def test_a_layer_the_backend_refuses_is_drawn_freely_instead() -> None:
    # A backend's own rule (here: at most 8 input channels) refuses most layers: those draws become free ones,
    # never a rejection (under --shapes realistic every draw would be rejected for such a backend).
    def few_channels(spec: ConvSpec) -> str | None:
        return "more than 8 input channels" if spec.in_channels > 8 else None

    caps = Capabilities(dtypes=("float32",), constraints=(few_channels,))
    seen = _collect(realistic.Shapes("realistic", 2_000_000), caps)
    assert seen and all(caps.refuses(s) is None for s in seen)
    assert any(realistic.origin(s) is not None for s in seen)  # the layers it can run are still drawn


def test_scipy_ndimage_refuses_what_would_outlast_its_worker() -> None:
    from crosscheck.backends.scipy_backends import ScipyNdimage

    caps = ScipyNdimage().capabilities()
    hang = ConvSpec(1, 512, 2048, (6, 6), (1, 1), padding="SAME", dtype="complex128")  # 4·10⁶ calls: hung 60 s
    assert "channel pair" in (caps.refuses(hang) or "")
    assert caps.refuses(hang.with_(in_channels=64, out_channels=256)) is None
    assert any("channel-pair calls" in feature for feature, _ in caps.unsupported)
