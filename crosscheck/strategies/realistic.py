"""Realistic shapes: convolution layers of real networks (crosscheck/data/realistic_layers.json), scaled to a
multiply-add budget and drawn through Hypothesis.

Real networks run convolutions with dozens to hundreds of channels, large depthwise kernels, dilations and long
1-D kernels; those select the frameworks' blocked, tiled and multi-threaded kernels that the free draws' 1–8
channel problems never reach. A layer is scaled to the budget without losing what selects a kernel: batch and
spatial size go first (both are drawn), then channels (halved, kept multiples of the 16-wide channel block where
the layer's were at least 16; a depthwise layer keeps one channel a group); kernel size, stride, dilation, padding
and the kind of grouping stay the layer's own. Values are random as in every draw, and the bound is the same.

`crosscheck run --shapes realistic` draws every example from the layers (`Shapes("realistic")`); every other run
draws one example in `DEFAULT_SHARE` from them, at `DEFAULT_SHARE_FACTOR` times the property's own budget so
that the default run keeps its time. Which layer, the sizes and the dtype are Hypothesis draws: a failure shrinks
(toward the first layer, one output, batch 1) and replays like any other.

A layer the network runs as a transposed convolution (a decoder's up-convolution) is stored as written and drawn
as the forward convolution whose adjoint it is: the transposed-convolution property computes exactly the layer,
and the forward properties a strided convolution of a discriminator/encoder's kind. The transposed property draws
those layers first (`transposed=True`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hypothesis import assume

from crosscheck.backends.base import Capabilities
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvSpec
from crosscheck.strategies import coverage

SHAPES = ("default", "realistic")
REALISTIC_MAX_MACS = 50_000_000  # per example under --shapes realistic, unless --max-macs says otherwise
DEFAULT_SHARE = 16  # a default run draws one example in this many from the layers
DEFAULT_SHARE_FACTOR = 4  # ... at this many times the property's budget: 3x3 layers of 64 channels still fit
BASE_MAX_MACS = 40_000  # the forward properties' budget (strategies.DEFAULT_MAX_MACS); others scale from it
CHANNEL_BLOCK = coverage.CHANNEL_BLOCK
MAX_BATCH = 4


@dataclass(frozen=True)
class Layer:
    """One convolution of a real network, in the network's own terms (a ConvTranspose's if `transposed`)."""

    network: str
    layer: str
    source: str
    in_channels: int
    out_channels: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    groups: int = 1
    transposed: bool = False

    @property
    def name(self) -> str:
        return f"{self.network}:{self.layer}"

    def forward(self) -> ConvSpec:
        """The forward convolution at full size, batch 1 (for a transposed layer: the one whose adjoint it is)."""
        if not self.transposed:
            return ConvSpec(
                1,
                self.in_channels,
                self.out_channels,
                self.in_size,
                self.kernel,
                self.stride,
                self.dilation,
                self.padding,
                self.groups,
            )
        # ConvTranspose(a → b) from n gives (n - 1)·s - lo - hi + eff; the convolution b → a maps that back to n.
        size = tuple(
            (n - 1) * s - lo - hi + effective_kernel(k, d)
            for n, s, (lo, hi), k, d in zip(self.in_size, self.stride, self.padding, self.kernel, self.dilation)
        )
        return ConvSpec(
            1,
            self.out_channels,
            self.in_channels,
            size,
            self.kernel,
            self.stride,
            self.dilation,
            self.padding,
            self.groups,
        )


@functools.cache
def networks() -> dict[str, str]:
    """Each network's source (paper and definition)."""
    return dict(_data()["networks"])


@functools.cache
def layers() -> tuple[Layer, ...]:
    data = _data()
    out = []
    for entry in data["layers"]:
        rank = len(entry["in_size"])
        out.append(
            Layer(
                network=entry["network"],
                layer=entry["layer"],
                source=data["networks"][entry["network"]],
                in_channels=entry["in_channels"],
                out_channels=entry["out_channels"],
                in_size=tuple(entry["in_size"]),
                kernel=tuple(entry["kernel"]),
                stride=tuple(entry.get("stride", (1,) * rank)),
                dilation=tuple(entry.get("dilation", (1,) * rank)),
                padding=tuple((lo, hi) for lo, hi in entry.get("padding", ((0, 0),) * rank)),
                groups=entry.get("groups", 1),
                transposed=entry.get("transposed", False),
            )
        )
    return tuple(out)


def _data() -> dict[str, Any]:
    text = resources.files("crosscheck.data").joinpath("realistic_layers.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class Scaled:
    """A layer's channels fitted to a budget: the part of the scaling that does not depend on the draw."""

    layer: Layer
    base: ConvSpec  # the forward convolution at full size with the fitted channels
    positions: int  # output positions × batch the budget leaves


def _smaller(c: int) -> int:
    """About half of `c` channels, a multiple of the channel block when `c` had one to spare."""
    half = c // 2
    return max(CHANNEL_BLOCK, half - half % CHANNEL_BLOCK) if c >= 2 * CHANNEL_BLOCK else half


def least_out(spec: ConvSpec) -> tuple[int, ...]:
    """The fewest outputs per dimension that leave an input of at least one element between the layer's pads (more
    than one where the pads cover most of the window, as wav2vec's positional convolution's 64 + 64 of 128)."""
    out = []
    for (lo, hi), k, d, s in zip(spec.pads, spec.kernel, spec.dilation, spec.stride):
        eff = effective_kernel(k, d)
        out.append((1 + lo + hi - eff) // s + 1 if 1 + lo + hi >= eff else 1)
    return tuple(out)


def fit(layer: Layer, max_macs: int) -> Scaled | None:
    """`layer` with channels reduced until its fewest outputs fit `max_macs`, or None if they cannot."""
    spec = layer.forward()
    g, cpg_in, cpg_out = spec.groups, spec.in_channels // spec.groups, spec.out_channels // spec.groups
    taps = math.prod(spec.kernel)
    depthwise = cpg_in == 1 and g > 1
    fewest = math.prod(least_out(spec))
    while g * cpg_out * cpg_in * taps * fewest > max_macs:
        # The largest of the three halves: the channel count that costs most goes first.
        options = []
        if depthwise and g >= 2 * CHANNEL_BLOCK:
            options.append(("g", g))
        if not depthwise and g >= 4:
            options.append(("g", g))
        if cpg_in >= 2 * CHANNEL_BLOCK:
            options.append(("in", cpg_in))
        if cpg_out >= 2 * CHANNEL_BLOCK:
            options.append(("out", cpg_out))
        if not options:
            return None
        which = max(options, key=lambda o: o[1])[0]
        if which == "g":
            g = _smaller(g) if depthwise else g // 2
        elif which == "in":
            cpg_in = _smaller(cpg_in)
        else:
            cpg_out = _smaller(cpg_out)
    base = spec.with_(in_channels=g * cpg_in, out_channels=g * cpg_out, groups=g)
    return Scaled(layer, base, max_macs // (g * cpg_out * cpg_in * taps))


def pool(caps: Capabilities, max_macs: int, min_taps: int = 1, transposed: bool = False) -> tuple[Scaled, ...]:
    """The layers `caps` can run at `max_macs` (their geometry inside its ranks, groups, strides and dilations);
    only transposed ones if `transposed` and any are."""
    space = (tuple(caps.ranks), caps.groups, caps.max_stride, caps.max_dilation)
    return _pool(space, max_macs, min_taps, transposed)


@functools.lru_cache(maxsize=256)
def _pool(
    space: tuple[tuple[int, ...], bool, int, int], max_macs: int, min_taps: int, transposed: bool
) -> tuple[Scaled, ...]:
    ranks, groups, max_stride, max_dilation = space
    out = []
    for layer in layers():
        scaled = fit(layer, max_macs)
        if scaled is None or math.prod(layer.kernel) < min_taps:
            continue
        s = scaled.base
        if (
            s.rank not in ranks
            or (s.groups > 1 and not groups)
            or max(s.stride) > max_stride
            or max(s.dilation) > max_dilation
        ):
            continue
        out.append(scaled)
    if transposed and any(s.layer.transposed for s in out):
        out = [s for s in out if s.layer.transposed]
    return tuple(out)


@dataclass(frozen=True)
class Shapes:
    """Where a run's shapes come from: `profile` one of SHAPES; `max_macs` the realistic layers' budget."""

    profile: str = "default"
    max_macs: int = REALISTIC_MAX_MACS

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "max_macs": self.max_macs}


MIN_MAX_MACS = 100_000  # below this, most layers' channel blocks no longer fit one output position


def parse_macs(text: str) -> int:
    """A multiply-add budget: an integer, or a number like 2e8 that is one."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number of multiply-adds like 50000000 or 5e7, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"expected a whole number of multiply-adds, got {text!r}")
    if value < MIN_MAX_MACS:
        raise ValueError(f"expected at least {MIN_MAX_MACS} multiply-adds (real layers' channel blocks), got {text!r}")
    return int(value)


def shapes_option(profile: str, max_macs: int | None) -> Shapes:
    if profile not in SHAPES:
        raise ValueError(f"shapes: expected one of {', '.join(SHAPES)}, got {profile!r}")
    return Shapes(profile, REALISTIC_MAX_MACS if max_macs is None else max_macs)


_SHAPES: ContextVar[Shapes | None] = ContextVar("crosscheck_shapes", default=None)


def current() -> Shapes | None:
    """The shapes of the run in progress (None outside a run: strategies then draw only freely)."""
    return _SHAPES.get()


@contextlib.contextmanager
def shaping(shapes: Shapes | None) -> Iterator[None]:
    token = _SHAPES.set(shapes)
    try:
        yield
    finally:
        _SHAPES.reset(token)


def budget(shapes: Shapes, max_macs: int) -> int:
    """A realistic example's budget for a property whose free draws have `max_macs` (cheaper properties, cheaper
    realistic examples, in the same proportion)."""
    if shapes.profile == "realistic":
        return max(1, shapes.max_macs * max_macs // BASE_MAX_MACS)
    return DEFAULT_SHARE_FACTOR * max_macs


def wanted(ch: coverage.Chooser, shapes: Shapes | None) -> bool:
    """Whether this example is drawn from the layers (a Hypothesis draw, shrinking toward no, except under the
    realistic profile, where every example is)."""
    if shapes is None:
        return False
    if shapes.profile == "realistic":
        return True
    return ch.integer(0, DEFAULT_SHARE - 1) == DEFAULT_SHARE - 1


def draw_spec(
    ch: coverage.Chooser,
    caps: Capabilities,
    dtypes: tuple[str, ...],
    max_macs: int,
    *,
    min_taps: int = 1,
    transposed: bool = False,
) -> ConvSpec | None:
    """A realistic spec within `max_macs` inside `caps`, or None when no layer fits `caps` at that budget."""
    layers_ = pool(caps, max_macs, min_taps, transposed)
    if not layers_:
        return None
    # The network first, then its layer: each network as likely as another, however many layers it lists.
    names = tuple(dict.fromkeys(s.layer.network for s in layers_))
    network = names[ch.integer(0, len(names) - 1)]
    mine = [s for s in layers_ if s.layer.network == network]
    scaled = mine[ch.integer(0, len(mine) - 1)]
    base = scaled.base
    dtype = ch.pick(dtypes)
    layout = ch.pick(tuple(caps.layouts))
    mode = _mode(base, caps)
    if mode is None:
        return None
    # Spatial size first (the width, the dimension kernels unroll, before the others), then batch, each as large as
    # the budget leaves and the layer had; drawn, so that a failure shrinks toward one output.
    left = scaled.positions
    least = least_out(base)
    dims: list[tuple[int, tuple[int, int]]] = [(0, (0, 0))] * base.rank
    for d in reversed(range(base.rank)):
        eff = effective_kernel(base.kernel[d], base.dilation[d])
        lo, hi = base.pads[d]
        # As many as the budget leaves once the dimensions still to draw have their fewest (fit() made room).
        most = min(base.out_size[d], left // math.prod(least[:d]))
        out = ch.integer(least[d], max(least[d], most))
        left //= out
        if mode == "explicit":
            # The layer's own pads; the input as the network would have it (stride's remainder drawn).
            n = (out - 1) * base.stride[d] + eff - lo - hi + ch.integer(0, base.stride[d] - 1)
            dims[d] = (max(1, n), (lo, hi))
        else:
            dims[d] = coverage.dimension(ch, eff, base.stride[d], mode, out)
    batch = ch.integer(1, max(1, min(MAX_BATCH, left)))
    spec = coverage.assemble(
        batch,
        base.in_channels,
        base.out_channels,
        base.groups,
        list(base.kernel),
        list(base.stride),
        list(base.dilation),
        mode,
        dims,
        dtype,
        layout,
    )
    assume(spec.macs <= max_macs)
    _remember(spec, scaled.layer)
    return spec


def _mode(base: ConvSpec, caps: Capabilities) -> str | None:
    """The layer's explicit pads where `caps` takes them, else the named mode closest to them."""
    if "explicit" in caps.padding:
        return "explicit"
    unpadded = all(lo == hi == 0 for lo, hi in base.pads)
    for mode in ("VALID", "SAME", "SAME_LOWER") if unpadded else ("SAME", "SAME_LOWER", "VALID"):
        if mode in caps.padding:
            return mode
    return None


def origin(spec: ConvSpec) -> str | None:
    """`network:layer (source)` of a spec this process drew from the layers, None for any other."""
    name = _ORIGIN.get(spec)
    if name is None:
        return None
    layer = next(x for x in layers() if x.name == name)
    how = " (a transposed convolution, drawn as its forward convolution)" if layer.transposed else ""
    return f"{name}{how}: {layer.source}"


# Spec → the layer it was drawn from. A drawn spec is all a property passes on, so its source is kept here for the
# failure record (runner.failure_record). Bounded: only recent draws can be failures being recorded.
_ORIGIN: dict[ConvSpec, str] = {}
_ORIGIN_MAX = 100_000


def _remember(spec: ConvSpec, layer: Layer) -> None:
    if len(_ORIGIN) >= _ORIGIN_MAX:
        _ORIGIN.clear()
    _ORIGIN[spec] = layer.name
