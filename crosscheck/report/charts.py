"""Error-to-bound distributions drawn by matplotlib (Agg, no pyplot) into inline SVG.

One chart per float dtype, one row per backend (a ridgeline): the histogram of log10(error/bound)
at each example's worst element, the bound (ratio 1) and the √K·u scale that random rounding
errors are expected to reach (Higham & Mary 2019).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from crosscheck.report.model import Dist
from crosscheck.run.stats import HIST_HI, HIST_LO, hist_edges

# Colour-blind-safe (Okabe–Ito, then Tol's muted), fixed per backend so every chart agrees.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#332288",
    "#117733",
    "#882255",
    "#999933",
    "#44AA99",
    "#AA4499",
)
_BELOW = (HIST_LO - 1.0, HIST_LO - 0.5)  # where ratios under 1e-8 are drawn
_ABOVE = (HIST_HI + 0.25, HIST_HI + 0.75)  # ratios over 1: failures


def colour(backend: str, order: Sequence[str]) -> str:
    i = list(order).index(backend) if backend in order else len(order)
    return PALETTE[i % len(PALETTE)]


def _superscript(k: int) -> str:
    return "1" if k == 0 else "10" + str(k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


# Fixed margins (inches) so that every dtype's chart lines up with the others on the page.
_WIDTH, _LEFT, _RIGHT, _ROW, _TOP, _BOTTOM = 10.0, 1.35, 3.35, 0.42, 0.45, 0.62
_NOTE: dict[str, Any] = {"va": "center", "fontsize": 8}


def distribution_svg(dtype: str, dists: Sequence[Dist], order: Sequence[str]) -> str:
    """An inline <svg> element: the ridgeline chart of one dtype."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    n = len(dists)
    height = _TOP + _BOTTOM + _ROW * n
    with rc_context(
        {
            "svg.fonttype": "none",  # text stays text: smaller, selectable, no embedded glyph paths
            "svg.hashsalt": "crosscheck",  # stable element ids, so the same record gives the same file
            "font.family": "sans-serif",
            "font.size": 9,
        }
    ):
        fig = Figure(figsize=(_WIDTH, height))
        ax = fig.add_axes((_LEFT / _WIDTH, _BOTTOM / height, (_WIDTH - _LEFT - _RIGHT) / _WIDTH, _ROW * n / height))
        edges = hist_edges()
        ax.axvspan(HIST_HI, _ABOVE[1] + 0.1, color="#d62728", alpha=0.08, lw=0)
        ax.axvline(0.0, color="#d62728", lw=1.5, label="the bound (error = bound)")
        expected_drawn = failed_drawn = False
        for i, d in enumerate(dists):
            base = n - 1 - i
            peak = max([*d.histogram, d.below, d.above, 1])
            c = colour(d.backend, order)
            heights = [base + 0.8 * v / peak for v in d.histogram]
            ax.stairs(heights, edges, baseline=base, fill=True, color=c, alpha=0.85, lw=0)
            for count, (lo, hi) in ((d.below, _BELOW), (d.above, _ABOVE)):
                if count:
                    ax.fill_between([lo, hi], base, base + 0.8 * count / peak, color=c, alpha=0.5, lw=0)
            if d.failed:
                ax.plot([sum(_ABOVE) / 2], [base + 0.35], marker="X", ms=9, color="#b3261e", ls="none")
                failed_drawn = True
            ax.axhline(base, color="#bbbbbb", lw=0.5)
            if d.expected and d.expected > 0 and HIST_LO <= math.log10(d.expected) <= HIST_HI:
                x = math.log10(d.expected)
                ax.plot([x, x], [base, base + 0.9], color="black", lw=1.2, ls=(0, (2, 1.5)))
                expected_drawn = True
            worst = "—" if d.max_ratio is None else f"{d.max_ratio:.2g}"
            note = f"{d.measured} with error · {d.zero} error-free · {d.exact} exact-mode · worst {worst}"
            ax.text(1.02, base + (0.5 if d.failed else 0.3), note, transform=ax.get_yaxis_transform(), **_NOTE)
            if d.failed:
                failed = f"✗ {d.failed} failed (minimal examples; not in the bars)"
                ax.text(1.02, base + 0.12, failed, transform=ax.get_yaxis_transform(), color="#b3261e", **_NOTE)
        if expected_drawn:
            ax.plot([], [], color="black", lw=1.2, ls=(0, (2, 1.5)), label="√K·u: typical rounding error (median)")
        if failed_drawn:
            ax.plot([], [], marker="X", ms=7, color="#b3261e", ls="none", label="a failure")
        ax.set_yticks([n - 1 - i + 0.3 for i in range(n)], [d.backend for d in dists])
        ticks = list(range(int(HIST_LO), int(HIST_HI) + 1))
        ax.set_xticks(
            [sum(_BELOW) / 2, *ticks, sum(_ABOVE) / 2],
            ["<10⁻⁸", *(_superscript(k) for k in ticks), ">1"],
        )
        ax.set_xlim(_BELOW[0] - 0.1, _ABOVE[1] + 0.1)
        ax.set_ylim(-0.15, n)
        ax.set_xlabel(f"{dtype}: error ÷ bound at the worst element of each example (log scale; ≤ 1 holds)")
        ax.spines[["top", "right", "left"]].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, frameon=False, fontsize=8)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    # Inline in HTML: drop the XML prolog and DOCTYPE, keep the <svg> element itself.
    return text[text.index("<svg") :]


def distribution_charts(dists: dict[str, list[Dist]], order: Sequence[str]) -> dict[str, str]:
    return {dtype: distribution_svg(dtype, ds, order) for dtype, ds in dists.items() if ds}
