"""The `dcase` profile's training step against the official DCASE 2024 baseline's data path, re-implemented.

    python benchmarks/bench_official_loop.py [--home HOME] [--rounds 5] [--batch 256] [--out benchmarks/official_loop.csv]

The official baseline's code cannot run on this project's machines, so this times **our own
re-implementation of its per-step work**, not the official code: each training item is its 44.1
kHz wav file read from disk (the official Dataset's ``__getitem__``), rolled by a whole number of
samples up to ±4,410 (its time-shift wrapper); the batch is resampled to 32 kHz and turned into
the log-mel in the training step (its ``mel_forward``), then frequency-masked and mixed by
Freq-MixStyle before the step. Variants bound the official loop: ``official, wav read per
step`` (DataLoader workers that overlap nothing, as on a machine with no spare core),
``official, wav pre-decoded`` (workers that hide all decoding, as on a machine with cores to
spare), both on ascbench's channels-last network, and ``official, wav read per step, NCHW`` on
the eager NCHW network the official code trains. ascbench's training loop also keeps freed
memory in the process (``ascbench.training.allocator``); no arm here does, so the ascbench arms
are, if anything, slower than in a real run. Against them: ``ascbench dcase`` (the cached 32 kHz waveform rolled by whole samples, the
batch's mel computed: the ``dcase`` profile's default) and ``ascbench frames`` (the cached
log-mel rolled by whole frames). Same network, optimizer, batch and augmentations in every arm;
arms alternate, ``rounds`` times each, after a warm-up step each.

Then whole epochs, ``--epoch-rounds`` times each, alternated: the official-style loop (NCHW,
wavs read per step) with its validation on the test split after the epoch, as the official
code validates every epoch, against the ``dcase`` profile's epoch, which has none (ascbench
evaluates once, after training); written to ``<out>_epochs.csv``.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from bench_roll import alternate, arguments, report, step_bench

from ascbench.data.layout import SAMPLE_RATE
from ascbench.data.reader import load_split
from ascbench.features.audio import read_batch
from ascbench.training.augment import freq_mask, freq_mixstyle

OFFICIAL_ROLL = 4_410
"""The official time shift: up to ±0.1 s in whole 44.1 kHz samples."""


def main() -> None:
    args = arguments(__doc__, "official_loop.csv")

    bench = step_bench(args.home, args.batch)
    rng = np.random.default_rng(0)
    paths = [bench.dataset.root / name for name in bench.filenames]
    decoded = read_batch(paths).numpy()
    dcase = bench.pipeline("waveform")
    frames = bench.pipeline("frames")
    layout, config, frontend = dcase.layout, dcase.config, bench.features.frontend

    def official(read_per_step: bool, batch_paths: list[Path] = paths) -> torch.Tensor:
        waves = read_batch(batch_paths).numpy() if read_per_step else decoded
        rolled = np.stack([np.roll(w, int(s)) for w, s in zip(waves, rng.integers(-OFFICIAL_ROLL, OFFICIAL_ROLL + 1, len(waves)))])
        x = frontend.compute(torch.from_numpy(rolled), SAMPLE_RATE).unsqueeze(1)  # resample 44.1 -> 32 kHz, log-mel
        x = freq_mask(x, rng, config.freq_mask, layout.freq_dim, layout.silence)
        return freq_mixstyle(x, rng, config.fms_p, config.fms_alpha, layout.freq_dim)

    nchw = copy.deepcopy(bench.model).to(memory_format=torch.contiguous_format)  # the official code's eager NCHW
    arms = {
        "official, wav read per step, NCHW": (lambda: official(True), nchw),
        "official, wav read per step": lambda: official(True),
        "official, wav pre-decoded": lambda: official(False),
        "ascbench dcase (waveform roll)": lambda: dcase.train_inputs(bench.rows, None, rng),
        "ascbench frames (frame roll)": lambda: frames.train_inputs(bench.rows, None, rng),
    }
    report(alternate(bench, arms, args.rounds, "arm"), "arm", args.out, len(bench.rows))

    # Whole epochs: the official loop validates on the test split after every epoch; ascbench
    # evaluates once, after training. Full batches of the split's training clips in both.
    split = load_split(bench.dataset, 0.25)
    train = [c.filename for c in split.train][: len(split.train) // args.batch * args.batch]
    batches = [train[i : i + args.batch] for i in range(0, len(train), args.batch)]
    test_paths = [bench.dataset.root / c.filename for c in split.test]

    def official_epoch() -> None:
        for names in batches:
            bench.step(lambda names=names: official(True, [bench.dataset.root / n for n in names]), nchw)
        nchw.eval()
        with torch.no_grad():
            for i in range(0, len(test_paths), args.batch):
                nchw(frontend.compute(read_batch(test_paths[i : i + args.batch]), SAMPLE_RATE).unsqueeze(1))
        nchw.train()

    def ascbench_epoch() -> None:
        for names in batches:
            bench.step(lambda rows=bench.features.rows(names): dcase.train_inputs(rows, None, rng))

    epochs = {f"official-style epoch (NCHW, validation on {len(test_paths)} test clips)": official_epoch,
              "ascbench dcase epoch (waveform roll, no validation)": ascbench_epoch}  # fmt: skip
    results = []
    for round_ in range(args.epoch_rounds):
        for name, epoch in epochs.items():
            started = time.perf_counter()
            epoch()
            seconds = time.perf_counter() - started
            results.append({"epoch": name, "round": round_, "seconds": round(seconds, 3), "training_clips_per_second": round(len(train) / seconds, 1)})
    report(results, "epoch", args.out.with_name(args.out.stem + "_epochs.csv"), len(train), unit="epoch")


if __name__ == "__main__":
    main()
