"""One training step in fp32 and under bf16 autocast, per model, on this CPU: what decides each
model's ``"auto"`` precision (``ascbench/training/precision.py``).

Teachers at batch 32 (HuBERT-small on 1-s 16 kHz waveforms, BEATs-small on 98 x 128 fbanks, with
their classification heads), students at batch 64 on 256 x 65 baseline log-mels in channels-last.
Inputs are random: the figure is time, not accuracy. Prints the median of the last steps of each
of two rounds per precision (fp32's two rounds first, then bf16's)::

    python benchmarks/precision_steps.py            # every model
    python benchmarks/precision_steps.py hubert     # one

bf16 pays only on a CPU with native bf16 dot products (AMX or AVX512-BF16); elsewhere expect it
to be slower.
Not a test and not collected by pytest (no ``bench_`` prefix).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def teacher(kind: str) -> tuple[nn.Module, torch.Tensor, Callable[[object], torch.Tensor]]:
    from baselines.beats_mobilenetv2 import beats_teacher
    from baselines.hubert_mobilenetv2 import hubert_teacher
    from ascbench.distill.teacher_recipe import new_encoder
    from ascbench.distill.teachers.base import TeacherClassifier

    config = hubert_teacher("small") if kind == "hubert" else beats_teacher("small")
    x = torch.randn(32, 16_000) if kind == "hubert" else torch.randn(32, 98, 128)
    return TeacherClassifier(new_encoder(config)), x, lambda out: out[0]


def student(name: str) -> tuple[nn.Module, torch.Tensor, Callable[[object], torch.Tensor]]:
    from baselines.efficientnet_b0 import efficientnet_b0
    from baselines.mobilenetv2_student import mobilenetv2_student

    build = efficientnet_b0 if name == "efficientnet-b0" else mobilenetv2_student
    x = torch.randn(64, 1, 256, 65).contiguous(memory_format=torch.channels_last)
    return build().to(memory_format=torch.channels_last), x, lambda out: out


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor, Callable[[object], torch.Tensor]]]] = {
    "hubert": lambda: teacher("hubert"),
    "beats": lambda: teacher("beats"),
    "mobilenetv2": lambda: student("mobilenetv2"),
    "efficientnet-b0": lambda: student("efficientnet-b0"),
}


def step_seconds(name: str, bf16: bool, steps: int = 6) -> float:
    torch.manual_seed(0)
    model, x, logits_of = MODELS[name]()
    model.train()
    y = torch.randint(0, 10, (x.shape[0],))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(logits_of(model(x)).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:])  # the first steps carry oneDNN's primitive creation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    from ascbench.training.precision import cpu_bf16_units

    units = ", ".join(f"{name}: {present}" for name, present in cpu_bf16_units().items())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16 units: {units}")
    for name in args.models or MODELS:
        rounds = {precision: [step_seconds(name, precision == "bf16") for _ in range(2)] for precision in ("fp32", "bf16")}
        shown = ", ".join(f"{p} {' / '.join(f'{s:.3f}' for s in r)} s" for p, r in rounds.items())
        print(f"{name}: one step {shown}")


if __name__ == "__main__":
    main()
