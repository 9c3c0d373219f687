"""What the waveform time roll costs against the frame roll, per training step, side by side.

    python benchmarks/bench_roll.py [--home HOME] [--rounds 5] [--batch 256] [--memory-reuse] [--out benchmarks/time_roll.csv]

On synth-tau22 small (generated in HOME if missing, its caches built once): one optimizer step
of cp-mobile on a batch of the split25 training clips, with the input pipeline of the ``dcase``
recipe (time roll, frequency mask 48, Freq-MixStyle), the roll taken either way: ``frames`` (the
cached log-mel rolled by whole frames) or ``waveform`` (the cached 32 kHz waveform rolled by
whole samples, the batch's mel recomputed). The two alternate, ``rounds`` times each, after a
warm-up step each; one CSV row per step: roll, round, seconds, clips_per_second. With
``--memory-reuse`` the steps run with freed memory kept in the process, as in ascbench's
training loop (without it, glibc maps and zero-fills every big tensor anew on every step).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ascbench.data.dataset import Dataset
from ascbench.data.reader import load_dataset, load_split
from ascbench.data.resolve import resolve_data
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.features.frontends import RawWaveform
from ascbench.systems import discover
from ascbench.training.allocator import reuse_freed_memory
from ascbench.training.config import get_profile
from ascbench.training.inputs import InputPipeline


@dataclass
class StepBench:
    """cp-mobile, its optimizer and one batch of split25 training clips, ready to time steps on."""

    dataset: Dataset
    features: CachedFeatures
    waveforms: CachedFeatures
    filenames: list[str]
    rows: np.ndarray
    model: torch.nn.Module
    labels: torch.Tensor
    optimizers: dict[int, torch.optim.Optimizer] = field(default_factory=dict)

    def pipeline(self, roll: str) -> InputPipeline:
        """The ``dcase`` recipe's input pipeline (fp32, CPU) with the time roll taken ``roll``'s way."""
        return InputPipeline(self.features, get_profile("dcase").replace(roll_domain=roll, amp="off"), torch.device("cpu"), self.waveforms)

    def step(self, inputs: Callable[[], torch.Tensor], model: torch.nn.Module | None = None) -> float:
        """Seconds for one optimizer step, the batch's inputs built by ``inputs`` inside the timing;
        of ``model`` if given (with an AdamW of its own), else of the channels-last cp-mobile."""
        model = model if model is not None else self.model
        optimizer = self.optimizers.setdefault(id(model), torch.optim.AdamW(model.parameters(), lr=1e-4))
        started = time.perf_counter()
        x = inputs()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), self.labels).backward()
        optimizer.step()
        return time.perf_counter() - started


def step_bench(home: Path | None, batch: int) -> StepBench:
    dataset = load_dataset(resolve_data("synth-tau22-small", home, progress=False))
    spec = discover().get("cp-mobile")
    features = load_features(dataset, spec.frontend, home=home, progress=False)
    waveforms = load_features(dataset, RawWaveform(32_000), home=home, progress=False)
    filenames = [c.filename for c in load_split(dataset, 0.25).train[:batch]]
    model = spec.build_model().train().to(memory_format=torch.channels_last)
    labels = torch.randint(0, spec.n_classes, (len(filenames),))
    return StepBench(dataset, features, waveforms, filenames, features.rows(filenames), model, labels)


Arm = Callable[[], torch.Tensor] | tuple[Callable[[], torch.Tensor], torch.nn.Module]
"""A batch's inputs, or the inputs and the model that takes the step."""


def alternate(bench: StepBench, arms: dict[str, Arm], rounds: int, key: str) -> list[dict]:
    """Each arm's steps, alternated ``rounds`` times after one warm-up step each: one row per step."""
    for arm in arms.values():
        bench.step(*arm) if isinstance(arm, tuple) else bench.step(arm)
    results = []
    for round_ in range(rounds):
        for name, arm in arms.items():
            seconds = bench.step(*arm) if isinstance(arm, tuple) else bench.step(arm)
            results.append({key: name, "round": round_, "seconds": round(seconds, 4), "clips_per_second": round(len(bench.rows) / seconds, 1)})
    return results


def report(results: list[dict], key: str, out: Path, clips: int, unit: str = "step") -> None:
    """Write the rows to ``out`` and print each arm's median."""
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    for name in dict.fromkeys(r[key] for r in results):
        median = statistics.median(r["seconds"] for r in results if r[key] == name)
        print(f"{name}: median {median:.3f} s per {unit} of {clips} clips, {clips / median:.0f} clips/s")
    print(f"wrote {out}")


def arguments(doc: str, csv_name: str) -> argparse.Namespace:
    """The options every step benchmark takes (its docstring's first line is the description)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(csv_name))
    parser.add_argument("--epoch-rounds", type=int, default=2, help="whole epochs per arm, where a benchmark times them")
    parser.add_argument("--memory-reuse", action="store_true",
                        help="run every arm inside ascbench.training.allocator.reuse_freed_memory, as ascbench's "
                             "training loop runs on a CPU (glibc's defaults otherwise, as a plain PyTorch loop runs)")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__, "time_roll.csv")

    bench = step_bench(args.home, args.batch)
    rng = np.random.default_rng(0)
    arms = {roll: (lambda p=bench.pipeline(roll): p.train_inputs(bench.rows, None, rng)) for roll in ("frames", "waveform")}
    with reuse_freed_memory(args.memory_reuse):
        results = alternate(bench, arms, args.rounds, "roll")
    report(results, "roll", args.out, len(bench.rows))


if __name__ == "__main__":
    main()
