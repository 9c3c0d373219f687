"""What the waveform time roll costs against the frame roll, per training step, side by side.

    python benchmarks/bench_roll.py [--home HOME] [--rounds 5] [--batch 256] [--out benchmarks/time_roll.csv]

On synth-tau22 small (generated in HOME if missing, its caches built once): one optimizer step
of cp-mobile on a batch of the split25 training clips, with the input pipeline of the ``dcase``
recipe (time roll, frequency mask 48, Freq-MixStyle), the roll taken either way: ``frames`` (the
cached log-mel rolled by whole frames) or ``waveform`` (the cached 32 kHz waveform rolled by
whole samples, the batch's mel recomputed). The two alternate, ``rounds`` times each, after a
warm-up step each; one CSV row per step: roll, round, seconds, clips_per_second.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ascbench.data.reader import load_dataset, load_split
from ascbench.data.resolve import resolve_data
from ascbench.features.cache import load_features
from ascbench.features.frontends import RawWaveform
from ascbench.systems import discover
from ascbench.training.config import get_profile
from ascbench.training.inputs import InputPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("time_roll.csv"))
    args = parser.parse_args()

    dataset = load_dataset(resolve_data("synth-tau22-small", args.home, progress=False))
    spec = discover().get("cp-mobile")
    features = load_features(dataset, spec.frontend, home=args.home, progress=False)
    waveforms = load_features(dataset, RawWaveform(32_000), home=args.home, progress=False)
    split = load_split(dataset, 0.25)
    rows = features.rows([c.filename for c in split.train[: args.batch]])
    device = torch.device("cpu")
    pipelines = {
        roll: InputPipeline(features, get_profile("dcase").replace(roll_domain=roll, amp="off"), device, waveforms)
        for roll in ("frames", "waveform")
    }
    model = spec.build_model().train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.randint(0, spec.n_classes, (len(rows),))
    rng = np.random.default_rng(0)

    def step(roll: str) -> float:
        started = time.perf_counter()
        inputs = pipelines[roll].train_inputs(rows, None, rng)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
        return time.perf_counter() - started

    for roll in pipelines:
        step(roll)  # warm-up
    results = []
    for round_ in range(args.rounds):
        for roll in pipelines:
            seconds = step(roll)
            results.append({"roll": roll, "round": round_, "seconds": round(seconds, 4), "clips_per_second": round(len(rows) / seconds, 1)})
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    for roll in pipelines:
        median = statistics.median(r["seconds"] for r in results if r["roll"] == roll)
        print(f"{roll}: median {median:.3f} s per step of {len(rows)} clips, {len(rows) / median:.0f} clips/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
