"""Keras 3 layers on each Keras backend: `keras.tensorflow`, `keras.jax`, `keras.torch`.

What a user porting a model runs is the layer, not the op: `Conv1D/2D/3D` (with `groups`), `DepthwiseConv1D/2D`,
`Conv1D/2D/3DTranspose`, and `ZeroPadding1D/2D/3D` in front of a 'valid' convolution for explicit pads. Keras
translates each layer into its backend's call itself (its own pad arithmetic for torch, XLA for TensorFlow's
grouped and 3-D channels_first convolutions, a strided decomposition for depthwise stride with dilation), so each
Keras backend is another implementation of the same cross-correlation.

Keras picks its backend from KERAS_BACKEND when it is first imported, once per process: each of these backends
sets it before that import, which works in the worker process a run gives every backend. In one process
(`--no-isolation`) a second Keras backend cannot load: `load_keras` says so (BackendUnavailable), never running
the layers on the backend Keras already has.

The problem's values go in unchanged: the weight (C_out, C_in/groups, *k) becomes Keras's kernel
(*k, C_in/groups, C_out), a depthwise one (*k, C_in, multiplier), by transposes and reshapes only; bias is off.
Layouts: crosscheck's channels_last / channels_first are Keras's `data_format`. Padding: VALID and SAME are
Keras's 'valid' and 'same' (on every Keras backend 'same' puts the odd pad at the end, like TensorFlow: crosscheck's
SAME, measured bit for bit); explicit pads are a ZeroPadding layer (in the problem's dtype: a layer casts its input
to its own dtype policy) and 'valid', except that a rank-1 pad of (dilated kernel − 1, 0) is Conv1D's own
padding='causal' (DepthwiseConv1D takes no 'causal'). Keras has no SAME_LOWER. The transposed convolution is
Conv{r}DTranspose: SAME through Keras's 'same' where an output_padding gives the forward input size, the rest
'valid' and cropped (`transposed_plan`).

What each Keras backend accepts is measured, per dtype, on tiny layers (`probe_specs`, `KerasBackend.facts`), and
the capabilities quote Keras's (or its backend's) refusals.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.core.dtypes import FLOAT_DTYPES, INT_DTYPES, dtype_info
from crosscheck.core.layouts import channels_last, from_channels_last
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.reproducer import standalone_problem_code

DTYPES = FLOAT_DTYPES + INT_DTYPES
DATA_FORMAT = {"channels_last": "channels_last", "channels_first": "channels_first"}

SAME_LOWER_REASON = (
    "Keras's padding= takes 'valid', 'same' (which pads like TensorFlow's SAME: the odd pad at the end) and, "
    "for Conv1D, 'causal': it has no SAME_LOWER"
)
NOT_STRIDED = "a Keras layer takes a tensor: a strided NumPy view is copied dense before any layer sees it"
NO_TRANSPOSED_GROUPS = (
    "Keras's Conv1D/2D/3DTranspose take no groups argument (their kernel is (*k, filters, input channels))"
)
NO_GRADIENTS = (
    "not in this adapter: a Keras layer's gradients are its backend's autodiff (tf.GradientTape, torch.autograd, "
    "jax.vjp) through the same op, which the tensorflow, torch and jax adapters check"
)
BACKWARD_INT_REASON = "crosscheck's transposed-convolution reference is judged for floating dtypes here"


def is_depthwise(spec: ConvSpec) -> bool:
    """A problem Keras users write as DepthwiseConv1D/2D: one group per input channel (a multiplier of output
    channels each). Depthwise 3-D problems go to Conv3D(groups=C_in): Keras has no DepthwiseConv3D."""
    return spec.rank in (1, 2) and 1 < spec.groups == spec.in_channels


def is_causal(spec: ConvSpec) -> bool:
    """Explicit rank-1 pads that are exactly Conv1D's padding='causal': (dilated kernel − 1, 0)."""
    if spec.rank != 1 or isinstance(spec.padding, str):
        return False
    return spec.pads[0] == (effective_kernel(spec.kernel[0], spec.dilation[0]) - 1, 0) and spec.pads[0][0] > 0


# ------------------------------------------------------------------------------------------- loading Keras


def load_keras(wanted: str) -> Any:
    """Keras on its `wanted` backend. Keras reads KERAS_BACKEND once, at its first import in a process: if it is
    loaded already on another backend, this process cannot have `wanted` (BackendUnavailable says so)."""
    if "keras" in sys.modules:
        loaded = sys.modules["keras"]
        have = loaded.config.backend()
        if have != wanted:
            hint = (
                " (importing tensorflow imports Keras too)"
                if have == "tensorflow" and "tensorflow" in sys.modules
                else ""
            )
            raise BackendUnavailable(
                f"keras.{wanted}: this process already loaded Keras on its {have} backend{hint}, and Keras picks its "
                f"backend once per process (KERAS_BACKEND at its first import): keras.{wanted} needs a process of "
                "its own, which a run gives each backend unless --no-isolation is set"
            )
        return loaded
    # Set before the backend framework loads too: `import tensorflow` imports Keras (tf.keras) on whatever backend
    # KERAS_BACKEND names then. Restored afterwards: this process's environment is not Keras's to keep.
    previous = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = wanted
    try:
        _prepare(wanted)
        import keras
    except ImportError as exc:
        raise BackendUnavailable(
            f"keras.{wanted}: keras or {wanted} is not installed ({exc}); pip install keras"
        ) from exc
    finally:
        if previous is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = previous
    if keras.config.backend() != wanted:  # e.g. a Keras that ignores the variable
        raise BackendUnavailable(f"keras.{wanted}: Keras loaded its {keras.config.backend()} backend instead")
    return keras


def _prepare(wanted: str) -> None:
    """Pin the backend framework before Keras loads it: the same numerically relevant flags as its own adapter."""
    if wanted == "tensorflow":
        from crosscheck.backends.tensorflow_backend import _without_banner

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _without_banner():
            import tensorflow as tf
        tf.config.experimental.enable_tensor_float_32_execution(False)
        # Keras runs grouped (and 3-D channels_first) convolutions through a tf.function it creates on every call:
        # TensorFlow's "excessive retracing" warning on each few calls is Keras's design, not this run's.
        tf.get_logger().setLevel("ERROR")
    elif wanted == "jax":
        import jax

        config: Any = jax.config
        config.update("jax_enable_x64", True)  # without it Keras's float64 layers silently compute in float32
    elif wanted == "torch":
        from crosscheck.backends.torch_backend import _pin_precision

        _pin_precision()


# ------------------------------------------------------------------------------------------- the layers


@dataclass(frozen=True)
class Plan:
    """The Keras layers for one problem, in Keras's own terms (what `run` builds and `native_snippet` prints)."""

    layer: str  # Conv2D, DepthwiseConv1D, Conv3DTranspose, ...
    arguments: tuple[tuple[str, Any], ...]
    zero_padding: tuple[tuple[int, int], ...] | None = None  # a ZeroPaddingND layer in front
    crop: tuple[tuple[int, int], ...] | None = None  # (start, stop) per spatial dim of a transposed output

    def kwargs(self) -> dict[str, Any]:
        return dict(self.arguments)

    def call_text(self) -> str:
        return f"keras.layers.{self.layer}({', '.join(f'{k}={v!r}' for k, v in self.arguments)})"


def forward_plan(spec: ConvSpec) -> Plan:
    data_format = DATA_FORMAT[spec.layout]
    zero_padding = None
    if spec.padding in ("VALID", "SAME"):
        padding = str(spec.padding).lower()
    elif is_causal(spec) and not is_depthwise(spec):  # DepthwiseConv1D refuses 'causal' (measured): ZeroPadding1D
        padding = "causal"
    else:  # explicit pads (SAME_LOWER is refused by the capabilities)
        padding, zero_padding = "valid", spec.pads
    common: list[tuple[str, Any]] = [
        ("kernel_size", spec.kernel),
        ("strides", spec.stride),
        ("padding", padding),
        ("data_format", data_format),
        ("dilation_rate", spec.dilation),
        ("use_bias", False),
        ("dtype", spec.dtype),
    ]
    if is_depthwise(spec):
        layer = f"DepthwiseConv{spec.rank}D"
        args = [*common, ("depth_multiplier", spec.out_channels // spec.in_channels)]
        args.append(("depthwise_initializer", "zeros"))
    else:
        layer = f"Conv{spec.rank}D"
        args = [("filters", spec.out_channels), *common, ("groups", spec.groups), ("kernel_initializer", "zeros")]
    return Plan(layer, tuple(args), zero_padding)


def same_output_padding(spec: ConvSpec) -> tuple[bool, tuple[int, ...] | None]:
    """(reachable, output_padding): whether Keras's padding='same' transposed layer gives `spec`'s input size, and
    with which output_padding. Keras's size is (t − 1)·s + eff_k mod 2 + output_padding, each in [0, stride), or
    t·s with output_padding=None (for every dimension: Keras takes None or a value per dimension)."""
    if all(n == t * s for n, t, s in zip(spec.in_size, spec.out_size, spec.stride)):
        return True, None
    out = []
    for n, t, k, s, d in zip(spec.in_size, spec.out_size, spec.kernel, spec.stride, spec.dilation):
        op = n - (t - 1) * s - effective_kernel(k, d) % 2
        if not 0 <= op < s:
            return False, None
        out.append(op)
    return True, tuple(out)


def transposed_plan(spec: ConvSpec) -> Plan:
    """Conv{r}DTranspose for `spec`'s transposed convolution: SAME as Keras's 'same' where an output_padding gives
    the forward input size; everything else as 'valid' (the full transposed convolution, `output_padding` more at
    the end) cropped to positions lo .. lo + n."""
    from crosscheck.core.adjoint import output_padding

    reachable, same = same_output_padding(spec) if spec.padding == "SAME" else (False, None)
    crop = None
    extra: tuple[int, ...] | None
    if reachable:
        padding, extra = "same", same
    else:
        padding = "valid"
        extra = tuple(max(0, op - hi) for op, (_, hi) in zip(output_padding(spec), spec.pads))
        crop = tuple((lo, lo + n) for n, (lo, _) in zip(spec.in_size, spec.pads))
    args: list[tuple[str, Any]] = [
        ("filters", spec.in_channels),
        ("kernel_size", spec.kernel),
        ("strides", spec.stride),
        ("padding", padding),
        ("output_padding", extra),
        ("data_format", DATA_FORMAT[spec.layout]),
        ("dilation_rate", spec.dilation),
        ("use_bias", False),
        ("dtype", spec.dtype),
        ("kernel_initializer", "zeros"),
    ]
    return Plan(f"Conv{spec.rank}DTranspose", tuple(args), crop=crop)


def keras_kernel(w: np.ndarray, spec: ConvSpec, plan: Plan) -> np.ndarray:
    """The problem's weight as the layer's kernel: (*k, C_in/g, C_out), depthwise (*k, C_in, multiplier); a
    transposed layer's (*k, filters = C_in, inputs = C_out) is the same array. Transposes and a reshape only."""
    f = np.transpose(w, (*range(2, 2 + spec.rank), 1, 0))
    if plan.layer.startswith("Depthwise"):
        # Output channel c·m + j of a depthwise layer reads input channel c through kernel[..., c, j].
        f = f.reshape(*spec.kernel, spec.in_channels, spec.out_channels // spec.in_channels)
    return np.ascontiguousarray(f)


def _to_keras(a: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return a if spec.layout == "channels_first" else channels_last(a)


def _from_keras(a: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return np.ascontiguousarray(a if spec.layout == "channels_first" else from_channels_last(a))


_MAX_LAYERS = 256


class Layers:
    """Built layers by plan and input shape: building one costs more than calling it, and a property calls the
    same geometry several times. The kernel is assigned from the problem on every call."""

    def __init__(self, keras: Any) -> None:
        self.keras = keras
        self._built: OrderedDict[tuple[Plan, tuple[int, ...]], Callable[[np.ndarray, np.ndarray], np.ndarray]]
        self._built = OrderedDict()

    def __call__(self, plan: Plan, x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        key = (plan, x.shape)
        entry = self._built.get(key)
        if entry is None:
            entry = self._build(plan, x.shape)
            if len(self._built) >= _MAX_LAYERS:
                self._built.popitem(last=False)
            self._built[key] = entry
        return entry(x, kernel)

    def _build(self, plan: Plan, shape: tuple[int, ...]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        keras = self.keras
        layers = keras.layers
        conv = getattr(layers, plan.layer)(**plan.kwargs())
        pad = None
        if plan.zero_padding is not None:
            rank = len(plan.zero_padding)
            pads = plan.zero_padding[0] if rank == 1 else plan.zero_padding
            # The layer's dtype too: a layer computes in its own dtype policy (float32 by default) and casts its input
            # to it, so an untyped ZeroPadding would round float64 inputs to float32.
            pad = getattr(layers, f"ZeroPadding{rank}D")(
                padding=pads, data_format=plan.kwargs()["data_format"], dtype=plan.kwargs()["dtype"]
            )
            pad.build(shape)
            conv.build(pad.compute_output_shape(shape))
        else:
            conv.build(shape)

        def call(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
            conv.kernel.assign(kernel)
            y = conv(pad(x) if pad is not None else x)
            return np.asarray(keras.ops.convert_to_numpy(y))

        return call


# ------------------------------------------------------------------------------------------- measuring


def message(exc: BaseException) -> str:
    """An error as reasons quote it: type and first meaningful line, without Keras's "Exception encountered when
    calling" frame, terminal colour codes, or TensorFlow's eager-op decorations."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if not line.startswith("Exception encountered when calling")), "")
    first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first)
    first = re.sub(r"\s*\[Op:\w+\].*$", "", first)
    return f"{type(exc).__name__}: {first[:300]}"


def _attempt(call: Callable[[], Any]) -> str | None:
    """None if the call runs, else the refusal as Keras (or its backend) words it: type and first line."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - Keras raises its backends' own error types (OpError, RuntimeError...)
        return message(exc)
    return None


def _tiny(rank: int, dtype: str, layout: str = "channels_last", **fields: Any) -> ConvSpec:
    defaults: dict[str, Any] = dict(batch=1, in_channels=2, out_channels=2, in_size=(5,) * rank, kernel=(2,) * rank)
    defaults.update(fields)
    return ConvSpec(dtype=dtype, layout=layout, **defaults)


def probe_specs(dtype: str) -> dict[str, ConvSpec]:
    """One tiny problem per feature whose support the layers may refuse (per Keras backend and dtype)."""
    probes: dict[str, ConvSpec] = {}
    for rank in (1, 2, 3):
        probes[f"Conv{rank}D"] = _tiny(rank, dtype)
        probes[f"Conv{rank}D channels_first"] = _tiny(rank, dtype, "channels_first")
        probes[f"Conv{rank}D groups"] = _tiny(rank, dtype, in_channels=4, out_channels=2, groups=2)
        probes[f"Conv{rank}D groups channels_first"] = _tiny(
            rank, dtype, "channels_first", in_channels=4, out_channels=2, groups=2
        )
        probes[f"Conv{rank}D dilation"] = _tiny(rank, dtype, dilation=(2,) * rank)
        probes[f"Conv{rank}D stride with dilation"] = _tiny(rank, dtype, stride=(2,) * rank, dilation=(2,) * rank)
    for rank in (1, 2):
        probes[f"DepthwiseConv{rank}D"] = _tiny(rank, dtype, out_channels=4, groups=2)
        probes[f"DepthwiseConv{rank}D channels_first"] = _tiny(rank, dtype, "channels_first", out_channels=4, groups=2)
        probes[f"DepthwiseConv{rank}D stride"] = _tiny(rank, dtype, out_channels=4, groups=2, stride=(2,) * rank)
        probes[f"DepthwiseConv{rank}D stride with dilation"] = _tiny(
            rank, dtype, out_channels=4, groups=2, stride=(2,) * rank, dilation=(2,) * rank
        )
    # TensorFlow's Eigen depthwise kernel takes only equal strides (DepthwiseConv1D runs as height 1, strides (s, s)).
    probes["DepthwiseConv2D unequal strides"] = _tiny(2, dtype, out_channels=4, groups=2, stride=(1, 2))
    return probes


def transposed_probe_specs(dtype: str) -> dict[str, ConvSpec]:
    probes: dict[str, ConvSpec] = {}
    for rank in (1, 2, 3):
        probes[f"Conv{rank}DTranspose"] = _tiny(rank, dtype, stride=(2,) * rank)
        probes[f"Conv{rank}DTranspose channels_first"] = _tiny(rank, dtype, "channels_first", stride=(2,) * rank)
        probes[f"Conv{rank}DTranspose dilation"] = _tiny(rank, dtype, dilation=(2,) * rank)
        probes[f"Conv{rank}DTranspose stride with dilation"] = _tiny(
            rank, dtype, stride=(2,) * rank, dilation=(2,) * rank
        )
    return probes


def feature_of(spec: ConvSpec, transposed: bool = False) -> list[str]:
    """The probed features `spec` uses (the first is the layer itself)."""
    if transposed:
        base = f"Conv{spec.rank}DTranspose"
        uses = [base]
        if spec.layout == "channels_first":
            uses.append(f"{base} channels_first")
        if max(spec.dilation) > 1:
            uses.append(f"{base} dilation")
            if max(spec.stride) > 1:
                uses.append(f"{base} stride with dilation")
        return uses
    if is_depthwise(spec):
        base = f"DepthwiseConv{spec.rank}D"
        uses = [base]
        if max(spec.stride) > 1:
            uses.append(f"{base} stride")
        if spec.rank == 2 and spec.stride[0] != spec.stride[1]:
            uses.append(f"{base} unequal strides")
    else:
        base = f"Conv{spec.rank}D"
        uses = [base]
        if spec.groups > 1:
            uses.append(f"{base} groups")
            if spec.layout == "channels_first":
                uses.append(f"{base} groups channels_first")
    if spec.layout == "channels_first":
        uses.append(f"{base} channels_first")
    if max(spec.dilation) > 1:
        if not base.startswith("Depthwise"):
            uses.append(f"{base} dilation")
        if max(spec.stride) > 1:
            uses.append(f"{base} stride with dilation")
    return uses


def _first_refused(facts: dict[str, str | None], features: list[str], dtype: str) -> str | None:
    for feature in features:
        if facts.get(feature):
            return f"{dtype} keras.layers.{feature}: {facts[feature]}"
    return None


def _declared(
    facts_of: Callable[[str], dict[str, str | None]], dtypes: tuple[str, ...], ranks: tuple[str, ...]
) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """(the dtypes some rank's layer runs, the refusals to record): a dtype every rank refuses once, then each
    refused feature with the dtypes that refuse it (a feature's refusal is left out where its layer's is recorded)."""
    kept = tuple(d for d in dtypes if not all(facts_of(d)[r] for r in ranks))
    unsupported = [(f"dtype {d}", str(facts_of(d)[ranks[0]])) for d in dtypes if d not in kept]
    by_refusal: dict[tuple[str, str], list[str]] = {}
    for d in kept:
        facts = facts_of(d)
        for feature, message in facts.items():
            base = feature.split()[0]
            if message and not (feature != base and facts.get(base)):
                by_refusal.setdefault((feature, message), []).append(d)
    unsupported += [(f"{feature} ({', '.join(ds)})", m) for (feature, m), ds in by_refusal.items()]
    return kept, unsupported


# ------------------------------------------------------------------------------------------- the backends


LAYERS = (
    "Conv1D/2D/3D (groups), DepthwiseConv1D/2D, ZeroPadding1D/2D/3D + 'valid' for explicit pads, Conv1D/2D/3DTranspose"
)


class KerasBackend(Backend):
    """Keras 3 layers on one Keras backend (`keras_backend`); subclasses name it."""

    framework = "keras"
    module = "keras"
    keras_backend = ""
    implementation_source = "nothing exposed: Keras layers do not say which kernel their backend ran"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._layers: Layers | None = None
        self._facts: dict[str, dict[str, str | None]] = {}
        self._transposed_facts: dict[str, dict[str, str | None]] = {}
        self._caps: Capabilities | None = None

    def _keras(self) -> Any:
        return load_keras(self.keras_backend)

    def check_available(self) -> None:
        self._keras()

    def _below_dist(self) -> str:
        """The distribution of the framework below Keras (tensorflow-cpu here for tensorflow)."""
        if self.keras_backend == "tensorflow":
            from crosscheck.backends.tensorflow_backend import installed_distribution

            return installed_distribution()
        return self.keras_backend

    def _below_version(self) -> str:
        """The version of the framework below Keras: known findings one level down (`through` in
        crosscheck/data/known_findings.json) are keyed on it (dispatch()["framework_versions"])."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self._below_dist())
        except PackageNotFoundError:
            return "not installed"

    def layers(self) -> Layers:
        if self._layers is None:
            self._layers = Layers(self._keras())
        return self._layers

    # ---- what the layers accept here

    def _measure(self, specs: dict[str, ConvSpec], transposed: bool) -> dict[str, str | None]:
        facts: dict[str, str | None] = {}
        for feature, spec in specs.items():
            dt = dtype_info(spec.dtype).numpy
            problem = ConvProblem(spec, np.ones(spec.x_shape, dt), np.ones(spec.w_shape, dt))
            g = np.ones(spec.y_shape, dt)
            call = (
                functools.partial(self.conv_transpose, problem, g)
                if transposed
                else functools.partial(self.run, problem)
            )
            facts[feature] = _attempt(call)
        return facts

    def facts(self, dtype: str) -> dict[str, str | None]:
        if dtype not in self._facts:
            self._facts[dtype] = self._measure(probe_specs(dtype), transposed=False)
        return self._facts[dtype]

    def transposed_facts(self, dtype: str) -> dict[str, str | None]:
        if dtype not in self._transposed_facts:
            self._transposed_facts[dtype] = self._measure(transposed_probe_specs(dtype), transposed=True)
        return self._transposed_facts[dtype]

    def refusal(self, spec: ConvSpec) -> str | None:
        """Why the layers refuse `spec` here (in Keras's words, as measured on a tiny layer), or None."""
        return _first_refused(self.facts(spec.dtype), feature_of(spec), spec.dtype)

    def transposed_refusal(self, spec: ConvSpec) -> str | None:
        if spec.groups > 1:
            return NO_TRANSPOSED_GROUPS
        return _first_refused(self.transposed_facts(spec.dtype), feature_of(spec, transposed=True), spec.dtype)

    def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = self._declare()
        return self._caps

    def _declare(self) -> Capabilities:
        dtypes, unsupported = _declared(self.facts, DTYPES, ("Conv1D", "Conv2D", "Conv3D"))
        unsupported += [("padding SAME_LOWER", SAME_LOWER_REASON), ("layout strided", NOT_STRIDED)]
        unsupported += [("gradients", NO_GRADIENTS)]
        layouts = ("channels_last", "channels_first")
        return Capabilities(
            dtypes=dtypes,
            padding=("explicit", "VALID", "SAME"),
            layouts=layouts,
            unsupported=tuple(unsupported),
            constraints=(self.refusal,),
            transposed=self._transposed_space(dtypes, layouts),
        )

    def _transposed_space(self, dtypes: tuple[str, ...], layouts: tuple[str, ...]) -> Capabilities:
        floats = tuple(d for d in dtypes if d in FLOAT_DTYPES)
        ranks = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
        kept, unsupported = _declared(self.transposed_facts, floats, ranks)
        unsupported += [(f"dtype {d}", BACKWARD_INT_REASON) for d in dtypes if d not in floats]
        unsupported += [("groups", NO_TRANSPOSED_GROUPS)]
        return Capabilities(
            dtypes=kept,
            layouts=layouts,
            groups=False,
            unsupported=tuple(unsupported),
            constraints=(self.transposed_refusal,),
        )

    # ---- the calls

    def run(self, problem: ConvProblem) -> np.ndarray:
        spec = problem.spec
        plan = forward_plan(spec)
        y = self.layers()(plan, _to_keras(problem.x, spec), keras_kernel(problem.w, spec, plan))
        return _from_keras(y, spec)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        spec = problem.spec
        plan = transposed_plan(spec)
        y = _from_keras(self.layers()(plan, _to_keras(g, spec), keras_kernel(problem.w, spec, plan)), spec)
        if plan.crop is not None:
            y = y[(slice(None), slice(None), *(slice(a, b) for a, b in plan.crop))]
        return np.ascontiguousarray(y)

    # ---- what the record says

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("keras")
        except PackageNotFoundError:
            return "not installed"

    def dispatch(self) -> dict[str, Any]:
        """What the framework below Keras dispatches to (as its own adapter reports it), and its version: the
        findings one level down (`through` in known_findings.json) are keyed on it."""
        self._keras()
        return {**self._isa_dispatch(), "framework_versions": {self.keras_backend: self._below_version()}}

    def _isa_dispatch(self) -> dict[str, Any]:
        raise NotImplementedError

    def precision_flags(self) -> dict[str, Any]:
        keras = self._keras()
        return {
            "keras.config.backend()": keras.config.backend(),
            "backend framework": f"{self._below_dist()} {self._below_version()}",
            "keras.config.floatx()": keras.config.floatx(),
            "keras.config.dtype_policy()": str(keras.config.dtype_policy().name),
        }

    def native_snippet(self, problem: ConvProblem) -> str:
        spec = problem.spec
        plan = forward_plan(spec)
        lines = [
            standalone_problem_code(problem),
            "import os",
            f'os.environ["KERAS_BACKEND"] = "{self.keras_backend}"  # before keras is imported',
        ]
        if self.keras_backend == "jax":
            lines += ["import jax", 'jax.config.update("jax_enable_x64", True)']
        lines += [
            "import numpy as np",
            "import keras",
            "x = problem.x"
            if spec.layout == "channels_first"
            else "x = np.moveaxis(problem.x, 1, -1)  # channels last",
            f"kernel = np.transpose(problem.w, {(*range(2, 2 + spec.rank), 1, 0)})  # (*kernel, C_in/groups, C_out)",
        ]
        if plan.layer.startswith("Depthwise"):
            shape = (*spec.kernel, spec.in_channels, spec.out_channels // spec.in_channels)
            lines.append(f"kernel = kernel.reshape({shape})  # (*kernel, C_in, multiplier)")
        lines.append(f"conv = {plan.call_text()}")
        if plan.zero_padding is not None:
            pads = plan.zero_padding[0] if spec.rank == 1 else plan.zero_padding
            lines.append(
                f"x = keras.layers.ZeroPadding{spec.rank}D(padding={pads!r}, data_format={DATA_FORMAT[spec.layout]!r}, "
                f"dtype={spec.dtype!r})(x)"
            )
        lines += [
            "conv.build(x.shape)",
            "conv.kernel.assign(kernel)",
            "y = keras.ops.convert_to_numpy(conv(x))",
        ]
        if spec.layout != "channels_first":
            lines.append("y = np.moveaxis(y, -1, 1)  # back to (N, C_out, *spatial)")
        lines.append("print(y)")
        return "\n".join(lines)


class KerasTensorflow(KerasBackend):
    name = "keras.tensorflow"
    keras_backend = "tensorflow"
    description = f"Keras 3 layers on its tensorflow backend: {LAYERS}"

    def _isa_dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import tensorflow_dispatch

        return tensorflow_dispatch(self._below_version())


class KerasJax(KerasBackend):
    name = "keras.jax"
    keras_backend = "jax"
    description = f"Keras 3 layers on its jax backend: {LAYERS}"

    def _isa_dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import xla_dispatch

        return xla_dispatch()


class KerasTorch(KerasBackend):
    name = "keras.torch"
    keras_backend = "torch"
    description = f"Keras 3 layers on its torch backend: {LAYERS}"

    def _isa_dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import torch_dispatch

        return torch_dispatch()


BACKENDS: dict[str, type[KerasBackend]] = {b.name: b for b in (KerasTensorflow, KerasJax, KerasTorch)}
