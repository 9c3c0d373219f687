"""Quantization-aware training by weight fake-quantization with straight-through gradients (eq. 18).

Eq. 18 of the seed paper, W_quant = clip[round((W − μ)/(2σ)·255), 0, 255]·2σ/255 + μ, read
literally maps every weight below the mean μ to μ (codes below 0 are clipped), which cannot be
meant. Two readings are offered, per output channel of every Conv/Linear weight:

- ``"symmetric"`` (default): symmetric int8, W_q = clamp(round(W/s), −127, 127)·s with
  s = max|W|/127 -- the grid of the int8 model that is deployed. It survives BN folding:
  folding multiplies each output channel by one factor, which scales that channel's grid, so
  the folded weights are still exactly on a per-channel symmetric int8 grid.
- ``"mean_std"``: eq. 18 with its range centred on the mean, 256 levels on [μ − 2σ, μ + 2σ]:
  W_q = clip[round((W − μ + 2σ)/(4σ)·255), 0, 255]·4σ/255 + μ − 2σ.

Gradients pass straight through the rounding and the clipping (STE: dW_q/dW = 1). Fake
quantization is attached as a ``torch.nn.utils.parametrize`` parametrization, so the module
types and forward code stay unchanged; :func:`detach_fake_quant` removes it and leaves the
quantized values in the weights for the int8 conversion.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

QuantMode = Literal["symmetric", "mean_std"]
QUANTIZED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def fake_quantize(weight: torch.Tensor, mode: QuantMode = "symmetric", bits: int = 8) -> torch.Tensor:
    """Quantize-dequantize ``weight`` per output channel (dim 0); no gradient trick."""
    w = weight.reshape(weight.shape[0], -1)
    if mode == "symmetric":
        q_max = 2 ** (bits - 1) - 1
        scale = (w.abs().amax(dim=1, keepdim=True) / q_max).clamp_min(torch.finfo(w.dtype).tiny)
        q = torch.clamp(torch.round(w / scale), -q_max, q_max) * scale
    elif mode == "mean_std":
        levels = 2**bits - 1
        mu = w.mean(dim=1, keepdim=True)
        span = (4 * w.std(dim=1, keepdim=True, unbiased=False)).clamp_min(torch.finfo(w.dtype).tiny)
        low = mu - span / 2
        q = torch.clamp(torch.round((w - low) / span * levels), 0, levels) * span / levels + low
    else:
        raise ValueError(f"fake_quantize: mode must be 'symmetric' or 'mean_std', got {mode!r}")
    return q.reshape(weight.shape)


class FakeQuantWeight(nn.Module):
    """Parametrization: the forward sees fake-quantized weights, the backward the identity (STE)."""

    def __init__(self, mode: QuantMode = "symmetric", bits: int = 8) -> None:
        super().__init__()
        if mode not in ("symmetric", "mean_std"):
            raise ValueError(f"FakeQuantWeight: mode must be 'symmetric' or 'mean_std', got {mode!r}")
        if not 2 <= bits <= 16:
            raise ValueError(f"FakeQuantWeight: bits must be in 2..16, got {bits}")
        self.mode, self.bits = mode, bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (fake_quantize(weight.detach(), self.mode, self.bits) - weight).detach()


def attach_fake_quant(model: nn.Module, mode: QuantMode = "symmetric", bits: int = 8) -> list[str]:
    """Fake-quantize every Conv/Linear weight of ``model`` in place; returns the affected module names.

    Idempotent: modules already fake-quantized are left as they are.
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, QUANTIZED_TYPES) and not parametrize.is_parametrized(module, "weight"):
            parametrize.register_parametrization(module, "weight", FakeQuantWeight(mode, bits))
            names.append(name)
    return names


def has_fake_quant(model: nn.Module) -> bool:
    return any(
        parametrize.is_parametrized(m, "weight")
        and any(isinstance(p, FakeQuantWeight) for p in m.parametrizations["weight"])
        for m in model.modules()
    )


def detach_fake_quant(model: nn.Module, bake: bool = True) -> nn.Module:
    """Remove the fake-quant parametrizations; ``bake`` keeps the quantized values as the weights."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, FakeQuantWeight) for p in module.parametrizations["weight"]
        ):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=bake)
    return model
