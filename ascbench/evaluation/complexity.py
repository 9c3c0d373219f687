"""Parameters, MACs and parameter memory of a deployable model, under the DCASE convention.

DCASE 2024 Task 1 measures submissions with NeSsi (``nessi.get_torch_size``), which wraps
``torchinfo.summary``: parameters are ``total_params`` and MACs are ``total_mult_adds`` for one
1-second clip. torchinfo derives MACs from *modules with parameters* only:

- conv: (weight + bias elements) x output positions -- every multiply-accumulate, and the bias
  add once per output element;
- linear: (weight + bias elements) x the leading output dimension;
- batch norm (and any other module with parameters): its parameter count;
- modules without parameters (pooling, activations, residual adds, reshapes): 0.

For CP-Mobile, the DCASE 2024 baseline, this gives the official 61,148 parameters and
29,419,156 MACs (29,416,448 in convolutions + 2,708 batch-norm parameters).

We count with fvcore, which traces the forward pass and counts per aten operator and per module
(the breakdown the report keeps), with the operator handlers set so that the totals equal
torchinfo's wherever torchinfo is right:

- ``aten::_convolution``: fvcore's multiply-accumulates plus one per output element for a bias;
- ``aten::linear`` / ``aten::addmm``: in x out per output row, plus the bias add -- torchinfo
  multiplies a linear layer by the *first* output dimension only, which undercounts a linear
  layer applied per token ([B, T, D] inputs) T-fold; we count every token;
- ``aten::matmul`` / ``mm`` / ``bmm`` / ``einsum`` / ``scaled_dot_product_attention``: the real
  multiply-accumulates of activation x activation products (attention). torchinfo counts 0 for
  them because they have no parameters; a transformer's attention is real work, so we count it;
- ``aten::batch_norm`` / ``layer_norm`` / ``group_norm`` / ``instance_norm``: the norm's affine
  parameter count (fvcore would count 4-5 per input element: 1,600,640 for CP-Mobile's BN);
- pooling, activations and element-wise arithmetic (:data:`ZERO_MAC_OPS`): 0, as in torchinfo.
  fvcore would count adaptive average pooling as one per input element. These ops are listed in
  :attr:`ComplexityReport.zero_ops`, so the convention is visible, not silent.

Any other operator fvcore meets (an LSTM, an FFT, an embedding, ...) is *not* counted and is
listed in :attr:`ComplexityReport.uncounted_ops`: MACs are then a lower bound and the DCASE
verdict is "unknown" unless the counted part already breaks the limit.

Parameter memory is parameters x bytes at the stored precision, in kB of 1,000 B (int8: 1 B,
fp16: 2 B). The DCASE 2024 limits are 128 kB of parameter memory and 30 M MACs per clip;
``within_dcase_limits`` states them for int8 storage, the precision of ascbench's int8 artifact.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import conv_flop_jit, einsum_flop_jit, get_shape
from torch import nn

from ascbench.results.record import Complexity

if TYPE_CHECKING:
    from ascbench.evaluation.quantize import Int8Result

DCASE_MAX_PARAM_BYTES = 128_000
"""DCASE 2024 Task 1: at most 128 kB (1 kB = 1,000 B) of parameter memory at the stored precision."""
DCASE_MAX_MACS = 30_000_000
"""DCASE 2024 Task 1: at most 30 M multiply-accumulates for one 1-second clip."""

ZERO_MAC_OPS: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        # pooling and reductions
        "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_max_pool1d adaptive_max_pool2d avg_pool1d "
        "avg_pool2d max_pool1d max_pool2d max_pool2d_with_indices mean sum amax amin logsumexp "
        # activations
        "relu relu_ relu6 hardtanh hardtanh_ hardswish hardswish_ hardsigmoid hardsigmoid_ sigmoid "
        "sigmoid_ silu silu_ gelu gelu_ tanh tanh_ elu elu_ leaky_relu leaky_relu_ mish softplus "
        "softmax log_softmax glu "
        # element-wise arithmetic (residual adds, squeeze-excitation gates, scaling)
        "add add_ sub sub_ rsub mul mul_ div div_ neg exp log sqrt rsqrt pow abs square reciprocal "
        "clamp_min clamp_max minimum maximum where "
        # resampling and layout
        "upsample_nearest1d upsample_nearest2d upsample_bilinear2d upsample_linear1d pad reflection_pad1d "
        "reflection_pad2d replication_pad2d pixel_shuffle flip repeat expand_as alias unflatten "
        "dropout_ feature_dropout alpha_dropout"
    ).split()
)
"""Operators without parameters, which the DCASE convention (torchinfo) counts as 0 MACs."""


def _outputs_numel(outputs: list[Any]) -> int:
    return prod(get_shape(outputs[0]) or [0])


def _conv(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    macs = conv_flop_jit(inputs, outputs)["conv"]
    has_bias = get_shape(inputs[2]) is not None
    return Counter({"conv": int(macs + (_outputs_numel(outputs) if has_bias else 0))})


def _linear(inputs: list[Any], outputs: list[Any]) -> int:
    weight = get_shape(inputs[1])
    has_bias = len(inputs) > 2 and get_shape(inputs[2]) is not None
    out = _outputs_numel(outputs)
    return out * weight[-1] + (out if has_bias else 0)


def _addmm(inputs: list[Any], outputs: list[Any]) -> int:
    # addmm(bias, mat1, mat2): mat1 @ mat2 plus the bias add, per output element
    out = _outputs_numel(outputs)
    return out * get_shape(inputs[1])[-1] + out


def _matmul(inputs: list[Any], outputs: list[Any]) -> int:
    # any (batched, broadcast) matmul: every output element is an inner product of length K
    k = get_shape(inputs[0])[-1]
    return max(_outputs_numel(outputs), 1) * k


def _baddbmm(inputs: list[Any], outputs: list[Any]) -> int:
    out = _outputs_numel(outputs)
    return out * get_shape(inputs[1])[-1] + out


def _sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    # softmax(Q K^T) V: L x S inner products of length E, then L x Ev of length S
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = prod(q[:-2])
    length, source = q[-2], k[-2]
    return batch * length * source * (q[-1] + v[-1])


def _norm_params(weight_index: int) -> Callable[[list[Any], list[Any]], int]:
    """A norm layer costs its affine parameter count (weight + bias), as torchinfo counts it."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return sum(prod(get_shape(x) or [0]) for x in inputs[weight_index : weight_index + 2] if get_shape(x) is not None)

    return handle


MAC_HANDLERS: dict[str, Callable[[list[Any], list[Any]], int]] = {
    "aten::_convolution": _conv,
    "aten::linear": _linear,
    "aten::addmm": _addmm,
    "aten::matmul": _matmul,
    "aten::mm": _matmul,
    "aten::bmm": _matmul,
    "aten::baddbmm": _baddbmm,
    "aten::einsum": einsum_flop_jit,
    "aten::scaled_dot_product_attention": _sdpa,
    "aten::batch_norm": _norm_params(1),
    "aten::instance_norm": _norm_params(1),
    "aten::layer_norm": _norm_params(2),
    "aten::group_norm": _norm_params(2),
}
"""How each counted operator is turned into MACs (see the module docstring)."""


@dataclass(frozen=True)
class ModuleCost:
    """One row of the per-module breakdown."""

    name: str
    kind: str
    params: int
    macs: int
    by_operator: dict[str, int] = field(default_factory=dict)


@dataclass
class ComplexityReport:
    """Complexity of one model for one clip; ``int8`` is filled by :func:`attach_int8`."""

    params: int
    macs: int
    input_shape: tuple[int, ...]
    by_operator: dict[str, int]
    """MACs per operator kind (``conv``, ``linear``, ``batch_norm``, ...)."""
    module_macs: dict[str, int]
    """MACs per module name (``""`` is the whole model), each including its children."""
    module_params: dict[str, int]
    module_kinds: dict[str, str]
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    """Operator -> number of calls that could not be counted (MACs are then a lower bound)."""
    zero_ops: list[str] = field(default_factory=list)
    """Operators met that the DCASE convention counts as 0 MACs (pooling, activations, ...)."""
    int8: "Int8Result | None" = None

    @property
    def macs_complete(self) -> bool:
        return not self.uncounted_ops

    def param_memory_kb(self, bits: int) -> float:
        return param_memory_kb(self.params, bits)

    @property
    def param_memory_kb_int8(self) -> float:
        return self.param_memory_kb(8)

    @property
    def param_memory_kb_fp16(self) -> float:
        return self.param_memory_kb(16)

    def memory_within_limit(self, bits: int = 8) -> bool:
        return self.params * bits / 8 <= DCASE_MAX_PARAM_BYTES

    @property
    def macs_within_limit(self) -> bool | None:
        """True/False; None when uncounted operators might push a passing count over the limit."""
        if self.macs > DCASE_MAX_MACS:
            return False
        return True if self.macs_complete else None

    @property
    def within_dcase_limits(self) -> bool | None:
        """Both DCASE 2024 limits with int8 parameters; None if the MAC count is incomplete."""
        if not self.memory_within_limit(8) or self.macs_within_limit is False:
            return False
        return self.macs_within_limit

    def breakdown(self, depth: int = 2) -> list[ModuleCost]:
        """Rows for the modules ``depth`` levels down (and shallower leaves); rows sum to the total.

        Work a parent does itself (outside its children) gets its own ``<parent> (own)`` row.
        """
        rows: list[ModuleCost] = []

        def children(name: str) -> list[str]:
            prefix = f"{name}." if name else ""
            level = name.count(".") + 1 if name else 0
            return [m for m in self.module_params if m.startswith(prefix) and m != name and m.count(".") == level]

        def visit(name: str, level: int) -> None:
            kids = children(name)
            if level >= depth or not kids:
                rows.append(ModuleCost(name or "(model)", self.module_kinds.get(name, ""), self.module_params[name], self.module_macs.get(name, 0)))
                return
            own_macs = self.module_macs.get(name, 0) - sum(self.module_macs.get(k, 0) for k in kids)
            own_params = self.module_params[name] - sum(self.module_params[k] for k in kids)
            if own_macs or own_params:
                rows.append(ModuleCost(f"{name or '(model)'} (own)", self.module_kinds.get(name, ""), own_params, own_macs))
            for kid in kids:
                visit(kid, level + 1)

        visit("", 0)
        return rows

    def to_record(self) -> Complexity:
        """The record's complexity block (int8 fields from the int8 step, if it ran and succeeded)."""
        artifact = self.int8.artifact if self.int8 is not None else None
        return Complexity(
            params=self.params,
            macs=self.macs,
            input_shape=list(self.input_shape),
            param_memory_kb_int8=self.param_memory_kb_int8,
            param_memory_kb_fp16=self.param_memory_kb_fp16,
            int8_artifact_bytes=artifact.bytes if artifact is not None else None,
            int8_agreement=self.int8.agreement if self.int8 is not None else None,
            within_dcase_limits=self.within_dcase_limits,
            uncounted_ops=sorted(self.uncounted_ops),
        )


def param_memory_kb(params: int, bits: int) -> float:
    """Parameter memory in kB (1,000 B) when every parameter is stored with ``bits`` bits."""
    return params * bits / 8 / 1000


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not, shared ones once), as torchinfo's ``total_params``."""
    return sum(p.numel() for p in model.parameters())


def measure_complexity(model: nn.Module, input_shape: Sequence[int]) -> ComplexityReport:
    """Count parameters and MACs of ``model`` for one clip of ``input_shape`` (batch 1 included).

    The model is traced in eval mode (its mode is restored afterwards) on a zero input; the
    counts do not depend on the values.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or shape[0] != 1:
        raise ValueError(
            f"input_shape {list(shape)} must start with a batch of 1 (MACs are per clip), "
            "e.g. [1, 1, 256, 65] for a log-mel or [1, 32000] for a waveform"
        )
    was_training = model.training
    model.eval()
    try:
        analysis = _analyse(model, torch.zeros(shape))
        by_module_op = analysis.by_module_and_operator()
        module_macs = {name: int(total) for name, total in analysis.by_module().items()}
        by_operator = {op: int(n) for op, n in by_module_op.get("", Counter()).items() if n}
        uncounted = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    modules = dict(model.named_modules(remove_duplicate=False))
    module_params = {name: count_params(mod) for name, mod in modules.items()}
    return ComplexityReport(
        params=count_params(model),
        macs=module_macs.get("", 0),
        input_shape=shape,
        by_operator=by_operator,
        module_macs=module_macs,
        module_params=module_params,
        module_kinds={name: type(mod).__name__ for name, mod in modules.items()},
        uncounted_ops=uncounted,
        zero_ops=sorted(analysis.zero_ops_seen),
    )


class _Analysis(FlopCountAnalysis):
    """fvcore's analysis with the DCASE handlers; remembers which zero-MAC operators it met."""

    def __init__(self, model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        super().__init__(model, inputs)
        self.zero_ops_seen: set[str] = set()
        for op in ZERO_MAC_OPS:
            self._ignored_ops.discard(op)
        self._op_handles.clear()  # fvcore's defaults count BN and pooling per element
        self.set_op_handle(**MAC_HANDLERS)
        self.set_op_handle(**{op: self._zero(op) for op in ZERO_MAC_OPS})
        self.unsupported_ops_warnings(False)
        self.uncalled_modules_warnings(False)
        self.tracer_warnings("none")

    def _zero(self, op: str) -> Callable[[list[Any], list[Any]], int]:
        def handle(inputs: list[Any], outputs: list[Any]) -> int:
            self.zero_ops_seen.add(op)
            return 0

        return handle


def _analyse(model: nn.Module, x: torch.Tensor) -> _Analysis:
    # fvcore logs through the root logger on trace warnings; keep the terminal quiet.
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = _Analysis(model, (x,))
    analysis.total()  # runs the trace (errors surface here, with the model named)
    return analysis


def attach_int8(report: ComplexityReport, result: "Int8Result") -> ComplexityReport:
    """Store the int8 step's outcome (artifact and agreement, or why there is none)."""
    report.int8 = result
    return report
