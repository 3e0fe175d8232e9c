"""Deterministic sharding: N machines share one `crosscheck run` without overlap.

The unit of work is one (backend, property) pair, plus pairwise agreement as a single unit. A plan lists
every unit of a run; shard I of N takes every N-th unit of the plan in a fixed pseudo-random order, so
the shards are disjoint, their union is the plan, and their sizes differ by at most one.

The order is a hash of each unit's name, not the sorted order: sorted round-robin would hand shard 1
the same properties on every backend (or the same backends for every property), and properties differ
in cost far more than pairs do within a hash-mixed set.

A plan depends only on the backends and properties asked for (installed or not) and on pairwise being
on, never on what happens to be installed, so every machine of a sharded run computes the same plan
from the same command line. Its digest goes into each shard's record (`run.shard_plan`), which lets
`crosscheck report merge` tell whether the shards of one plan are all there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crosscheck.core.errors import CrosscheckError

PAIRWISE = ("pairwise", "agreement")  # the pairwise unit: every backend on every example

Unit = tuple[str, str]  # (backend, property), or PAIRWISE


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as users count machines
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise CrosscheckError(f"shard {self.index}/{self.count}: expected I/N with 1 <= I <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError:
            raise CrosscheckError(f"shard {text!r}: expected I/N, e.g. 1/4") from None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _order(unit: Unit) -> bytes:
    return hashlib.sha256("/".join(unit).encode()).digest()


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]  # in assignment order

    @property
    def digest(self) -> str:
        """Names the plan: shards with the same digest and count belong to one run."""
        text = json.dumps(sorted(self.units), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def assigned(self, shard: Shard | None) -> list[Unit]:
        if shard is None:
            return list(self.units)
        return [u for i, u in enumerate(self.units) if i % shard.count == shard.index - 1]


def plan(backends: Iterable[str], properties: Sequence[str], pairwise: bool) -> Plan:
    units = {(b, p) for b in backends for p in properties}
    names = {b for b, _ in units}
    if pairwise and len(names) >= 2:
        units.add(PAIRWISE)
    return Plan(tuple(sorted(units, key=lambda u: (_order(u), u))))
