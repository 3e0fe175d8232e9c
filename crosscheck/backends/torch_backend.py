"""PyTorch: `torch.nn.functional.conv1d` / `conv2d` / `conv3d`, on the CPU or a CUDA device.

Named padding goes to torch as its own `padding='valid'` / `'same'`. Explicit pads go through
conv's `padding=` where they are symmetric; torch takes one int per dimension there, so only the
asymmetric excess is added with `F.pad` first (F.pad returns a contiguous copy, so with asymmetric
pads a strided problem hands torch only its weight non-contiguous).

Layouts are built in torch, on the device: channels_last is the `channels_last` /
`channels_last_3d` memory format, and for 1-D (torch has no 3-D memory format) an NWC buffer viewed
as (N, C, W), which torch runs as a channels-last 2-D convolution; strided is a sliced,
axis-reversed view like `crosscheck.core.layouts.strided_view`.

The backward pass: `vjp` is autograd (`torch.autograd.grad`) through the same call as `run`;
`conv_transpose` is `F.conv_transpose1d/2d/3d` with the weight as it is (torch's transposed layout
(in_channels, out_channels/groups, *kernel) is the forward weight's). Its `padding=` is one int per
dimension, so asymmetric pads pass their common part and the output is cropped (`transposed_args`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities, PrecisionMode
from crosscheck.core.dtypes import (
    BF16_UNIT_ROUNDOFF,
    COMPLEX_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    TF32_UNIT_ROUNDOFF,
    dtype_info,
)
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import standalone_problem_code

if TYPE_CHECKING:
    import torch

_NAMED = {"VALID": "valid", "SAME": "same"}

# Measured with torch 2.13.0; tests/frameworks/test_torch_backend.py checks that torch still says so.
SAME_LOWER_REASON = (
    "torch's padding= takes only ints, 'valid' and 'same' (which pads like SAME): "
    "F.conv1d(x, w, padding='same_lower') raises RuntimeError: Invalid padding string: 'same_lower'"
)
CUDA_INT_REASON = (
    "not measured (no GPU where this adapter was written): torch's CUDA convolutions have no "
    "integer kernels, so int32/int64 are left out on cuda until a GPU run shows otherwise"
)
BACKWARD_COMPLEX_REASON = "crosscheck's gradient and transposed-convolution references are real-valued"
CUDA_COMPLEX_REASON = (
    "not measured on a GPU: on the CPU torch computes complex convolutions by the 3M (Gauss) method "
    "from three real ones (measured bit for bit); complex64/complex128 are left out on cuda until a GPU run"
)

# Reduced-precision modes (property `precision_modes`); measured with torch 2.13.0 on the CPU.
AUTOCAST_MODES = {"autocast-bfloat16": "bfloat16", "autocast-float16": "float16"}
MKLDNN_MODES = {"mkldnn-fp32-bf16": ("bf16", BF16_UNIT_ROUNDOFF), "mkldnn-fp32-tf32": ("tf32", TF32_UNIT_ROUNDOFF)}
CUDNN_TF32_MODE = "cudnn-allow_tf32"


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


AMX_BF16_TRANSPOSE3D_CRASH = (
    "finding torch-amx-bfloat16-grouped-dilated-conv-transpose3d-segfault: on AMX kernels (oneDNN "
    "AVX512_CORE_AMX and above) torch's bfloat16 F.conv_transpose3d with groups > 1 and dilation > 1 killed the "
    "process (SIGSEGV); a crash ends an in-process run, so where torch dispatches to AMX the adapter leaves "
    "those problems out, and the minimal example is replayed in a worker process"
)


def _amx_bf16_grouped_dilated_transpose3d(spec: ConvSpec) -> str | None:
    """The crash finding's exclusion, where torch dispatches to AMX (module level: constraints must pickle)."""
    from crosscheck.core.hardware import isa_rank, torch_dispatch

    risky = spec.dtype == "bfloat16" and spec.rank == 3 and spec.groups > 1 and max(spec.dilation) > 1
    if risky and isa_rank(torch_dispatch()["isa_class"]) >= isa_rank("amx"):
        return AMX_BF16_TRANSPOSE3D_CRASH
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
        # The tensor's own dtype decides: under autocast a float32 problem comes back in bfloat16.
        return t.view(torch.int16).numpy().view(dtype_info("bfloat16").numpy)
    return t.numpy()


def strided(t: torch.Tensor) -> torch.Tensor:
    """Torch's twin of `crosscheck.core.layouts.strided_view`: every other element of a larger buffer,
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


def padded(spec: ConvSpec, x: torch.Tensor) -> tuple[torch.Tensor, str | tuple[int, ...]]:
    """x with the asymmetric excess of explicit pads added (F.pad), and conv's own `padding=` argument."""
    import torch.nn.functional as F

    if isinstance(spec.padding, str):
        return x, _NAMED[spec.padding]  # KeyError for SAME_LOWER, which capabilities() leaves out
    padding, extra = split_pads(spec)
    return (F.pad(x, extra) if any(extra) else x), padding


# Measured with torch 2.13 on the CPU.
FUSED_DTYPES = (
    "the fused property composes real floating-point activations: F.leaky_relu raises NotImplementedError "
    "\"leaky_relu_cpu\" not implemented for 'Int'/'Long', and F.relu raises \"clamp is not supported for complex "
    'types"'
)
# The activations of the fused call (property fused_bias_activation; crosscheck.core.bounds.ACTIVATIONS).
FUSED_ACTIVATIONS = ("identity", "relu", "leaky_relu")


def convolve(spec: ConvSpec, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, activation: str) -> torch.Tensor:
    """activation(F.conv*d(x, w, b)) for `spec`, written as a model's forward writes it: the fused call, and what
    torch.compile compiles (crosscheck.backends.compiled_backends)."""
    import torch.nn.functional as F

    from crosscheck.core.bounds import LEAKY_SLOPE

    x, padding = padded(spec, x)
    y: torch.Tensor = getattr(F, f"conv{spec.rank}d")(x, w, b, spec.stride, padding, spec.dilation, spec.groups)
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, LEAKY_SLOPE)
    return y


@functools.cache
def backward_refusal(kind: str, dtype: str) -> str | None:
    """What torch raises for a tiny `kind` ("gradients" or "transposed") call in `dtype`, or None."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 1, 4, dtype=getattr(torch, dtype))
    try:
        if kind == "gradients":
            x.requires_grad_()
            torch.autograd.grad(F.conv1d(x, x.detach()[..., :2]).sum(), x)
        else:
            F.conv_transpose1d(x, x[..., :2], stride=2)
    except RuntimeError as exc:
        return f"torch raises {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@functools.cache
def backward_sums(kind: str, dtype: str, device: str = "cpu") -> str | None:
    """The reason naming the known findings if torch keeps `kind`'s float16/bfloat16 sums in that type
    (see crosscheck.core.adjoint.narrow_sum_errors), else None."""
    import torch

    from crosscheck.backends.accumulation import narrow_sum_errors, narrow_sum_finding

    if device == "cuda" and not torch.cuda.is_available():
        return None  # nothing to measure: such a backend is unavailable (check_available says why)
    b = TorchBackend(device)
    if kind == "gradients":
        wrong = narrow_sum_errors(dtype, "channels_first", vjp=b.vjp)
    else:
        wrong = narrow_sum_errors(dtype, "channels_first", conv_transpose=b.conv_transpose)
    return narrow_sum_finding("torch", "torch", dtype, wrong)


def transposed_args(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]:
    """(padding, output_padding, crop) for F.conv_transpose*d to give `spec`'s transposed convolution.

    torch's output is the full transposed convolution from position p on, output_padding positions
    longer at the end: with p = min(lo, hi), the crop starts at lo − p. Symmetric pads need no crop and
    pass crosscheck's output_padding (every value in [0, stride)) unchanged.
    """
    from crosscheck.core.adjoint import output_padding

    padding, extra, crop = [], [], []
    for n, (lo, hi), op in zip(spec.in_size, spec.pads, output_padding(spec)):
        p = min(lo, hi)
        padding.append(p)
        extra.append(op if lo >= hi else max(0, op - (hi - lo)))
        crop.append(slice(lo - p, lo - p + n))
    return tuple(padding), tuple(extra), tuple(crop)


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    module = "torch"
    description = "torch.nn.functional.conv1d/conv2d/conv3d"
    devices = ("cpu", "cuda")
    isa_switches = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")

    def check_available(self) -> None:
        super().check_available()
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: torch {torch.__version__} sees no CUDA device")
        _pin_precision()

    def capabilities(self) -> Capabilities:
        dtypes = FLOAT_DTYPES + (INT_DTYPES + COMPLEX_DTYPES if self.device == "cpu" else ())
        unsupported = [("padding SAME_LOWER", SAME_LOWER_REASON)]
        if self.device == "cuda":
            unsupported.append(("dtype int32/int64 on cuda", CUDA_INT_REASON))
            unsupported.append(("dtype complex64/complex128 on cuda", CUDA_COMPLEX_REASON))
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
            gradients=self._backward_space("gradients", dtypes),
            transposed=self._backward_space("transposed", dtypes),
            fused=Capabilities(
                dtypes=FLOAT_DTYPES,
                padding=("explicit", *_NAMED),
                layouts=("channels_first", "channels_last", "strided"),
                unsupported=(("padding SAME_LOWER", SAME_LOWER_REASON), ("dtype int32/int64/complex", FUSED_DTYPES)),
                constraints=(_refused_combinations,),
                activations=FUSED_ACTIVATIONS,
            ),
            complex_method="3m",  # ATen's complex convolution: three real ones (Gauss), measured bit for bit
        )

    def _backward_space(self, kind: str, dtypes: tuple[str, ...]) -> Capabilities:
        """The forward problems whose gradients / transposed convolution torch computes here."""
        real = [d for d in dtypes if d in FLOAT_DTYPES + INT_DTYPES]
        # float16 sums kept in float16 (backward_sums) are a known finding judged by its weaker contract
        # inside its region (crosscheck.core.finding_regions), not a refusal: only what torch raises is left out.
        refused = {d: why for d in real if (why := backward_refusal(kind, d))}
        unsupported = [(f"dtype {d}", why) for d, why in refused.items()]
        unsupported += [(f"dtype {d}", BACKWARD_COMPLEX_REASON) for d in dtypes if d not in real]
        if kind == "gradients":
            return Capabilities(
                dtypes=tuple(d for d in real if d not in refused),
                padding=("explicit", *_NAMED),
                layouts=("channels_first", "channels_last", "strided"),
                unsupported=(("padding SAME_LOWER", SAME_LOWER_REASON), *unsupported),
                constraints=(_refused_combinations,),
            )
        # conv_transpose takes only int pads, so every mode goes in as the pads crosscheck resolves.
        return Capabilities(
            dtypes=tuple(d for d in real if d not in refused),
            layouts=("channels_first", "channels_last", "strided"),
            unsupported=tuple(unsupported),
            constraints=(_amx_bf16_grouped_dilated_transpose3d,),
        )

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch, torch_dispatch

        if self.device == "cuda":
            return native_dispatch("a CUDA device: the CPU's ISA does not choose its kernels")
        # Which precision the float16 backward kernels chosen here sum in (findings torch-float16-*-sums-in-float16).
        sums = {k: "float16" if backward_sums(k, "float16") else "float32" for k in ("gradients", "transposed")}
        return {**torch_dispatch(), "float16 backward sums in": sums}

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
        x, padding = padded(spec, x)
        conv = getattr(F, f"conv{spec.rank}d")
        # Which implementation ran is asked for only under the coverage guide: otherwise nothing is spent on it.
        chosen = self._selected(x, w, spec, padding) if self.__dict__.get("_recording") else None
        with torch.no_grad(), warnings.catch_warnings(), self._watching(chosen):
            # A performance note (torch pads a copy of the input for 'same' with an even kernel),
            # printed once per process into the middle of the CLI's live display.
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
            y = conv(x, w, None, spec.stride, padding, spec.dilation, spec.groups)
        if self.device == "cuda":
            torch.cuda.synchronize()  # surface asynchronous kernel errors here, not in a later call
        return to_numpy(y, spec.dtype)

    # ---- which implementation ran (crosscheck.strategies.coverage) ------------------------------------------

    implementation_source = (
        "torch._C._select_conv_backend (torch's own choice: Slow2d, SlowDilated3d, Mkldnn, ...) and, for Mkldnn, "
        "oneDNN's verbose implementation names, read in-process around the call"
    )

    def implementations(self) -> list[str]:
        self._recording = True  # the first question switches the recording on: until then no call pays for it
        seen: list[str] = self.__dict__.pop("_seen", [])
        return seen

    def _selected(self, x: torch.Tensor, w: torch.Tensor, spec: ConvSpec, padding: str | tuple[int, ...]) -> str:
        """torch's backend choice for this call. For 'same', torch pads the input by the odd extra pad first and then
        convolves with the smaller pad on both sides: asking with the larger one on both sides sees that same size."""
        import torch

        pads = list(padding) if not isinstance(padding, str) else [max(p) for p in spec.pads]
        try:
            chosen = torch._C._select_conv_backend(
                x, w, None, list(spec.stride), pads, list(spec.dilation), False, [0] * spec.rank, spec.groups
            )
        except (AttributeError, RuntimeError, TypeError):  # a torch without it, or a call it refuses
            return "unknown"
        return str(chosen).rsplit(".", 1)[-1]

    @contextlib.contextmanager
    def _watching(self, chosen: str | None) -> Iterator[None]:
        """Note torch's choice and, when it is oneDNN, the implementation oneDNN's verbose mode names (None: not
        recording)."""
        import torch

        if chosen is None:
            yield
            return
        seen: list[str] = self.__dict__.setdefault("_seen", [])
        seen.append(f"torch:{chosen}")
        if not chosen.startswith("Mkldnn") or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
            yield
            return
        from crosscheck.core.hardware import held_output, parse_onednn_verbose, torch_dispatch

        torch_dispatch()  # oneDNN prints its ISA line once a process, to the first verbose call: keep it the probe
        with held_output(1) as verbose, torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):  # type: ignore[no-untyped-call]
            yield
        seen += [f"onednn:{name}" for name in parse_onednn_verbose(verbose[0])["onednn_implementations"]]

    # ---- reduced-precision modes (property `precision_modes`) ----------------------------------

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        modes = [
            PrecisionMode(
                name,
                f"torch.autocast({self.device!r}, dtype=torch.{dt}): float32 convolutions run in {dt}, "
                f"the result comes back in {dt}",
                ("float32",),
                u_in=dtype_info(dt).unit_roundoff,
                accumulator="float32",
                output_dtype=dt,
            )
            for name, dt in AUTOCAST_MODES.items()
        ]
        modes += [
            PrecisionMode(
                name,
                f'torch.backends.mkldnn.conv.fp32_precision = "{flag}": oneDNN may round float32 inputs to '
                f"{flag} (on CPUs with the instructions for it)",
                ("float32",),
                u_in=u_in,
                accumulator="float32",
                unsupported=None if self.device == "cpu" else "a oneDNN (CPU) setting",
            )
            for name, (flag, u_in) in MKLDNN_MODES.items()
        ]
        modes.append(
            PrecisionMode(
                CUDNN_TF32_MODE,
                "torch.backends.cudnn.allow_tf32 = True (PyTorch's default on CUDA): cuDNN may round float32 "
                "inputs to TF32",
                ("float32",),
                u_in=TF32_UNIT_ROUNDOFF,
                accumulator="float32",
                unsupported=None if self.device == "cuda" else "cuDNN runs on CUDA devices only",
            )
        )
        return tuple(modes)

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        import torch

        _pin_precision()
        if mode in AUTOCAST_MODES:
            with torch.autocast(self.device, dtype=getattr(torch, AUTOCAST_MODES[mode])):
                return self.run(problem)
        conv = getattr(torch.backends.mkldnn, "conv", None)  # the fp32_precision API is torch >= 2.9
        if mode in MKLDNN_MODES and self.device == "cpu" and conv is not None:
            conv.fp32_precision = MKLDNN_MODES[mode][0]
            try:
                return self.run(problem)
            finally:
                conv.fp32_precision = "ieee"
        if mode == CUDNN_TF32_MODE and self.device == "cuda":
            torch.backends.cudnn.allow_tf32 = True
            try:
                return self.run(problem)
            finally:
                torch.backends.cudnn.allow_tf32 = False
        return super().run_mode(problem, mode)

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        import torch.nn.functional as F

        _pin_precision()
        spec = problem.spec
        x0 = with_layout(to_torch(problem.x, self.device), spec.layout).requires_grad_()
        w = with_layout(to_torch(problem.w, self.device), spec.layout).requires_grad_()
        x, padding = padded(spec, x0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
            y = getattr(F, f"conv{spec.rank}d")(x, w, None, spec.stride, padding, spec.dilation, spec.groups)
            gx, gw = torch.autograd.grad(y, (x0, w), to_torch(cotangent, self.device))
        if self.device == "cuda":
            torch.cuda.synchronize()
        return to_numpy(gx, spec.dtype), to_numpy(gw, spec.dtype)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _pin_precision()
        spec = problem.spec
        gt = with_layout(to_torch(g, self.device), spec.layout)
        w = with_layout(to_torch(problem.w, self.device), spec.layout)
        padding, extra, crop = transposed_args(spec)
        transposed = getattr(F, f"conv_transpose{spec.rank}d")
        with torch.no_grad():
            # Argument order: (input, weight, bias, stride, padding, output_padding, groups, dilation).
            y = transposed(gt, w, None, spec.stride, padding, extra, spec.groups, spec.dilation)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return np.ascontiguousarray(to_numpy(y, spec.dtype)[(slice(None), slice(None), *crop)])

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return self._fused(problem, bias, activation, convolve)

    def _fused(
        self,
        problem: ConvProblem,
        bias: np.ndarray | None,
        activation: str,
        fn: Callable[[ConvSpec, torch.Tensor, torch.Tensor, torch.Tensor | None, str], torch.Tensor],
    ) -> np.ndarray:
        import torch

        _pin_precision()
        spec = problem.spec
        x = with_layout(to_torch(problem.x, self.device), spec.layout)
        w = with_layout(to_torch(problem.w, self.device), spec.layout)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
            y = fn(spec, x, w, None if bias is None else to_torch(bias, self.device), activation)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return to_numpy(y, spec.dtype)

    def native_snippet(self, problem: ConvProblem) -> str | None:
        spec = problem.spec
        lines = [
            standalone_problem_code(problem),
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
