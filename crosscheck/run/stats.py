"""Aggregates of many examples: counts, worst error-to-bound ratios, and their distribution."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Histogram of log10(error / bound): bins of a quarter decade from 1e-8 to 1 (values above 1 fail).
HIST_LO, HIST_HI, HIST_STEP = -8.0, 0.0, 0.25
HIST_BINS = int((HIST_HI - HIST_LO) / HIST_STEP)


def hist_edges() -> list[float]:
    return [HIST_LO + i * HIST_STEP for i in range(HIST_BINS + 1)]


@dataclass
class DtypeStats:
    examples: int = 0
    exact_examples: int = 0
    max_ratio: float = 0.0
    max_ulp: float = 0.0
    zero_error: int = 0  # examples whose every element matched the reference exactly
    below: int = 0  # ratios below 1e-8 but not zero
    histogram: list[int] = field(default_factory=lambda: [0] * HIST_BINS)
    above: int = 0
    expected: list[float] = field(default_factory=list)  # √K·u / bound at each worst element

    def add(self, ratio: float, ulp: float, expected: float, exact: bool) -> None:
        self.examples += 1
        self.max_ulp = max(self.max_ulp, ulp)
        if exact:
            self.exact_examples += 1
            return
        self.max_ratio = max(self.max_ratio, ratio)
        if expected > 0:
            self.expected.append(expected)
        if ratio == 0:
            self.zero_error += 1
            return
        pos = math.log10(ratio)
        if pos < HIST_LO:
            self.below += 1
        elif pos >= HIST_HI:
            self.above += 1
        else:
            self.histogram[int((pos - HIST_LO) / HIST_STEP)] += 1

    def to_dict(self) -> dict[str, Any]:
        exp = sorted(self.expected)
        return {
            "examples": self.examples,
            "exact_examples": self.exact_examples,
            "max_ratio": self.max_ratio,
            "max_ulp": self.max_ulp,
            "zero_error": self.zero_error,
            "below": self.below,
            "histogram": self.histogram,
            "above": self.above,
            "expected_ratio_median": exp[len(exp) // 2] if exp else None,
        }


@dataclass
class Tally:
    """Everything one (backend, property) run observed."""

    examples: int = 0
    informative: int = 0
    shrink_steps: int = 0
    features: Counter[str] = field(default_factory=Counter)
    by_dtype: dict[str, DtypeStats] = field(default_factory=dict)
    # Precision mode -> dtype -> stats, for examples run in a reduced-precision mode.
    by_mode: dict[str, dict[str, DtypeStats]] = field(default_factory=dict)

    def add(
        self, dtype: str, ratio: float, ulp: float, expected: float, exact: bool, features: list[str], informative: bool
    ) -> None:
        self.examples += 1
        self.informative += int(informative)
        self.features.update(features)
        self.by_dtype.setdefault(dtype, DtypeStats()).add(ratio, ulp, expected, exact)

    def add_mode(self, mode: str, dtype: str, ratio: float, ulp: float, expected: float, exact: bool) -> None:
        """The same example again, under its precision mode (it was counted by `add` already)."""
        self.by_mode.setdefault(mode, {}).setdefault(dtype, DtypeStats()).add(ratio, ulp, expected, exact)
