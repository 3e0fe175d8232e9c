"""PyTorch: `torch.nn.functional.conv1d` / `conv2d` / `conv3d`, on the CPU or a CUDA device.

Named padding goes to torch as its own `padding='valid'` / `'same'`. Explicit pads go through
conv's `padding=` where they are symmetric; torch takes one int per dimension there, so only the
asymmetric excess is added with `F.pad` first (F.pad returns a contiguous copy, so with asymmetric
pads a strided problem hands torch only its weight non-contiguous).

Layouts are built in torch, on the device: channels_last is the `channels_last` /
`channels_last_3d` memory format, and for 1-D (torch has no 3-D memory format) an NWC buffer viewed
as (N, C, W), which torch runs as a channels-last 2-D convolution; strided is a sliced,
axis-reversed view like `crosscheck.layouts.strided_view`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.dtypes import FLOAT_DTYPES, INT_DTYPES, dtype_info
from crosscheck.problem import ConvProblem, ConvSpec
from crosscheck.reproducer import problem_code

if TYPE_CHECKING:
    import torch

_NAMED = {"VALID": "valid", "SAME": "same"}

# Measured with torch 2.13.0; tests/test_torch_backend.py checks that torch still says so.
SAME_LOWER_REASON = (
    "torch's padding= takes only ints, 'valid' and 'same' (which pads like SAME): "
    "F.conv1d(x, w, padding='same_lower') raises RuntimeError: Invalid padding string: 'same_lower'"
)
CUDA_INT_REASON = (
    "not measured (no GPU where this adapter was written): torch's CUDA convolutions have no "
    "integer kernels, so int32/int64 are left out on cuda until a GPU run shows otherwise"
)


# Combinations torch refuses: name -> (the feature as the record shows it, does a spec use it?).
COMBINATIONS: dict[str, tuple[str, Callable[[ConvSpec], bool]]] = {
    "same_stride": ("padding SAME with stride > 1", lambda s: s.padding == "SAME" and max(s.stride) > 1),
    "int32_dilation": ("dtype int32 with dilation > 1", lambda s: s.dtype == "int32" and max(s.dilation) > 1),
}


@functools.cache
def refusal(case: str) -> str | None:
    """What torch raises for one of COMBINATIONS on a tiny input, or None once torch accepts it."""
    import torch

    dtype = torch.int32 if case == "int32_dilation" else torch.float32
    x, w = torch.zeros(1, 1, 4, dtype=dtype), torch.zeros(1, 1, 1, dtype=dtype)
    try:
        if case == "same_stride":
            torch.nn.functional.conv1d(x, w, stride=2, padding="same")
        else:
            torch.nn.functional.conv1d(x, w, dilation=2)
    except RuntimeError as exc:  # NotImplementedError is a RuntimeError
        return f"torch raises {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def _refused_combinations(spec: ConvSpec) -> str | None:
    for case, (feature, uses) in COMBINATIONS.items():
        if uses(spec) and (why := refusal(case)):
            return f"{feature}: {why}"
    return None


@functools.cache
def _pin_precision() -> None:
    """Turn off every reduced-precision float32 path once per process (TF32 on cuDNN/cuBLAS, and
    oneDNN's bf16/tf32 downconversion of float32 convolutions on the CPU)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    conv = getattr(torch.backends.mkldnn, "conv", None)  # the fp32_precision API is torch >= 2.9
    if conv is not None:
        conv.fp32_precision = "ieee"


def to_torch(a: np.ndarray, device: str) -> torch.Tensor:
    """A contiguous tensor on `device` with `a`'s values (bfloat16 travels as its 16 bits)."""
    import torch

    a = np.array(a, order="C")  # a private, writable copy: torch must not alias the problem's arrays
    if a.dtype == dtype_info("bfloat16").numpy:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(a).to(device)


def to_numpy(t: torch.Tensor, dtype: str) -> np.ndarray:
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(dtype_info(dtype).numpy)
    return t.numpy()


def strided(t: torch.Tensor) -> torch.Tensor:
    """Torch's twin of `crosscheck.layouts.strided_view`: every other element of a larger buffer,
    axes stored in reverse order, so that the tensor is not contiguous in any memory format."""
    shape = tuple(t.shape)
    big = t.new_zeros((*shape[::-1][:-1], 2 * shape[0]))
    view = big[..., ::2].permute(*range(t.dim() - 1, -1, -1))
    view.copy_(t)
    return view


def with_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    import torch

    if layout == "strided":
        return strided(t)
    if layout != "channels_last":
        return t
    if t.dim() == 3:
        return t.transpose(1, 2).contiguous().transpose(1, 2)  # NWC storage: no memory_format for 3-D
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.contiguous(memory_format=fmt)


def split_pads(spec: ConvSpec) -> tuple[tuple[int, ...], list[int]]:
    """(conv's symmetric padding= per dim, F.pad's list for the asymmetric rest, last dim first)."""
    common = tuple(min(lo, hi) for lo, hi in spec.pads)
    extra: list[int] = []
    for (lo, hi), c in zip(reversed(spec.pads), reversed(common)):
        extra += [lo - c, hi - c]
    return common, extra


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    module = "torch"
    description = "torch.nn.functional.conv1d/conv2d/conv3d"
    devices = ("cpu", "cuda")

    def check_available(self) -> None:
        super().check_available()
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: torch {torch.__version__} sees no CUDA device")
        _pin_precision()

    def capabilities(self) -> Capabilities:
        dtypes = FLOAT_DTYPES + (INT_DTYPES if self.device == "cpu" else ())
        unsupported = [("padding SAME_LOWER", SAME_LOWER_REASON)]
        if self.device == "cuda":
            unsupported.append(("dtype int32/int64 on cuda", CUDA_INT_REASON))
        for case, (feature, _) in COMBINATIONS.items():
            why = refusal(case)
            if why and (case != "int32_dilation" or "int32" in dtypes):
                unsupported.append((feature, why))
        return Capabilities(
            dtypes=dtypes,
            padding=("explicit", *_NAMED),
            layouts=("channels_first", "channels_last", "strided"),
            unsupported=tuple(unsupported),
            constraints=(_refused_combinations,),
        )

    def precision_flags(self) -> dict[str, Any]:
        import torch

        _pin_precision()
        conv = getattr(torch.backends.mkldnn, "conv", None)
        flags: dict[str, Any] = {
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
            "torch.backends.mkldnn.conv.fp32_precision": conv.fp32_precision if conv is not None else None,
            "torch.backends.mkldnn.is_available()": torch.backends.mkldnn.is_available(),  # type: ignore[no-untyped-call]
            "torch.backends.mkldnn.enabled": torch.backends.mkldnn.enabled,
            "torch.get_num_threads()": torch.get_num_threads(),
        }
        if self.device == "cuda":
            flags["torch.backends.cudnn.version()"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
            flags["torch.backends.cudnn.benchmark"] = torch.backends.cudnn.benchmark
            flags["torch.cuda.get_device_name()"] = torch.cuda.get_device_name()
        return flags

    def run(self, problem: ConvProblem) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _pin_precision()
        spec = problem.spec
        x = with_layout(to_torch(problem.x, self.device), spec.layout)
        w = with_layout(to_torch(problem.w, self.device), spec.layout)
        padding: str | tuple[int, ...]
        if isinstance(spec.padding, str):
            padding = _NAMED[spec.padding]  # KeyError for SAME_LOWER, which capabilities() leaves out
        else:
            padding, extra = split_pads(spec)
            if any(extra):
                x = F.pad(x, extra)
        conv = getattr(F, f"conv{spec.rank}d")
        with torch.no_grad(), warnings.catch_warnings():
            # A performance note (torch pads a copy of the input for 'same' with an even kernel),
            # printed once per process into the middle of the CLI's live display.
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
            y = conv(x, w, None, spec.stride, padding, spec.dilation, spec.groups)
        if self.device == "cuda":
            torch.cuda.synchronize()  # surface asynchronous kernel errors here, not in a later call
        return to_numpy(y, spec.dtype)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        spec = problem.spec
        lines = [
            problem_code(problem),
            "import numpy as np",
            "import torch",
            "import torch.nn.functional as F",
            "torch.backends.cudnn.allow_tf32 = False",
            "torch.backends.cuda.matmul.allow_tf32 = False",
            'torch.set_float32_matmul_precision("highest")',
            'torch.backends.mkldnn.conv.fp32_precision = "ieee"  # torch >= 2.9: no bf16/tf32 inside oneDNN',
        ]
        if spec.dtype == "bfloat16":
            lines.append(
                "x, w = (torch.from_numpy(np.array(a).view(np.int16)).view(torch.bfloat16)"
                " for a in (problem.x, problem.w))"
            )
        else:
            lines.append("x, w = torch.from_numpy(np.array(problem.x)), torch.from_numpy(np.array(problem.w))")
        lines.append(f'x, w = x.to("{self.device}"), w.to("{self.device}")')
        if spec.layout == "channels_last":
            if spec.rank == 1:
                lines.append("x, w = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (x, w))  # NWC storage")
            else:
                fmt = "channels_last" if spec.rank == 2 else "channels_last_3d"
                lines.append(f"x, w = x.contiguous(memory_format=torch.{fmt}), w.contiguous(memory_format=torch.{fmt})")
        elif spec.layout == "strided":
            lines.append("from crosscheck.backends.torch_backend import strided")
            lines.append("x, w = strided(x), strided(w)  # non-contiguous views")
        if isinstance(spec.padding, str):
            padding: str = repr(_NAMED.get(spec.padding, spec.padding.lower()))
        else:
            common, extra = split_pads(spec)
            if any(extra):
                lines.append(f"x = F.pad(x, {extra})  # the asymmetric part of the pads {spec.padding}")
            padding = repr(common)
        lines += [
            f"y = F.conv{spec.rank}d(x, w, None, stride={spec.stride}, padding={padding},"
            f" dilation={spec.dilation}, groups={spec.groups})",
            "print(y)",
        ]
        return "\n".join(lines)
