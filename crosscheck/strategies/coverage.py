"""Feature-combination coverage: which pairs and triples of problem features a run exercised, and a guide
that steers Hypothesis' search toward the ones it has not reached yet.

A problem is classified into discrete features (`classify`). Besides the problem's own axes (dtype, rank,
layout, padding mode, groups, batch, stride, dilation, input channels per group), four relations between sizes
decide index arithmetic or kernel choice in the frameworks' own code; each is read in the width (last spatial)
dimension, the one oneDNN's JIT kernels unroll:

- `width_parity` (odd / even input width): SAME's total pad `(out - 1)·s + eff - n` changes parity with n, so an
  odd total puts the extra pad on one side (TensorFlow GetWindowedOutputSizeVerbose; oneDNN's
  calculate_end_padding derives the right pad from it, and jit_avx512_common_conv_kernel.cpp's ur_w loop splits
  the row into l_pad / middle / r_pad / ur_w_tail parts).
- `window` (the dilated kernel inside / wider than the input): a window wider than the input is reachable only
  through padding; oneDNN refuses a kernel wholly in the padding (`kernel_outside_src` in
  jit_avx512_common_conv_kernel.cpp init_conf) and every kernel clips its taps at both borders at once.
- `block16` (the channels oneDNN blocks, in-channels per group or a depthwise convolution's groups, a multiple
  of 16): AVX-512 f32 kernels block channels by simd_w = 16 (nCx16c, OIx16i16o); other counts are padded,
  fall back to 8/4-wide blocks for groups (`ok_to_try_lower_zmm`) or take the ic_tail/oc_tail masks in nxc.
  Fewer than 16 input channels is oneDNN's `is_1stconv` path: that is why `channels` splits 1 / 2–15 / ≥ 16.
- `out_width` (≤ 14 / > 14 outputs): jit_avx512_common_conv_kernel.cpp's `small_spatial = 14` picks the loop
  order (loop_cwgn for ow, oh ≤ 14, loop_gncw above).

The guide (`Guide`) is per backend and observes every example its properties ran. When a property's run starts,
the guide plans a greedy covering array of that property's space (pairs first, then triples), its targets in an
order seeded by the backend's and the property's names, and `conv_specs` (crosscheck.strategies) draws, seven
times in eight, one of its rows (Hypothesis chooses which, so it shrinks and replays) and otherwise draws freely as
before. A plan depends on nothing the run observed: Hypothesis requires that the same choices draw the same
problem, and a property must draw the same examples whether or not the properties before it ran (a sharded run).
The properties' differently ordered plans together reach what one property's budget cannot.

Hypothesis chooses which planned row a draw takes, unevenly and with repeats, so random rows cannot promise every
pair. The sweep (`Guide.sweep`) does: a fixed covering array of the backend's whole domain, each row built once as a
small problem with seeded values, a pure function of the backend's name and capabilities. One property
(`Property.sweeps`: matches_reference) runs it before its random search, so a sharded run draws what the unsharded
run draws.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from crosscheck.backends.base import Capabilities
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import VALUE_KINDS, exact_value_limit, make_problem

Item = tuple[str, str]  # (feature, value)
Combo = tuple[Item, ...]  # a pair or a triple, its items in FEATURES order

FEATURES = (
    "dtype",
    "rank",
    "layout",
    "padding",
    "groups",
    "batch",
    "channels",
    "stride",
    "dilation",
    "width_parity",
    "window",
    "block16",
    "out_width",
)
_ORDER = {f: i for i, f in enumerate(FEATURES)}
SMALL_SPATIAL = 14  # oneDNN's jit_avx512_common_conv_kernel.cpp `small_spatial`
CHANNEL_BLOCK = 16  # oneDNN's AVX-512 f32 simd_w


def domain(caps: Capabilities, dtypes: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """Each feature's values inside `caps` (of its dtypes, only `dtypes` if given)."""
    return {
        "dtype": tuple(d for d in caps.dtypes if dtypes is None or d in dtypes),
        "rank": tuple(str(r) for r in caps.ranks),
        "layout": tuple(caps.layouts),
        "padding": tuple(caps.padding),
        "groups": ("plain", "grouped", "depthwise") if caps.groups else ("plain",),
        "batch": ("1", ">1"),
        "channels": ("1", "2-15", ">=16"),
        "stride": ("1", ">1") if caps.max_stride > 1 else ("1",),
        "dilation": ("1", ">1") if caps.max_dilation > 1 else ("1",),
        "width_parity": ("odd", "even"),
        "window": ("inside", "wider"),
        "block16": ("no", "yes"),
        "out_width": (f"<={SMALL_SPATIAL}", f">{SMALL_SPATIAL}"),
    }


def classify(spec: ConvSpec) -> dict[str, str]:
    """The feature values of `spec` (see the module's docstring for the size relations)."""
    depthwise = spec.groups > 1 and spec.in_channels == spec.groups
    per_group = spec.in_channels // spec.groups
    blocked = spec.groups if depthwise else per_group
    eff = effective_kernel(spec.kernel[-1], spec.dilation[-1])
    return {
        "dtype": spec.dtype,
        "rank": str(spec.rank),
        "layout": spec.layout,
        "padding": spec.padding if isinstance(spec.padding, str) else "explicit",
        "groups": "plain" if spec.groups == 1 else "depthwise" if depthwise else "grouped",
        "batch": "1" if spec.batch == 1 else ">1",
        "channels": "1" if per_group == 1 else "2-15" if per_group < CHANNEL_BLOCK else ">=16",
        "stride": ">1" if max(spec.stride) > 1 else "1",
        "dilation": ">1" if max(spec.dilation) > 1 else "1",
        "width_parity": "odd" if spec.in_size[-1] % 2 else "even",
        "window": "wider" if eff > spec.in_size[-1] else "inside",
        "block16": "yes" if blocked % CHANNEL_BLOCK == 0 else "no",
        "out_width": f">{SMALL_SPATIAL}" if spec.out_size[-1] > SMALL_SPATIAL else f"<={SMALL_SPATIAL}",
    }


def combos(labels: Mapping[str, str], size: int) -> Iterator[Combo]:
    items = sorted(labels.items(), key=_key)
    return itertools.combinations(items, size)


class Chooser(Protocol):
    """Where a builder's free choices come from: Hypothesis' draw, or a random.Random."""

    def integer(self, lo: int, hi: int) -> int: ...

    def pick(self, options: tuple[Any, ...]) -> Any: ...


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def pick(self, options: tuple[Any, ...]) -> Any:
        return options[self.rng.randrange(len(options))]


MAX_KERNEL = 7
MAX_OUT = {1: 24, 2: 10, 3: 5}  # outputs per dimension by rank, before the multiply-add budget


def max_out(rank: int, batch: int, c_in: int, c_out: int, groups: int, kernel: list[int], max_macs: int) -> int:
    """Outputs per dimension that keep a problem within `max_macs` multiply-adds (and MAX_OUT)."""
    terms = (c_in // groups) * math.prod(kernel)
    positions = max(1, max_macs // (batch * c_out * terms))
    per_dim: float = positions ** (1 / rank)
    return max(1, min(MAX_OUT[rank], round(per_dim)))


_WIDE_OUT = (SMALL_SPATIAL + 1, 24)


def build(
    ch: Chooser,
    caps: Capabilities,
    row: Mapping[str, str],
    *,
    dtypes: tuple[str, ...] | None = None,
    max_macs: int = 40_000,
    min_taps: int = 1,
) -> ConvSpec | None:
    """A spec whose `classify` agrees with every feature `row` fixes (the others drawn from `ch`), or None when this
    attempt found none (some combinations are impossible: a depthwise convolution has one channel a group; VALID
    padding cannot make a window wider than the input). `caps`' constraints are not consulted here."""
    dom = domain(caps, dtypes)
    if not all(dom.values()):
        return None
    full: dict[str, str] = {}
    for f in FEATURES:
        options = dom[f]
        if f in row and row[f] not in options:
            return None
        full[f] = row[f] if f in row else ch.pick(options)
    rank = int(full["rank"])
    block = full["block16"] == "yes"
    kind, per = full["groups"], full["channels"]
    if kind == "depthwise":
        if per != "1":
            return None
        groups = ch.pick((16, 32)) if block else ch.integer(2, 15)
        c_in, c_out = groups, groups * ch.integer(1, 2)
    else:
        if per == "1" or per == "2-15":
            if block:
                return None
            cpg = 1 if per == "1" else ch.integer(2, 15)
        else:
            cpg = ch.pick((16, 32, 48)) if block else ch.integer(17, 47)
            cpg += int(not block and cpg % CHANNEL_BLOCK == 0)
        groups = 1 if kind == "plain" else ch.integer(2, 4)
        c_in = groups * cpg
        # As many output channels as the free draw takes; fewer beside wide inputs, to stay near the budget.
        c_out = ch.integer(1, 8) if kind == "plain" and cpg < CHANNEL_BLOCK else groups * ch.integer(1, 2)
    wide_channels = c_in // groups >= CHANNEL_BLOCK
    batch = 1 if full["batch"] == "1" else ch.integer(2, 4)
    kmax = 3 if wide_channels else MAX_KERNEL
    kernel = [ch.integer(1, kmax) for _ in range(rank)]
    if math.prod(kernel) < min_taps:
        kernel[0] = max(kernel[0], min_taps)
    stride = _per_dim(ch, rank, full["stride"] == ">1", min(4, caps.max_stride))
    dilation = _per_dim(ch, rank, full["dilation"] == ">1", min(3, caps.max_dilation))
    mode = full["padding"]
    wider = full["window"] == "wider"
    if wider:
        if mode == "VALID":
            return None
        # Room for an input of either parity below the window: eff >= 3.
        kernel[-1] = max(kernel[-1], 2 if dilation[-1] > 1 else 3)
        if full["out_width"] != f"<={SMALL_SPATIAL}":  # more outputs than the input is wide: the widest window
            kernel[-1] = kmax
            dilation[-1] = max(dilation)
    wide_out = full["out_width"] != f"<={SMALL_SPATIAL}"
    rest_out = 1 if wide_out else max_out(rank, batch, c_in, c_out, groups, kernel, max_macs)
    dims: list[tuple[int, tuple[int, int]]] = []
    for d in range(rank - 1):
        eff = effective_kernel(kernel[d], dilation[d])
        dims.append(dimension(ch, eff, stride[d], mode, ch.integer(1, rest_out)))
    width = _width(ch, effective_kernel(kernel[-1], dilation[-1]), stride[-1], mode, full, rest_out)
    if width is None:
        return None
    dims.append(width)
    spec = assemble(batch, c_in, c_out, groups, kernel, stride, dilation, mode, dims, full["dtype"], full["layout"])
    # The adjustments above aim at the row; a combination they cannot reach is refused here, never mislabelled.
    if spec.macs > 16 * max_macs or any(classify(spec)[f] != v for f, v in full.items()):
        return None
    return spec


def assemble(
    batch: int,
    c_in: int,
    c_out: int,
    groups: int,
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
    mode: str,
    dims: list[tuple[int, tuple[int, int]]],
    dtype: str,
    layout: str,
) -> ConvSpec:
    """The spec of drawn parts; `dims` holds (input size, explicit pads) per dimension (pads unused for named modes)."""
    return ConvSpec(
        batch=batch,
        in_channels=c_in,
        out_channels=c_out,
        in_size=tuple(n for n, _ in dims),
        kernel=tuple(kernel),
        stride=tuple(stride),
        dilation=tuple(dilation),
        padding=tuple(p for _, p in dims) if mode == "explicit" else mode,
        groups=groups,
        dtype=dtype,
        layout=layout,
    )


def _per_dim(ch: Chooser, rank: int, above_one: bool, most: int) -> list[int]:
    if not above_one or most < 2:
        return [1] * rank
    values = [ch.integer(1, most) for _ in range(rank)]
    values[ch.integer(0, rank - 1)] = ch.integer(2, most)
    return values


def dimension(ch: Chooser, eff: int, stride: int, mode: str, out: int) -> tuple[int, tuple[int, int]]:
    """(input size, explicit pads) of one dimension with `out` outputs, for a dilated kernel `eff` wide; pads are
    (0, 0) for named modes. Pads stay below the kernel, so no window lies wholly in the padding."""
    if mode == "explicit":
        lo = ch.integer(0, eff - 1)
        hi = ch.integer(0, min(eff - 1, (out - 1) * stride + eff - 1 - lo))
        return (out - 1) * stride + eff - lo - hi + ch.integer(0, stride - 1), (lo, hi)
    if mode == "VALID":
        return (out - 1) * stride + eff + ch.integer(0, stride - 1), (0, 0)
    # SAME and SAME_LOWER pad any input up to ceil(n / stride) outputs.
    return ch.integer(max(1, (out - 1) * stride + 1), out * stride), (0, 0)


def _width(
    ch: Chooser, eff: int, stride: int, mode: str, full: Mapping[str, str], rest_out: int
) -> tuple[int, tuple[int, int]] | None:
    """(input size, pads) of the width dimension, with the parity, window and output width `full` asks for."""
    wider = full["window"] == "wider"
    odd = full["width_parity"] == "odd"
    lo_out, hi_out = _WIDE_OUT if full["out_width"] != f"<={SMALL_SPATIAL}" else (1, max(rest_out, 1))
    if wider:  # an input narrower than the window, padded by at most eff - 1 on each side
        hi_out = min(hi_out, ((2 * eff - 3) if mode == "explicit" else (eff - 2)) // stride + 1)
        if hi_out < lo_out:
            return None
    for _ in range(4):
        out = ch.integer(lo_out, hi_out)
        lo = hi = 0
        if mode == "explicit":
            lo = ch.integer(0, eff - 1)
            hi = ch.integer(0, min(eff - 1, (out - 1) * stride + eff - 1 - lo))
            if wider:  # the pads must make up for an input narrower than the window
                hi = max(hi, min(eff - 1, (out - 1) * stride + 1 - lo))
            first = (out - 1) * stride + eff - lo - hi
            sizes = range(max(1, first), first + stride)
        elif mode == "VALID":
            sizes = range((out - 1) * stride + eff, out * stride + eff)
        else:
            sizes = range(max(1, (out - 1) * stride + 1), out * stride + 1)
        fits = tuple(n for n in sizes if n % 2 == odd and (n < eff) == wider)
        if fits:
            return ch.pick(fits), (lo, hi)
    return None


_GUIDE: ContextVar[Guide | None] = ContextVar("crosscheck_coverage_guide", default=None)


def current() -> Guide | None:
    """The guide of the (backend, property) run in progress, if the runner set one."""
    return _GUIDE.get()


@contextlib.contextmanager
def guiding(guide: Guide | None) -> Iterator[None]:
    token = _GUIDE.set(guide)
    try:
        yield
    finally:
        _GUIDE.reset(token)


SAMPLE = 400  # random problems built to learn which combinations exist in a backend's space
TARGETED = 12  # attempts per combination the sample missed
PAIR_WEIGHT = 1000  # a greedy row's new pairs count before its new triples
REFUSAL_TRIES = 8  # problems built per uncovered pair to tell a pair the backend refuses from one not reached
PLAN_ROWS = 40  # rows planned for one property's run (its guided draws pick among them)
# The sweep's problems: a small multiply-add budget (a framework call's cost is then mostly its overhead), larger
# only for a pair that cannot be built that small (e.g. more than 14 outputs of 16 channels and more).
SWEEP_MACS = (1_000, 8_000, 40_000)
# Attempts per budget for a pair (a build fails often: a rare pair is built in ~1 attempt in 10), the first ones for
# its greedy row; a pair still without a problem the backend accepts is refused (`refusals`).
SWEEP_TRIES = 160
SWEEP_ROW_TRIES = 8


class Guide:
    """One backend's feature-combination coverage in a run, and the next uncovered row to draw."""

    def __init__(self, backend: str, caps: Capabilities, implementation_source: str = "") -> None:
        self.backend = backend
        self.implementation_source = implementation_source
        self.implementations: Counter[str] = Counter()
        self.caps = caps
        self.domain = domain(caps)
        self.examples = 0
        self.guided = 0
        self.seen: dict[int, set[Combo]] = {2: set(), 3: set()}
        self.values: Counter[Item] = Counter()
        self._buildable: dict[int, set[Combo]] | None = None
        self._order: dict[int, list[Combo]] = {}
        self._plans: dict[str, tuple[dict[str, str], ...]] = {}
        self._rows = PLAN_ROWS
        self._key = ""
        self._run_implementations: Counter[str] = Counter()
        self._sweep: tuple[ConvProblem, ...] | None = None
        self._focus: dict[str, str] | None = None
        self._sweep_refused: dict[Combo, str] = {}
        self.swept = 0  # sweep examples that ran

    # What exists ------------------------------------------------------------------------------------------
    def buildable(self) -> dict[int, set[Combo]]:
        """The pairs and triples of the backend's domain that `build` can make (a sample, then targeted tries)."""
        if self._buildable is None:
            found: dict[int, set[Combo]] = {2: set(), 3: set()}
            rng = random.Random(f"coverage-sample/{self.backend}")
            ch = RandomChooser(rng)
            for _ in range(SAMPLE):
                spec = build(ch, self.caps, {})
                if spec is not None:
                    labels = classify(spec)
                    for size in (2, 3):
                        found[size].update(combos(labels, size))
            for size in (2, 3):
                for combo in self._all(size):
                    if combo in found[size] or (size == 3 and not self._pairs_ok(combo, found[2])):
                        continue
                    for _ in range(TARGETED if size == 2 else 3):
                        spec = build(ch, self.caps, dict(combo))
                        if spec is not None:
                            labels = classify(spec)
                            found[2].update(combos(labels, 2))
                            found[3].update(combos(labels, 3))
                            break
            self._buildable = found
            for size in (2, 3):
                self._order[size] = sorted(found[size])
        return self._buildable

    def _all(self, size: int) -> Iterator[Combo]:
        for feats in itertools.combinations(FEATURES, size):
            for values in itertools.product(*(self.domain[f] for f in feats)):
                yield tuple(zip(feats, values))

    @staticmethod
    def _pairs_ok(combo: Combo, pairs: set[Combo]) -> bool:
        return all(p in pairs for p in itertools.combinations(combo, 2))

    # What ran ---------------------------------------------------------------------------------------------
    def observe(self, spec: ConvSpec) -> None:
        """An example that ran (and passed, or failed as a known finding of its region foretold): its combinations
        are covered."""
        labels = classify(spec)
        self.examples += 1
        self.values.update(labels.items())
        for size in (2, 3):
            self.seen[size].update(combos(labels, size))

    def ran(self, names: list[str]) -> float:
        """Count the implementations an example ran; its score for hypothesis.target() is higher the rarer they
        were in this property's run so far (1 for one not reached before; per property, like the plans, so that
        what a property draws does not depend on the properties before it)."""
        score = sum(1 / (1 + self._run_implementations[n]) for n in set(names))
        self._run_implementations.update(set(names))
        self.implementations.update(set(names))
        return score

    def begin(self, key: str = "", examples: int | None = None, focus: Mapping[str, str] | None = None) -> None:
        """A new Hypothesis run (property `key`, of `examples` examples) starts: its rows are planned afresh, in its
        own order, about as many as it will draw (planning is most of the guide's cost). With `focus` (the features
        of a sweep problem that failed), the plan is that row and rows fixing fewer of its features (see `plan`), so
        the search reaches and shrinks it."""
        self._plans.clear()
        self._key = key
        self._focus = dict(focus) if focus is not None else None
        self._run_implementations.clear()
        self._rows = PLAN_ROWS if examples is None else max(4, min(PLAN_ROWS, examples * 3 // 4 + 2))

    def handed(self) -> None:
        """A planned row was drawn."""
        self.guided += 1

    # What to draw next ------------------------------------------------------------------------------------
    def plan(self, caps: Capabilities, dtypes: tuple[str, ...] | None = None) -> tuple[dict[str, str], ...]:
        """The rows a property whose space is `caps` draws from during this run: a greedy covering array of the pairs
        (then, up to the row budget, the triples) of that space. Fixed until `begin`."""
        sub = domain(caps, dtypes)
        if self._focus is not None and all(v in sub[f] for f, v in self._focus.items()):
            # Rows fixing more and more of its features, in FEATURES order: Hypothesis shrinks the row drawn towards
            # the first, so a failure sheds the size relations (then stride, channels, ...) it does not need.
            return tuple({f: self._focus[f] for f in FEATURES[: i + 1]} for i in range(len(FEATURES)))
        space = _space(sub)
        if space not in self._plans:
            self._plans[space] = self._greedy(sub)
        return self._plans[space]

    def _greedy(self, sub: Mapping[str, tuple[str, ...]]) -> tuple[dict[str, str], ...]:
        built = self.buildable()
        seen: dict[int, set[Combo]] = {2: set(), 3: set()}
        order = {size: list(self._order[size]) for size in (2, 3)}
        rng = random.Random(f"coverage/{self.backend}/{self._key}")
        for size in (2, 3):
            rng.shuffle(order[size])
            # Combinations of features with many values (dtype × padding: 40 for NumPy) need the most rows and no
            # property's run draws them all: every property starts with them, each in its own order.
            order[size].sort(key=lambda c: -math.prod(len(sub[f]) for f, _ in c))

        # The open targets in order, filtered once; a target a planned row covered is skipped as the pass goes on.
        targets = [c for size in (2, 3) for c in order[size] if all(v in sub[f] for f, v in c)]
        rows: list[dict[str, str]] = []
        at = 0
        while len(rows) < self._rows:
            while at < len(targets) and targets[at] in seen[len(targets[at])]:
                at += 1
            if at == len(targets):
                break
            target = targets[at]
            row = self._complete(dict(target), sub, built, seen)
            for size in (2, 3):
                seen[size].update(combos({f: v for f, v in row.items() if f in _ORDER}, size))
            seen[len(target)].add(target)  # a row cut short (no buildable value) must not be planned again
            row["_target"] = "|".join(f"{f}={v}" for f, v in target)
            rows.append(row)
        return tuple(rows)

    @staticmethod
    def _complete(
        row: dict[str, str],
        sub: Mapping[str, tuple[str, ...]],
        built: dict[int, set[Combo]],
        seen: dict[int, set[Combo]],
    ) -> dict[str, str]:
        """`row` with each other feature set to the value that covers the most unseen pairs (then triples), forms no
        pair that cannot be built and, where one can, no triple that the sample never built."""
        for f in FEATURES:
            if f in row:
                continue
            i = _ORDER[f]
            # The row's items and pairs in FEATURES order, so that each combination with a candidate is built in
            # order without sorting (this loop is most of a plan's cost).
            items = sorted(row.items(), key=_key)
            pairs_in_row = list(itertools.combinations(items, 2))
            best, best_score = None, -(PAIR_WEIGHT**3)
            for v in sub[f]:
                c = (f, v)
                pairs = [(item, c) if _ORDER[item[0]] < i else (c, item) for item in items]
                if any(p not in built[2] for p in pairs):
                    continue
                score = PAIR_WEIGHT * sum(p not in seen[2] for p in pairs)
                unbuilt = False
                for a, b in pairs_in_row:
                    if i < _ORDER[a[0]]:
                        t = (c, a, b)
                    elif i < _ORDER[b[0]]:
                        t = (a, c, b)
                    else:
                        t = (a, b, c)
                    if t in built[3]:
                        score += t not in seen[3]
                    else:
                        unbuilt = True
                # A value that completes an unbuilt triple comes last: the draw would most likely be refused.
                score -= PAIR_WEIGHT * PAIR_WEIGHT * unbuilt
                if score > best_score:
                    best, best_score = v, score
            if best is None:
                break
            row[f] = best
        return row

    def sweep(self) -> tuple[ConvProblem, ...]:
        """The backend's covering sweep: problems that together cover every buildable pair of its domain the backend
        does not refuse (and, greedily, triples), small, with seeded values. A pure function of the backend's name
        and capabilities, so every run and every shard draws the same."""
        if self._sweep is None:
            built = self.buildable()
            rng = random.Random(f"coverage-sweep/{self.backend}")
            targets = list(self._order[2])
            rng.shuffle(targets)
            targets.sort(key=lambda c: -math.prod(len(self.domain[f]) for f, _ in c))  # dtype × padding first
            seen: dict[int, set[Combo]] = {2: set(), 3: set()}
            problems: list[ConvProblem] = []
            for target in targets:
                if target in seen[2]:
                    continue
                spec = self._sweep_spec(target, built, seen, len(problems))
                if spec is None:  # refused or never built: `refusals` tells which
                    continue
                labels = classify(spec)
                for size in (2, 3):
                    seen[size].update(combos(labels, size))
                problems.append(_sweep_problem(self.backend, spec, len(problems)))
            self._sweep = tuple(problems)
        return self._sweep

    def _sweep_spec(
        self, target: Combo, built: dict[int, set[Combo]], seen: dict[int, set[Combo]], index: int
    ) -> ConvSpec | None:
        """A small problem with `target`'s pair, its other features chosen to cover what the sweep has not yet
        (the first tries), then only the pair fixed, each budget in turn. A pair whose every problem built here the
        backend refused is kept, with the reason, for `refusals`."""
        row = self._complete(dict(target), self.domain, built, seen)
        reason = ""
        for budget in SWEEP_MACS:
            for attempt in range(SWEEP_TRIES):
                ch = RandomChooser(random.Random(f"coverage-sweep/{self.backend}/{index}/{budget}/{attempt}"))
                spec = build(ch, self.caps, row if attempt < SWEEP_ROW_TRIES else dict(target), max_macs=budget)
                if spec is None:
                    continue
                refused = self.caps.refuses(spec)
                if refused is None:
                    return spec
                reason = reason or refused
        if reason:
            self._sweep_refused[target] = reason
        return None

    # The record -------------------------------------------------------------------------------------------
    def refusals(self) -> dict[Combo, str]:
        """The uncovered pairs the backend refuses (its constraints, e.g. TensorFlow's Eigen kernels refuse NCHW):
        each with the reason it gave for every problem of that pair built here. Asked only at the end, of the few
        pairs left: an isolated backend answers each question from its worker. Where the sweep ran, its verdict on a
        pair stands (it tried far more problems)."""
        rng = random.Random(f"coverage-refusals/{self.backend}")
        out: dict[Combo, str] = {}
        for pair in sorted(self.buildable()[2] - self.seen[2]):
            if self._sweep is not None:
                if pair in self._sweep_refused:
                    out[pair] = self._sweep_refused[pair]
                continue
            reasons = []
            for _ in range(REFUSAL_TRIES):
                spec = build(RandomChooser(rng), self.caps, dict(pair))
                if spec is not None:
                    reasons.append(self.caps.refuses(spec))
            if reasons and all(reasons):
                out[pair] = str(reasons[0])
        return out

    def to_dict(self, combinations: bool = False) -> dict[str, Any]:
        """Pair and triple coverage over the buildable combinations the backend does not refuse, with the uncovered
        pairs named and the refused ones given with the backend's reason. With `combinations` (a shard's record),
        also every covered pair and triple (`union` merges shards by them) and every uncovered pair."""
        built = self.buildable()
        refused = self.refusals()
        out: dict[str, Any] = {
            "examples": self.examples,
            "guided_draws": self.guided,
            "sweep_examples": self.swept,
            "features": {},
        }
        for f in FEATURES:
            out["features"][f] = {v: self.values[(f, v)] for v in self.domain[f]}
        for size, name in ((2, "pairs"), (3, "triples")):
            space = {c for c in built[size] if not any(p in refused for p in itertools.combinations(c, 2))}
            covered = space & self.seen[size]
            out[name] = {
                "covered": len(covered),
                "total": len(space),
                "ratio": round(len(covered) / len(space), 4) if space else None,
            }
            if combinations:
                out[name]["combinations"] = sorted(_name(c) for c in covered)
        counts = dict(self.implementations.most_common())
        out["implementations"] = {"source": self.implementation_source, "counts": counts}
        missing = sorted(built[2] - self.seen[2] - set(refused))
        out["pairs"]["uncovered"] = [_name(c) for c in (missing if combinations else missing[:50])]
        out["pairs"]["refused"] = {_name(c): reason for c, reason in refused.items()}
        return out


def union(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One backend's coverage over several shards' entries (`Guide.to_dict(combinations=True)`): the covered pairs
    and triples united, the counts (examples, feature values, implementations) added, a pair uncovered only where
    no shard covered it. Entries without their combinations (older records) cannot be united: the one with the most
    examples is kept, marked partial."""
    if len(entries) == 1:
        return dict(entries[0])
    if not all("combinations" in e[k] for e in entries for k in ("pairs", "triples")):
        return {**max(entries, key=lambda e: e["examples"]), "partial": True}
    out: dict[str, Any] = {
        "examples": sum(e["examples"] for e in entries),
        "guided_draws": sum(e.get("guided_draws", 0) for e in entries),
        "sweep_examples": sum(e.get("sweep_examples", 0) for e in entries),
        "features": {},
    }
    for e in entries:
        for f, values in (e.get("features") or {}).items():
            into = out["features"].setdefault(f, {})
            for v, n in values.items():
                into[v] = into.get(v, 0) + n
    refused: dict[str, str] = {}
    for e in entries:
        refused.update(e["pairs"].get("refused") or {})
    for name in ("pairs", "triples"):
        covered = sorted(set().union(*(e[name]["combinations"] for e in entries)))
        # Shards of one backend share its space; one that refused a pair another covered counts it out.
        total = max(e[name]["total"] for e in entries)
        out[name] = {
            "covered": len(covered),
            "total": total,
            "ratio": round(len(covered) / total, 4) if total else None,
            "combinations": covered,
        }
    done = set(out["pairs"]["combinations"])
    open_in_all = set.intersection(
        *(set(e["pairs"]["uncovered"]) | set(e["pairs"].get("refused") or {}) for e in entries)
    )
    out["pairs"]["refused"] = {c: why for c, why in sorted(refused.items()) if c not in done}
    out["pairs"]["uncovered"] = sorted(open_in_all - done - set(out["pairs"]["refused"]))
    counts: Counter[str] = Counter()
    for e in entries:
        counts.update((e.get("implementations") or {}).get("counts") or {})
    source = next(((e.get("implementations") or {}).get("source") for e in entries if e.get("implementations")), "")
    out["implementations"] = {"source": source, "counts": dict(counts.most_common())}
    return out


def _sweep_problem(backend: str, spec: ConvSpec, index: int) -> ConvProblem:
    """Row `index`'s problem: values of a kind taken in turn (exact only where the dtype sums them exactly), seeded
    by backend and row."""
    kinds = [v for v in VALUE_KINDS if v != "exact" or exact_value_limit(spec.dtype, spec.terms)]
    seed = random.Random(f"coverage-sweep-values/{backend}/{index}").randrange(2**32)
    return make_problem(spec, seed, kinds[index % len(kinds)])


def _name(combo: Combo) -> str:
    return " & ".join(f"{f}={v}" for f, v in combo)


def _key(item: Item) -> int:
    return _ORDER[item[0]]


def _space(sub: Mapping[str, tuple[str, ...]]) -> str:
    return repr(sorted(sub.items()))
