"""The `dcase` profile's training step against the official DCASE 2024 baseline's data path, re-implemented.

    python benchmarks/bench_official_loop.py [--home HOME] [--rounds 5] [--batch 256] [--memory-reuse] [--out benchmarks/official_loop.csv]

The official baseline's code cannot run on this project's machines, so this times **our own
re-implementation of its per-step work**, not the official code: each training item is its 44.1
kHz wav file read from disk (the official Dataset's ``__getitem__``), rolled by a whole number of
samples up to ±4,410 (its time-shift wrapper); the batch is resampled to 32 kHz and turned into
the log-mel in the training step (its ``mel_forward``), then frequency-masked and mixed by
Freq-MixStyle before the step. Variants bound the official loop: ``official, wav read per
step`` (DataLoader workers that overlap nothing, as on a machine with no spare core),
``official, wav pre-decoded`` (workers that hide all decoding, as on a machine with cores to
spare), both on ascbench's channels-last network, and ``official, wav read per step, NCHW`` on
the eager NCHW network the official code trains. Against them: ``ascbench dcase`` (the cached
32 kHz waveform rolled by whole samples, the batch's mel computed: the ``dcase`` profile's
default) and ``ascbench frames`` (the cached log-mel rolled by whole frames). The official arms
compute the batch's mel with a torchaudio ``MelSpectrogram`` of their own, as the official
``mel_forward`` does. Same network, optimizer, batch and augmentations in every arm;
arms alternate, ``rounds`` times each, after a warm-up step each.

Then whole epochs, ``--epoch-rounds`` times each, alternated: the official-style loop (NCHW,
wavs read per step) with its validation on the test split after the epoch, as the official
code validates every epoch, against the ``dcase`` profile's epoch, which has none (ascbench
evaluates once, after training); written to ``<out>_epochs.csv``.

ascbench's training loop keeps freed memory in the process on a CPU
(``ascbench.training.allocator``), which the official loop, a plain PyTorch loop, does not. One
process cannot time both allocator settings alternated, so by default no arm keeps freed memory
and with ``--memory-reuse`` every arm does: the official loop as it runs is the first run's
official arms, ascbench's as it runs the second run's ascbench arms
(docs/experiments/official-recipe.md compares them).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchaudio

from bench_roll import alternate, arguments, report, step_bench

from ascbench.data.layout import SAMPLE_RATE
from ascbench.data.reader import load_split
from ascbench.features import frontends
from ascbench.features.audio import read_batch
from ascbench.training.allocator import reuse_freed_memory
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
    official_mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=frontend.sample_rate, n_fft=frontend.n_fft, win_length=frontend.win_length,
        hop_length=frontend.hop_length, n_mels=frontend.n_mels, f_min=frontend.f_min, f_max=frontend.f_max, power=2.0,
    )  # fmt: skip

    def official_features(waves: torch.Tensor) -> torch.Tensor:
        """Resample 44.1 -> 32 kHz and the log-mel of the whole batch in one call."""
        x = frontends.resample(waves.float(), SAMPLE_RATE, frontend.sample_rate)
        return torch.log(official_mel(x) + frontend.log_offset).unsqueeze(1)

    def official(read_per_step: bool, batch_paths: list[Path] = paths) -> torch.Tensor:
        waves = read_batch(batch_paths).numpy() if read_per_step else decoded
        rolled = np.stack([np.roll(w, int(s)) for w, s in zip(waves, rng.integers(-OFFICIAL_ROLL, OFFICIAL_ROLL + 1, len(waves)))])
        x = official_features(torch.from_numpy(rolled))
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
    with reuse_freed_memory(args.memory_reuse):
        steps = alternate(bench, arms, args.rounds, "arm")
    report(steps, "arm", args.out, len(bench.rows))

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
                nchw(official_features(read_batch(test_paths[i : i + args.batch])))
        nchw.train()

    def ascbench_epoch() -> None:
        for names in batches:
            bench.step(lambda rows=bench.features.rows(names): dcase.train_inputs(rows, None, rng))

    epochs = {f"official-style epoch (NCHW, validation on {len(test_paths)} test clips)": official_epoch,
              "ascbench dcase epoch (waveform roll, no validation)": ascbench_epoch}  # fmt: skip
    with reuse_freed_memory(args.memory_reuse):
        results = timed_epochs(epochs, args.epoch_rounds, len(train))
    report(results, "epoch", args.out.with_name(args.out.stem + "_epochs.csv"), len(train), unit="epoch")


def timed_epochs(epochs: dict[str, Callable[[], None]], rounds: int, clips: int) -> list[dict]:
    """Each epoch function run ``rounds`` times, alternated: one row per epoch."""
    results = []
    for round_ in range(rounds):
        for name, epoch in epochs.items():
            started = time.perf_counter()
            epoch()
            seconds = time.perf_counter() - started
            results.append({"epoch": name, "round": round_, "seconds": round(seconds, 3), "training_clips_per_second": round(clips / seconds, 1)})
    return results


if __name__ == "__main__":
    main()
