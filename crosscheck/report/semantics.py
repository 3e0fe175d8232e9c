"""The report's semantics section: the seed's example and the frameworks' padding conventions.

The conventions table is documentation (docs/semantics.md, measured here); the per-backend verdicts next
to it come from the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crosscheck.core.padding import resolve_padding


@dataclass(frozen=True)
class Convention:
    framework: str
    how: str
    same: str  # where SAME puts the odd extra pad
    same_lower: str
    stride: str
    note: str


CONVENTIONS = (
    Convention(
        "TensorFlow",
        "tf.nn.convolution(padding='SAME' | 'VALID' | explicit pairs)",
        "at the end (bottom/right)",
        "—",
        "yes; output ceil(n / stride)",
        "CPU Conv2D runs NHWC only; stride > 1 with dilation > 1 is refused",
    ),
    Convention(
        "PyTorch",
        "F.conv2d(padding='same' | 'valid' | int or tuple)",
        "at the end, as TensorFlow",
        "—",
        "'same' raises for stride > 1",
        "integer padding is symmetric; asymmetric pads need F.pad first",
    ),
    Convention(
        "JAX",
        "lax.conv_general_dilated(padding='SAME' | 'SAME_LOWER' | 'VALID' | [(lo, hi), …])",
        "at the end",
        "at the start",
        "yes",
        "float64 only with jax_enable_x64",
    ),
    Convention(
        "ONNX Conv",
        "auto_pad = SAME_UPPER | SAME_LOWER | VALID, or NOTSET with pads",
        "at the end (SAME_UPPER)",
        "at the start",
        "yes",
        "onnxruntime 1.32 refuses SAME_UPPER/SAME_LOWER with dilation > 1",
    ),
    Convention(
        "SciPy signal",
        "correlate / convolve(mode='valid' | 'same' | 'full')",
        "'same' is something else: the centre of the full output, sized like the input",
        "—",
        "no stride",
        "convolve flips the kernel; correlate conjugates complex input",
    ),
    Convention(
        "NumPy",
        "np.correlate / np.convolve(mode='valid' | 'same' | 'full'), 1-D only",
        "'same' as SciPy's, not TensorFlow's",
        "—",
        "no stride",
        "np.convolve flips the kernel",
    ),
)


@dataclass(frozen=True)
class PadExample:
    n: int
    kernel: int
    stride: int
    same: tuple[int, int]
    same_lower: tuple[int, int]

    @property
    def out(self) -> int:
        return -(-self.n // self.stride)


def pad_examples() -> list[PadExample]:
    """Two cases where the total padding is odd, so SAME and SAME_LOWER differ."""
    out = []
    for n, k, s in ((5, 4, 1), (6, 3, 2)):
        (same,) = resolve_padding("SAME", [n], [k], [s], [1])
        (lower,) = resolve_padding("SAME_LOWER", [n], [k], [s], [1])
        out.append(PadExample(n, k, s, same, lower))
    return out


def backend_padding(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per backend that ran: the named modes it accepts and the verdict of `named_padding`."""
    verdicts = {r["backend"]: r for r in record["results"] if r["property"] == "named_padding"}
    rows = []
    for b in record["backends"]:
        if not b["available"]:
            continue
        modes = [m for m in (b.get("capabilities") or {}).get("padding", []) if m != "explicit"]
        r = verdicts.get(b["name"])
        rows.append(
            {
                "backend": b["name"],
                "explicit": "explicit" in (b.get("capabilities") or {}).get("padding", []),
                "modes": modes,
                "status": r["status"] if r else "not run",
                "reason": (r or {}).get("reason"),
                "examples": r["examples"] if r else 0,
            }
        )
    return rows
