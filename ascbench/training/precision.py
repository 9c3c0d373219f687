"""Which floating-point precision a training or inference loop runs in, and the autocast for it.

The students and the teachers resolve ``"auto"`` differently, because what pays differs:

- On CUDA both use bf16 autocast (fp16 with a gradient scaler where the GPU lacks bf16).
- On the CPU the students stay in fp32: their depthwise convolutions are memory-bound, and bf16
  autocast made their training steps no faster, or slower, even with AMX.
- The transformer teachers are matmul-bound: on a CPU with native bf16 dot products (AMX tiles
  or AVX512-BF16) a HuBERT-small step takes about half its fp32 time or less, and the fine-tuned
  teacher scores the same. So a teacher's ``"auto"`` is bf16 on such a CPU, and fp32 on every
  other CPU, where autocast only adds casts. BEATs-small opts out of bf16 on the CPU
  (``TeacherConfig.bf16_on_cpu=False`` in ``baselines/beats_mobilenetv2.py``): its step gains
  little, against one more precision to keep apart. It keeps bf16 on a GPU.

A bf16 pitfall: torch 2.9.1's bf16 CPU convolution returned wrong outputs for BEATs-small's
positional conv (96 channels in 16 groups, kernel 128), so that conv runs in fp32 inside autocast
(``ascbench.distill.teachers.beats.WeightNormConv1d``).

The measurements behind each choice, with their commands: docs/experiments/precision.md.

Precision changes the rounding, so a teacher trained in bf16 is a different teacher from the
fp32 one: the teacher-stage cache keys include the resolved precision (:func:`precision_tag`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import get_args

import torch

from ascbench.training.config import AmpMode

AMP_MODES: tuple[str, ...] = get_args(AmpMode)


BF16_UNITS: dict[str, str] = {"AMX": "_is_amx_tile_supported", "AVX512-BF16": "_is_avx512_bf16_supported"}
"""The CPU's native bf16 units, by name, and the ``torch.cpu`` probe that detects each."""


def cpu_bf16_units() -> dict[str, bool]:
    """Which of :data:`BF16_UNITS` this CPU has (a probe this torch lacks is left out)."""
    units = {}
    for name, probe in BF16_UNITS.items():
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            try:
                units[name] = bool(check())
            except RuntimeError:  # a probe that cannot read the CPU: assume the unit is absent
                units[name] = False
    return units


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products natively: Intel AMX tiles, or AVX512-BF16
    (Intel since Cooper Lake, AMD since Zen 4). Without either, bf16 autocast only adds casts."""
    return any(cpu_bf16_units().values())


def resolve_precision(amp: AmpMode, device: torch.device, *, bf16_on_cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``; None means full fp32.

    ``bf16_on_cpu`` makes ``"auto"`` pick bf16 on a CPU with native bf16 (the teachers' choice;
    see the module docstring for why the students do not).
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and bf16_on_cpu and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_tag(precision: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: how records and stage keys name a precision."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[precision]


@contextlib.contextmanager
def autocast(device: torch.device, precision: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``precision`` on ``device``'s type; a no-op for fp32."""
    with torch.autocast(device.type, dtype=precision, enabled=precision is not None):
        yield
