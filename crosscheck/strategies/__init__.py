"""Hypothesis strategies for convolution problems, drawn only from what a backend supports.

Every problem is built valid by construction: the output size is drawn first and the input size is
derived from it, so nothing is generated only to be filtered away, and the work per example stays
under a multiply-add budget. Shrinking moves towards small, plain problems (1-D, one channel,
kernel 1, stride 1, no padding).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from crosscheck.backends.base import Capabilities
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import VALUE_KINDS, exact_value_limit, make_problem
from crosscheck.strategies import coverage, realistic

DEFAULT_MAX_MACS = 40_000


@functools.lru_cache(maxsize=4096)
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    # Hypothesis validates every new strategy object; a composite that builds st.integers(lo, hi) per
    # draw pays that each time (about half of the time spent drawing a problem): reuse them instead.
    return st.integers(lo, hi)


_T = TypeVar("_T")


def _sampled(options: tuple[_T, ...]) -> st.SearchStrategy[_T]:
    return _sampled_cached(options)


@functools.lru_cache(maxsize=1024)
def _sampled_cached(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


_BOOLEANS = st.booleans()
MAX_KERNEL = coverage.MAX_KERNEL
_MAX_OUT = coverage.MAX_OUT


@st.composite
def channel_groups(draw: st.DrawFn, allow_groups: bool) -> tuple[int, int, int]:
    """(in_channels, out_channels, groups): plain, grouped, or depthwise (one input channel a group)."""
    kind = draw(_sampled(("plain", "grouped", "depthwise") if allow_groups else ("plain",)))
    if kind == "plain":
        return draw(_integers(1, 8)), draw(_integers(1, 8)), 1
    if kind == "grouped":
        g = draw(_integers(2, 4))
        return g * draw(_integers(1, 4)), g * draw(_integers(1, 3)), g
    g = draw(_integers(2, 8))
    return g, g * draw(_integers(1, 2)), g


@st.composite
def spatial_dim(
    draw: st.DrawFn, kernel: int, stride: int, dilation: int, mode: str, max_out: int
) -> tuple[int, tuple[int, int]]:
    """(input size, explicit pads) for one dimension; pads are (0, 0) for named modes."""
    out = draw(_integers(1, max_out))
    return coverage.dimension(_DrawChooser(draw), effective_kernel(kernel, dilation), stride, mode, out)


_channel_groups = functools.lru_cache(maxsize=None)(channel_groups)
_spatial_dim = functools.lru_cache(maxsize=8192)(spatial_dim)


@st.composite
def conv_specs(
    draw: st.DrawFn,
    caps: Capabilities | None = None,
    *,
    dtypes: Sequence[str] | None = None,
    max_macs: int = DEFAULT_MAX_MACS,
    min_taps: int = 1,
    transposed: bool = False,
) -> ConvSpec:
    """A valid ConvSpec inside `caps` (all of crosscheck's space if None).

    `min_taps` > 1 forces a kernel with at least that many taps (needed to tell flips apart). In a run, some draws
    (all under `--shapes realistic`) are real networks' layers (strategies.realistic); `transposed` prefers the
    layers that networks run as transposed convolutions.
    """
    caps = caps or Capabilities()
    allowed = [d for d in (dtypes or caps.dtypes) if d in caps.dtypes]
    if not allowed:
        raise ValueError("conv_specs: no dtype is both requested and supported")
    shapes, chooser = realistic.current(), _DrawChooser(draw)
    if shapes is not None and realistic.wanted(chooser, shapes):
        budget = realistic.budget(shapes, max_macs)
        real = realistic.draw_spec(chooser, caps, tuple(allowed), budget, min_taps=min_taps, transposed=transposed)
        # None: no layer fits this backend's space at this budget. Either that or a layer a backend's own rule refuses
        # (scipy.ndimage's channel pairs, TensorFlow's stride with dilation) is drawn freely instead: rejecting it
        # would reject most draws for such a backend under --shapes realistic.
        if real is not None and caps.refuses(real) is None:
            return real
    guide = coverage.current()
    # Under a coverage guide (strategies.coverage), seven draws in eight take a row of its plan; 0 (where shrinking
    # goes) is the free draw below, so a failure shrinks to a plain problem.
    if guide is not None:
        rows = guide.plan(caps, tuple(allowed))
        if rows and draw(_integers(0, 7)) > 0:
            return draw(_guided_spec(guide, rows, caps, tuple(allowed), max_macs, min_taps))
    dtype = draw(_sampled(tuple(allowed)))
    rank = draw(_sampled(tuple(caps.ranks)))
    c_in, c_out, groups = draw(_channel_groups(caps.groups))
    batch = draw(_integers(1, 4))
    kernel = [draw(_integers(1, MAX_KERNEL)) for _ in range(rank)]
    if np.prod(kernel) < min_taps:
        kernel[0] = max(kernel[0], min_taps)
    # Unit stride everywhere half the time: some backends accept named padding only at stride 1.
    unit = draw(_BOOLEANS)
    stride = [1 if unit else draw(_integers(1, min(4, caps.max_stride))) for _ in range(rank)]
    dilation = [draw(_integers(1, min(3, caps.max_dilation))) for _ in range(rank)]
    mode = draw(_sampled(tuple(caps.padding)))
    most = coverage.max_out(rank, batch, c_in, c_out, groups, kernel, max_macs)
    dims = [draw(_spatial_dim(k, s, d, mode, most)) for k, s, d in zip(kernel, stride, dilation)]
    layout = draw(_sampled(tuple(caps.layouts)))
    spec = coverage.assemble(batch, c_in, c_out, groups, kernel, stride, dilation, mode, dims, dtype, layout)
    # Combination rules (e.g. TensorFlow: no stride > 1 with dilation > 1) are rare enough to filter.
    assume(caps.refuses(spec) is None)
    return spec


@st.composite
def _guided_spec(
    draw: st.DrawFn,
    guide: coverage.Guide,
    rows: tuple[dict[str, str], ...],
    caps: Capabilities,
    dtypes: tuple[str, ...],
    max_macs: int,
    min_taps: int,
) -> ConvSpec:
    row = draw(_integers(0, len(rows) - 1))
    spec = coverage.build(_DrawChooser(draw), caps, rows[row], dtypes=dtypes, max_macs=max_macs, min_taps=min_taps)
    ok = spec is not None and caps.refuses(spec) is None
    guide.handed()
    assume(ok)
    assert spec is not None
    return spec


class _DrawChooser:
    """coverage.build's choices, drawn by Hypothesis (so that they shrink and replay)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(_integers(lo, hi))

    def pick(self, options: tuple[Any, ...]) -> Any:
        return self.draw(_sampled(tuple(options)))


@st.composite
def conv_problems(
    draw: st.DrawFn,
    caps: Capabilities | None = None,
    *,
    dtypes: Sequence[str] | None = None,
    values: Sequence[str] = VALUE_KINDS,
    max_macs: int = DEFAULT_MAX_MACS,
    min_taps: int = 1,
) -> ConvProblem:
    """A ConvProblem with values of one of `values`' kinds; exact only where the dtype allows it."""
    spec = draw(conv_specs(caps, dtypes=dtypes, max_macs=max_macs, min_taps=min_taps))
    feasible = [v for v in values if v != "exact" or exact_value_limit(spec.dtype, spec.terms)]
    # Only exact values were asked for and this dtype cannot sum K terms exactly (bfloat16, large K).
    assume(feasible)
    kind = draw(_sampled(tuple(feasible)))
    seed = draw(_integers(0, 2**32 - 1))
    return make_problem(spec, seed, kind)
