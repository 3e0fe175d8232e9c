"""Named padding modes resolved to explicit (lo, hi) pads: the one place that knows their meaning.

Every framework's `SAME` / `'same'` / `auto_pad` is checked against what this module computes.
"""

from __future__ import annotations

from collections.abc import Sequence

Pads = tuple[tuple[int, int], ...]

NAMED_MODES = ("VALID", "SAME", "SAME_LOWER")


def effective_kernel(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def resolve_padding(
    mode: str,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Pads:
    """Explicit pads for a named mode.

    SAME (TensorFlow, JAX `SAME`, ONNX `SAME_UPPER`) gives an output of ceil(in / stride) and puts
    the odd extra pad at the end; SAME_LOWER (JAX, ONNX) puts it at the start; VALID pads nothing.
    """
    if mode == "VALID":
        return tuple((0, 0) for _ in in_sizes)
    if mode not in ("SAME", "SAME_LOWER"):
        raise ValueError(f"padding: unknown mode {mode!r}; expected one of {', '.join(NAMED_MODES)}")
    pads = []
    for n, k, s, d in zip(in_sizes, kernel, stride, dilation, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + effective_kernel(k, d) - n, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if mode == "SAME" else (large, small))
    return tuple(pads)
