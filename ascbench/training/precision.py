"""Which floating-point precision a training or inference loop runs in, and the autocast for it.

The students and the teachers resolve ``"auto"`` differently, because what pays differs:

- On CUDA both use bf16 autocast (fp16 with a gradient scaler where the GPU lacks bf16).
- On the CPU the students stay in fp32: their depthwise convolutions are memory-bound, and on a
  CPU with AMX bf16 autocast made a training step *slower* (MobileNetV2 student at batch 64:
  0.28 s fp32, 0.32 s bf16; EfficientNet-B0 1.40-1.48 s against 1.61 s; CP-Mobile at batch
  256: 268-275 clips/s either way; two-core Xeon with AMX, torch 2.9.1;
  ``python benchmarks/precision_steps.py`` and ``benchmarks/bench_training.py``).
- The transformer teachers are matmul-bound: on the same CPU a HuBERT-small fine-tuning step
  took 0.15 s in bf16 against 0.36-0.38 s in fp32, and the fine-tuned teacher scored the same
  (23.5 % on test.csv in bf16, 23.8 % in fp32; synth-tau22 small, 25 % split). A two-core AMD
  EPYC of the Zen 5 family, with AVX512-BF16 but no AMX, gains almost as much: 0.16-0.18 s against
  0.31-0.33 s, and 23.6 % against 23.7 %. So a teacher's ``"auto"`` is bf16 on a CPU with native
  bf16 dot products (AMX tiles or AVX512-BF16), and fp32 on every other CPU, where autocast only
  adds casts (on an AVX2-only EPYC bf16 was slower). BEATs-small opts out of bf16 on the CPU
  (``TeacherConfig.bf16_on_cpu=False`` in ``baselines/beats_mobilenetv2.py``): its step is no
  faster with AMX and 10-15 % faster on the Zen 5, about 5 s of a 50-s fine-tuning, against one
  more precision to keep apart. It keeps bf16 on a GPU.

A bf16 pitfall found on the way: torch 2.9.1's bf16 CPU convolution returned wrong outputs for
BEATs-small's positional conv (96 channels in 16 groups, kernel 128), and a teacher fine-tuned
through it scored 19.5 % instead of 34 %. That conv runs in fp32 inside autocast
(``ascbench.distill.teachers.beats.WeightNormConv1d``), after which bf16 fine-tuning scored 34.5 %.

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
