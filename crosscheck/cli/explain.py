"""`crosscheck explain`: the seed question answered on its worked example (`crosscheck.report.seed`), step by step.

The arithmetic is plain NumPy on small integer arrays, so every number printed is exact; the last
step runs the same problems through each installed backend and compares with the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crosscheck.report.seed import ASYM_B, SEED_A, SEED_B, SeedExample, correlate_valid, seed_example

# Three input channels (depth) for the depth-sum and 1×1 steps.
DEPTH_X = np.stack([SEED_A, SEED_A.T, SEED_A[::-1]])
DEPTH_W = np.stack([SEED_B, ASYM_B, ASYM_B.T])
MIX_W = np.array([[1, 2, 0], [0, -1, 1]], dtype=np.int64)  # 1×1 filters: 2 outputs from 3 channels


def grid(a: np.ndarray) -> list[str]:
    width = max(len(str(int(v))) for v in a.flat)
    return [" ".join(str(int(v)).rjust(width) for v in row) for row in a]


def side_by_side(blocks: Sequence[tuple[str, list[str]]], gap: int = 6, indent: str = "    ") -> list[str]:
    """Titled blocks of lines printed next to each other (matrices shown as they are written)."""
    widths = [max(len(title), *(len(line) for line in lines)) for title, lines in blocks]
    height = max(len(lines) for _, lines in blocks)
    out = [indent + "".join(title.ljust(w + gap) for (title, _), w in zip(blocks, widths)).rstrip()]
    for i in range(height):
        cells = ((lines[i] if i < len(lines) else "").ljust(w + gap) for (_, lines), w in zip(blocks, widths))
        out.append(indent + "".join(cells).rstrip())
    return out


def _steps() -> list[str]:
    ex = seed_example()
    a, b = ex.a, ex.b
    products = [(int(a[u, v]), int(b[u, v])) for u in range(3) for v in range(3)]
    window, filt = a[0:3, 0:3].ravel(), b.ravel()
    lines = [
        "Is a CNN convolution a dot product or a sum of element-wise products? Both, and it is a",
        "cross-correlation. The seed's worked example, step by step:",
        "",
        *side_by_side([("input A (5×5)", grid(a)), ("filter B (3×3)", grid(b))]),
        "",
        "1. One output element is a sum of element-wise products (the seed's answer is",
        f"   C = {ex.c.tolist()})",
        "    C[m,n] = Σ_u Σ_v A[m+u, n+v] · B[u,v]",
        "    C[0,0] = " + " + ".join(f"{x}·{y}" for x, y in products),
        "           = " + " + ".join(str(x * y) for x, y in products) + f" = {sum(x * y for x, y in products)}",
        "",
        "2. The same number is the dot product of the flattened window and the flattened filter",
        f"    window A[0:3, 0:3].ravel() = {window.tolist()}",
        f"    filter B.ravel()           = {filt.tolist()}",
        f"    window @ filter            = {int(window @ filt)}",
        "",
        "3. Sliding the window over every position (valid, stride 1) gives the whole output",
        *side_by_side(
            [("C = correlate(A, B)", grid(ex.c)), ("im2col: windows (9×9) @ B.ravel()", grid(_im2col(a, b)))]
        ),
        "    the element-wise sum and the matrix-product view agree element for element.",
        "",
        "4. Convolution versus correlation",
        "    B is symmetric (flip(B) == B), so convolving and correlating with it agree here.",
        "    With the asymmetric filter B2 they differ:",
        *side_by_side(
            [
                ("B2", grid(ex.b2)),
                ("correlate(A, B2): no flip", grid(ex.corr2)),
                ("convolve(A, B2): B2 flipped", grid(ex.conv2)),
            ]
        ),
        "    Every deep-learning framework computes the correlation; scipy.signal.convolve2d and",
        "    numpy.convolve compute the convolution (they flip the kernel).",
        *_scipy_lines(ex),
        "",
        *_depth_lines(),
        "",
        *_one_by_one_lines(),
    ]
    return lines


def _im2col(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    kh, kw = b.shape
    oh, ow = a.shape[0] - kh + 1, a.shape[1] - kw + 1
    rows = np.array([a[m : m + kh, n : n + kw].ravel() for m in range(oh) for n in range(ow)])
    return np.asarray(rows @ b.ravel()).reshape(oh, ow)


def _scipy_lines(ex: SeedExample) -> list[str]:
    try:
        from scipy import signal
    except ImportError:
        return ["    (SciPy is not installed: the live SciPy check is skipped.)"]
    corr = signal.correlate2d(ex.a, ex.b2, mode="valid")
    conv = signal.convolve2d(ex.a, ex.b2, mode="valid")
    ok = np.array_equal(corr, ex.corr2) and np.array_equal(conv, ex.conv2)
    return [
        f"    Live: scipy.signal.correlate2d(A, B2, 'valid') = {corr.tolist()}",
        f"          scipy.signal.convolve2d(A, B2, 'valid')  = {conv.tolist()}   "
        + ("(as above)" if ok else "(DIFFERS from the hand computation above!)"),
    ]


def depth_output() -> tuple[list[np.ndarray], np.ndarray]:
    parts = [correlate_valid(DEPTH_X[c], DEPTH_W[c]) for c in range(DEPTH_X.shape[0])]
    return parts, np.sum(parts, axis=0)


def _depth_lines() -> list[str]:
    parts, total = depth_output()
    k = DEPTH_W.size
    return [
        "5. The sum also runs over the input depth (channels)",
        "    C[m,n] = Σ_c Σ_u Σ_v X[c, m+u, n+v] · W[c, u, v]   (one dot product of length",
        f"    C_in·3·3 = {k}: the flattened 3×3×3 window with the flattened 3×3×3 filter)",
        "    With X = (A, Aᵀ, A upside down) and W = (B, B2, B2ᵀ):",
        *side_by_side(
            [(f"channel {c}", grid(p)) for c, p in enumerate(parts)] + [("sum over depth = C", grid(total))], gap=4
        ),
    ]


def one_by_one_output() -> tuple[np.ndarray, np.ndarray]:
    """The 1×1 convolution by the definition, and the same as a matrix product over channels."""
    c_in, h, w = DEPTH_X.shape
    conv = np.stack([sum(MIX_W[o, c] * DEPTH_X[c] for c in range(c_in)) for o in range(MIX_W.shape[0])])
    matmul = (MIX_W @ DEPTH_X.reshape(c_in, h * w)).reshape(-1, h, w)
    return conv, matmul


def _one_by_one_lines() -> list[str]:
    conv, matmul = one_by_one_output()
    return [
        "6. A 1×1 convolution is a matrix product over channels",
        f"    W (2 outputs × 3 channels) = {MIX_W.tolist()}; X reshaped to 3 × 25 (one column per pixel)",
        "    Y = W @ X: each output pixel is the dot product of W's row with that pixel's channel vector.",
        *side_by_side([("1×1 conv, output 0", grid(conv[0])), ("(W @ X)[0] reshaped", grid(matmul[0]))]),
        f"    equal on all {conv.size} elements: {bool(np.array_equal(conv, matmul))}",
    ]


@dataclass
class LiveCheck:
    """Step 7: one backend on the example's problems."""

    backend: str
    dtype: str = ""
    seed: str = ""  # ok | differs | error text
    computes: str = ""  # cross-correlation | convolution | neither
    depth: str = ""
    one_by_one: str = ""
    skipped: str | None = None

    @property
    def agrees(self) -> bool:
        return self.skipped is not None or (
            self.seed == "ok"
            and self.computes == "cross-correlation"
            and self.depth == "ok"
            and self.one_by_one == "ok"
        )


def _problems(dtype: str) -> dict[str, object]:
    from crosscheck.core.problem import ConvProblem, ConvSpec

    def make(x: np.ndarray, w: np.ndarray) -> ConvProblem:
        from crosscheck.core.dtypes import dtype_info

        dt = dtype_info(dtype).numpy
        spec = ConvSpec(1, x.shape[0], w.shape[0], x.shape[1:], w.shape[2:], dtype=dtype)
        return ConvProblem(spec, x[None].astype(dt), w.astype(dt), values="exact")

    return {
        "seed": make(SEED_A[None], SEED_B[None, None]),
        "asym": make(SEED_A[None], ASYM_B[None, None]),
        "depth": make(DEPTH_X, DEPTH_W[None]),
        "one_by_one": make(DEPTH_X, MIX_W[:, :, None, None]),
    }


def check_backend(name: str, strict: bool = False) -> LiveCheck:
    """Run the example's problems on backend `name`; a missing framework is skipped unless `strict`."""
    from dataclasses import replace

    from crosscheck.backends.base import BackendUnavailable
    from crosscheck.backends.registry import get_backend
    from crosscheck.checks.forward import compare
    from crosscheck.core.errors import CrosscheckError
    from crosscheck.core.problem import ConvProblem

    out = LiveCheck(name)
    try:
        backend = get_backend(name)
    except BackendUnavailable as exc:
        if strict:  # the user named it: a missing framework is bad usage, as in `crosscheck run`
            raise CrosscheckError(str(exc)) from None
        out.skipped = "not installed"
        return out
    caps = backend.capabilities()
    # Small integers are exact in every float dtype; prefer float64, the dtype of the seed's answer.
    dtype = next((d for d in ("float64", "float32", "float16", "bfloat16", "int64", "int32") if d in caps.dtypes), "")
    if not dtype:
        out.skipped = "supports none of the dtypes"
        return out
    out.dtype = dtype

    def run(problem: ConvProblem) -> tuple[str, object]:
        for layout in caps.layouts:
            candidate = replace(problem, spec=problem.spec.with_(layout=layout))
            if caps.refuses(candidate.spec) is None:
                break
        else:
            return f"unsupported: {caps.refuses(problem.spec)}", None
        try:
            return "ran", np.asarray(backend.run(candidate))
        except Exception as exc:  # noqa: BLE001 - a framework error is a finding, shown in the table
            return f"error: {type(exc).__name__}: {exc}".splitlines()[0], None

    def verdict(problem: ConvProblem, y: object) -> bool:
        return compare(problem, y, u_acc=caps.u_acc(dtype), bound_kind=caps.bound).passed

    probs = _problems(dtype)
    for key in ("seed", "depth", "one_by_one"):
        p = probs[key]
        assert isinstance(p, ConvProblem)
        state, y = run(p)
        setattr(out, key, state if y is None else ("ok" if verdict(p, y) else "differs"))
    asym = probs["asym"]
    assert isinstance(asym, ConvProblem)
    state, y = run(asym)
    if y is None:
        out.computes = state
    elif verdict(asym, y):
        out.computes = "cross-correlation"
    elif verdict(asym.flipped(), y):
        out.computes = "convolution"
    else:
        out.computes = "neither"
    return out


def live_lines(checks: Sequence[LiveCheck]) -> list[str]:
    lines = [
        "7. Checked live against each installed backend (same inputs; bit for bit, since small integers",
        "   make every partial sum exact; scipy.fft within its normwise bound):",
    ]
    header = ("backend", "dtype", "seed C", "asymmetric B2 gives", "depth sum", "1×1 == W @ X")
    ran = [c for c in checks if not c.skipped]
    rows = [header] + [(c.backend, c.dtype, c.seed, c.computes, c.depth, c.one_by_one) for c in ran]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["    " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"    {c.backend.ljust(widths[0])}  skipped, {c.skipped}" for c in checks if c.skipped]
    if any(c.backend == "scipy.convolve" for c in ran):
        lines.append("    (scipy.convolve is scipy.signal.convolve given flip(w): two flips make a correlation.)")
    bad = [c.backend for c in checks if not c.agrees]
    if bad:
        lines.append(f"    DISAGREE with the worked example: {', '.join(bad)}")
    else:
        lines.append(f"    All {len(ran)} backends that ran compute the cross-correlation of the worked example.")
    return lines


def explain(names: Sequence[str], strict: bool = False) -> tuple[str, bool]:
    """The explanation text and whether every backend that ran agreed with it."""
    checks = [check_backend(n, strict) for n in names]
    text = "\n".join([*_steps(), "", *live_lines(checks)])
    return text, all(c.agrees for c in checks)
