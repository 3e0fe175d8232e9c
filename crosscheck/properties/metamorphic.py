"""Metamorphic invariants: identities between several runs of the backend's own convolution.

Each property draws one problem (from the backend's declared space, narrowed to where the identity
says something), derives the other problems of the identity from it deterministically (from its
seed, so that (spec, seed, values) still reproduce an example), runs the backend on all of them and
compares the two sides within the sum of their own bounds (crosscheck.checks.relations), bit for bit on
exact-mode values. None of them consults the reference for the answer, only for the bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.checks.relations import Relation, RelationBroken, Side, derived, exact_sum, relate, side
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import VALUE_KINDS, exact_value_limit, make_problem
from crosscheck.properties.base import Observation, Property, PropertyFailure, features, run_backend
from crosscheck.reference.elementwise import magnitude
from crosscheck.reference.geometry import work_dtype
from crosscheck.strategies import conv_specs

# Every example runs the backend two or more times and the reference once per run: smaller problems
# and a quarter of the profile's examples keep each property at about the cost of matches_reference.
MAX_MACS = 6_000
BUDGET = 0.25


@st.composite
def problems_where(
    draw: st.DrawFn, caps: Capabilities, keep: Callable[[ConvSpec], bool], fix: Callable[[ConvSpec], ConvSpec] | None
) -> ConvProblem:
    """A problem whose spec satisfies `keep` (after `fix`, which may adjust a drawn spec)."""
    spec = draw(conv_specs(caps, max_macs=MAX_MACS).map(fix or (lambda s: s)).filter(keep))
    kinds = [v for v in VALUE_KINDS if v != "exact" or exact_value_limit(spec.dtype, spec.terms)]
    return make_problem(spec, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(kinds)))


def _rng(problem: ConvProblem, stream: int) -> np.random.Generator:
    """The generator for a property's derived choices: a stream of the problem's seed of its own."""
    return np.random.default_rng([problem.seed, stream])


class MetamorphicProperty(Property):
    """Shared plumbing: run a problem, turn a broken relation into a PropertyFailure, observe."""

    budget = BUDGET
    label = ""  # the coverage label of this identity

    def keep(self, caps: Capabilities, spec: ConvSpec) -> bool:
        return True

    def fix(self, spec: ConvSpec) -> ConvSpec:
        return spec

    def derived(self, spec: ConvSpec) -> list[ConvSpec]:
        """The geometries of the second side of the identity, where they differ from `spec`'s."""
        return []

    def specs(self, spec: ConvSpec) -> list[ConvSpec]:
        return [spec, *self.derived(spec)]

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        caps = backend.capabilities()
        return problems_where(caps, lambda s: self.keep(caps, s), self.fix)

    def _run(self, backend: Backend, problem: ConvProblem, base: ConvProblem) -> Side:
        y = run_backend(backend, self.name, problem)
        if y.shape != problem.spec.y_shape:
            raise PropertyFailure(
                f"Shape mismatch on {problem.spec.describe()}: expected {problem.spec.y_shape}, got {y.shape}",
                backend.name,
                self.name,
                base,
            )
        return side(backend, problem, y)

    def _relate(
        self, backend: Backend, base: ConvProblem, a: np.ndarray, b: np.ndarray, allowed: np.ndarray, what: str
    ) -> Relation:
        try:
            return relate(a, b, allowed, what)
        except RelationBroken as exc:
            where = base.where()
            raise PropertyFailure(f"{exc}\n{where}", backend.name, self.name, base) from None

    def _observe_relations(self, problem: ConvProblem, relations: list[Relation]) -> Observation:
        worst = max((r.max_ratio for r in relations), default=0.0)
        exact = all(r.exact for r in relations)
        return Observation(problem.spec.dtype, worst, 0.0, 0.0, exact, [*features(problem.spec, problem.values)])


class BatchIndependence(MetamorphicProperty):
    name = "batch_independence"
    title = "each batch item alone equals its slice of the batch"
    description = (
        "conv(x[n:n+1], w) equals conv(x, w)[n] for every batch item n, within the sum of the two "
        "results' bounds (bit for bit on exact-mode inputs): no item leaks into another."
    )

    def fix(self, spec: ConvSpec) -> ConvSpec:
        return spec if spec.batch > 1 else spec.with_(batch=2)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        whole = self._run(backend, problem, problem)
        one = problem.spec.with_(batch=1)
        relations = []
        for n in range(problem.spec.batch):
            item = self._run(backend, derived(problem, one, problem.x[n : n + 1], problem.w, item=n), problem)
            relations.append(
                self._relate(
                    backend,
                    problem,
                    whole.y[n : n + 1],
                    item.y,
                    whole.bound[n : n + 1] + item.bound,
                    f"conv(x, w)[{n}] against conv(x[{n}:{n + 1}], w)",
                )
            )
        return self._observe_relations(problem, relations)


# (a, b) are powers of two, so a·x1 and b·x2 are exact in every float dtype; only their sum rounds.
_SCALES = (1.0, -1.0, 2.0, -2.0, 0.5, -0.5)
_INTEGER_SCALES = (1.0, -1.0, 2.0, -2.0)


class Linearity(MetamorphicProperty):
    name = "linearity"
    title = "linear in x and in w"
    description = (
        "conv(a·x1 + b·x2, w) equals a·conv(x1, w) + b·conv(x2, w) (and likewise in w), the right side "
        "formed in float64 from the backend's outputs, with a, b powers of two: allowed the three "
        "results' bounds (scaled by |a|, |b|), the float64 rounding of the right side, and |δ|⋆|w| for "
        "the rounding δ of a·x1 + b·x2 to the dtype (bit for bit on exact-mode inputs)."
    )
    stream = 101

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        rng = _rng(problem, self.stream)
        arg = str(rng.choice(["x", "w"]))
        exact_values = problem.values == "exact" or not dtype_info(spec.dtype).is_float
        a, b = (float(v) for v in rng.choice(_INTEGER_SCALES if exact_values else _SCALES, size=2))
        other = make_problem(spec, (problem.seed + 1) % 2**32, problem.values)
        v1, v2 = (problem.x, other.x) if arg == "x" else (problem.w, other.w)
        combined, delta = _combine(a, v1, b, v2, dtype_info(spec.dtype).numpy)
        second = derived(problem, spec, *((other.x, problem.w) if arg == "x" else (problem.x, other.w)), second=True)
        mixed = derived(problem, spec, *((combined, problem.w) if arg == "x" else (problem.x, combined)), mixed=True)
        s1, s2, s3 = (self._run(backend, p, problem) for p in (problem, second, mixed))
        rhs, rounding = exact_sum(a * s1.y, b * s2.y)
        # conv(fl(a·v1 + b·v2)) is exactly a·conv(v1) + b·conv(v2) − conv(δ): at most |δ| ⋆ |other argument|.
        if arg == "x":
            input_rounding = _abs_conv(spec, delta, np.abs(problem.w.astype(work_dtype(problem.w))))
        else:
            input_rounding = _abs_conv(spec, np.abs(problem.x.astype(work_dtype(problem.x))), delta)
        allowed = s3.bound + abs(a) * s1.bound + abs(b) * s2.bound + rounding + input_rounding
        what = f"conv({_name(a, b, arg)}) against {_combination(a, b, arg)}"
        relation = self._relate(backend, problem, s3.y, rhs, allowed, what)
        obs = self._observe_relations(problem, [relation])
        obs.features.append(f"linear-in={arg}")
        return obs


def _combine(a: float, v1: np.ndarray, b: float, v2: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(fl_dtype(a·v1 + b·v2), |a·v1 + b·v2 − that|) with the second part exact, in float64."""
    exact_hi, exact_err = exact_sum(a * v1.astype(work_dtype(v1)), b * v2.astype(work_dtype(v2)))
    rounded = exact_hi.astype(dt)
    # |(hi − rounded) + err|: hi − rounded is exact (Sterbenz: both are within a factor 2 of each other
    # or rounded is hi itself); err is the float64 sum's own rounding (zero below float64).
    diff = np.abs(exact_hi - rounded.astype(exact_hi.dtype)) + exact_err
    return rounded, np.asarray(diff * (1 + 2.0**-51), dtype=np.float64)


def _abs_conv(spec: ConvSpec, xa: np.ndarray, wa: np.ndarray) -> np.ndarray:
    """|x| ⋆ |w| for non-negative float64 arrays, rounded up (the reference's magnitude)."""
    p = ConvProblem(spec.with_(dtype="float64"), np.asarray(xa, np.float64), np.asarray(wa, np.float64))
    return np.asarray(magnitude(p) * (1 + 2.0**-50))


def _name(a: float, b: float, arg: str) -> str:
    return f"{a:g}·{arg}1 + {b:g}·{arg}2" if arg == "x" else f"x, {a:g}·w1 + {b:g}·w2"


def _combination(a: float, b: float, arg: str) -> str:
    if arg == "x":
        return f"{a:g}·conv(x1, w) + {b:g}·conv(x2, w)"
    return f"{a:g}·conv(x, w1) + {b:g}·conv(x, w2)"


class GroupConcatenation(MetamorphicProperty):
    name = "group_concatenation"
    title = "a grouped convolution is its groups side by side"
    description = (
        "conv(x, w, groups=G) equals the concatenation over g of conv(x[:, group g's input channels], "
        "w[group g's filters]) with groups=1, within the sum of the two results' bounds."
    )

    def applies(self, backend: Backend) -> str | None:
        caps = backend.capabilities()
        if caps.groups:
            return None
        reasons = [r for f, r in caps.unsupported if "group" in f]
        return "groups > 1 are not supported" + (f": {reasons[0]}" if reasons else "")

    def keep(self, caps: Capabilities, spec: ConvSpec) -> bool:
        return spec.groups > 1 and caps.refuses(_one_group(spec)) is None

    def derived(self, spec: ConvSpec) -> list[ConvSpec]:
        return [_one_group(spec)]

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        whole = self._run(backend, problem, problem)
        cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        relations = []
        for g in range(spec.groups):
            x, w = problem.x[:, g * cg : (g + 1) * cg], problem.w[g * og : (g + 1) * og]
            part = self._run(backend, derived(problem, _one_group(spec), x, w, group=g), problem)
            out = slice(g * og, (g + 1) * og)
            relations.append(
                self._relate(
                    backend,
                    problem,
                    whole.y[:, out],
                    part.y,
                    whole.bound[:, out] + part.bound,
                    f"output channels {g * og}..{(g + 1) * og - 1} (group {g}) against group {g} run on its own",
                )
            )
        return self._observe_relations(problem, relations)


def _one_group(spec: ConvSpec) -> ConvSpec:
    return spec.with_(
        in_channels=spec.in_channels // spec.groups, out_channels=spec.out_channels // spec.groups, groups=1
    )


# Zero insertion multiplies the taps by up to dilation^rank: keep the dilated kernel small.
_MAX_DILATED_TAPS = 64


class DilationAsZeroInsertion(MetamorphicProperty):
    name = "dilation_as_zero_insertion"
    title = "dilation is a kernel with zeros inserted"
    description = (
        "conv(x, w, dilation=d) equals conv(x, w_d, dilation=1) where w_d has d − 1 zeros between "
        "neighbouring taps, within the sum of the two results' bounds (each with its own K)."
    )

    def applies(self, backend: Backend) -> str | None:
        return None if backend.capabilities().max_dilation > 1 else "dilation > 1 is not supported"

    def keep(self, caps: Capabilities, spec: ConvSpec) -> bool:
        if max(spec.dilation) == 1 or math.prod(_dilated_kernel(spec)) > _MAX_DILATED_TAPS:
            return False
        return caps.refuses(_undilated(spec)) is None

    def derived(self, spec: ConvSpec) -> list[ConvSpec]:
        return [_undilated(spec)]

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        plain = _undilated(spec)
        w = np.zeros(plain.w_shape, dtype=problem.w.dtype)
        w[(slice(None), slice(None), *(slice(None, None, d) for d in spec.dilation))] = problem.w
        dilated = self._run(backend, problem, problem)
        inserted = self._run(backend, derived(problem, plain, problem.x, w, zero_inserted=True), problem)
        relation = self._relate(
            backend,
            problem,
            dilated.y,
            inserted.y,
            dilated.bound + inserted.bound,
            f"dilation {list(spec.dilation)} against the zero-inserted kernel {list(plain.kernel)}",
        )
        return self._observe_relations(problem, [relation])


def _dilated_kernel(spec: ConvSpec) -> tuple[int, ...]:
    return tuple(effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation))


def _undilated(spec: ConvSpec) -> ConvSpec:
    # Named padding resolves from the effective kernel, which zero insertion keeps: it stays named.
    return spec.with_(kernel=_dilated_kernel(spec), dilation=(1,) * spec.rank)


_MAX_UNSTRIDED_MACS = 40_000


class StrideAsSubsampling(MetamorphicProperty):
    name = "stride_as_subsampling"
    title = "a strided result is the stride-1 result subsampled"
    description = (
        "conv(x, w, stride=s) equals conv(x, w, stride=1)[..., ::s] (with the strided problem's pads "
        "given explicitly), within the sum of the two results' bounds."
    )

    def applies(self, backend: Backend) -> str | None:
        caps = backend.capabilities()
        if caps.max_stride == 1:
            return "stride > 1 is not supported"
        return None if "explicit" in caps.padding else "explicit padding is not supported"

    def keep(self, caps: Capabilities, spec: ConvSpec) -> bool:
        if max(spec.stride) == 1:
            return False
        one = _unstrided(spec)
        return one.macs <= _MAX_UNSTRIDED_MACS and caps.refuses(one) is None

    def derived(self, spec: ConvSpec) -> list[ConvSpec]:
        return [_unstrided(spec)]

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        strided = self._run(backend, problem, problem)
        full = self._run(backend, derived(problem, _unstrided(spec), problem.x, problem.w, unstrided=True), problem)
        index: tuple[Any, ...] = (..., *(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride)))
        relation = self._relate(
            backend,
            problem,
            strided.y,
            full.y[index],
            strided.bound + full.bound[index],
            f"stride {list(spec.stride)} against the stride-1 result subsampled",
        )
        return self._observe_relations(problem, [relation])


def _unstrided(spec: ConvSpec) -> ConvSpec:
    # SAME pads depend on the stride: the stride-1 problem takes the strided problem's pads as they are.
    return spec.with_(stride=(1,) * spec.rank, padding=spec.pads)


class ShiftEquivariance(MetamorphicProperty):
    name = "shift_equivariance"
    title = "shifting the input shifts the output"
    description = (
        "Moving x by t·stride positions towards the start of one spatial axis (zeros shifted in at the "
        "end) moves the output by t positions, on every output whose window reads no padding that the "
        "shift would have filled: conv(x')[m] = conv(x)[m + t] there, within the sum of both bounds."
    )
    stream = 102

    def keep(self, caps: Capabilities, spec: ConvSpec) -> bool:
        return any(_shifts(spec, d) for d in range(spec.rank))

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        spec = problem.spec
        rng = _rng(problem, self.stream)
        dims = [d for d in range(spec.rank) if _shifts(spec, d)]
        d = int(rng.choice(dims))
        t = int(rng.choice(_shifts(spec, d)))
        axis, amount = 2 + d, t * spec.stride[d]
        x = np.zeros_like(problem.x)
        keep = problem.x.shape[axis] - amount
        x[_along(axis, slice(0, keep))] = problem.x[_along(axis, slice(amount, None))]
        original = self._run(backend, problem, problem)
        shifted = self._run(backend, derived(problem, spec, x, problem.w, shift=(d, t)), problem)
        first = _first_valid(spec, d)
        valid = _along(axis, slice(first, spec.out_size[d] - t))
        moved = _along(axis, slice(first + t, spec.out_size[d]))
        relation = self._relate(
            backend,
            problem,
            shifted.y[valid],
            original.y[moved],
            shifted.bound[valid] + original.bound[moved],
            f"input shifted by {amount} along spatial axis {d}: output {first}.. against output {first + t}..",
        )
        obs = self._observe_relations(problem, [relation])
        obs.features.append(f"shift-axis={d}")
        return obs


def _along(axis: int, index: slice) -> tuple[slice, ...]:
    return (slice(None),) * axis + (index,)


def _first_valid(spec: ConvSpec, d: int) -> int:
    """The first output whose window starts past the low padding: before it, the shifted input would
    put zeros of the padding where the original had values."""
    return -(-spec.pads[d][0] // spec.stride[d])


def _shifts(spec: ConvSpec, d: int) -> list[int]:
    """The shifts t (in output positions) along spatial axis d that leave some output to compare."""
    room = spec.out_size[d] - _first_valid(spec, d)
    return [t for t in range(1, room) if t * spec.stride[d] < spec.in_size[d]]


METAMORPHIC: dict[str, Property] = {
    p.name: p
    for p in (
        BatchIndependence(),
        Linearity(),
        GroupConcatenation(),
        DilationAsZeroInsertion(),
        StrideAsSubsampling(),
        ShiftEquivariance(),
    )
}
