"""How many examples `crosscheck verify` needs to catch each wrong target, at the default settings.

    python tests/support/verify_targets/measure.py [SEEDS] [TARGET ...]

For each target and each seed 0..SEEDS-1 it runs the whole verify (isolated, default example budget,
dtype and dims, stopping at the first failing property) and prints the median example on which the
first failure showed (1 = the first example), the worst seed, how many seeds caught it, and the median
wall time of that verify (shrinking included). It then runs is_cross_correlation alone, the same way,
for its own numbers. Correct targets must show "never" (and run every property: slower).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRONG = [
    "flipped",
    "swapped_padding",
    "wrong_groups",
    "wrong_length",
    "nan_on_some",
    "localized_error",
    "wrong_shape",
    "wrong_dtype",
    "segfault",
    "aborts",
]
CORRECT = ["correct_im2col", "correct_fft", "only_2d"]


def main(argv: list[str]) -> None:
    from crosscheck.verify import verify

    seeds = int(argv[0]) if argv else 5
    targets = argv[1:] or WRONG + CORRECT
    print(f"{'target':<16} {'property':<21} {'median':>6} {'worst':>5} {'caught':>7} {'time/verify':>11}")
    for name in targets:
        caught: dict[str, list[int]] = {}
        seconds = []
        for seed in range(seeds):
            t0 = time.perf_counter()
            v = verify(f"{HERE / name}.py:conv", seed=seed, timeout=10)
            seconds.append(time.perf_counter() - t0)
            first = next((r for r in v.record["results"] if r["status"] == "failed"), None)
            caught.setdefault("first failure", [])
            if first:
                caught["first failure"].append(int(first["caught_at"]))
            alone = verify(f"{HERE / name}.py:conv", seed=seed, timeout=10, properties=["is_cross_correlation"])
            at = alone.record["results"][0].get("caught_at")
            caught.setdefault("is_cross_correlation", [])
            if at:
                caught["is_cross_correlation"].append(int(at))
        for prop, ats in caught.items():
            median = f"{statistics.median(ats):g}" if ats else "never"
            worst = str(max(ats)) if ats else "-"
            print(
                f"{name:<16} {prop:<21} {median:>6} {worst:>5} {len(ats):>3}/{seeds:<3}"
                f" {statistics.median(seconds):>9.1f} s"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
