"""The baseline-mel feature cache of synth-tau22 small: building it, and what reading from it saves.

- ``test_build_mel_cache``: :func:`ascbench.features.cache.load_features` from nothing (a fresh
  home each round): decode 5,460 wavs, resample 44.1 -> 32 kHz, log-mel, write the memory-
  mapped array and its CRC-32. Goal on two cores: within 60 s.
- ``test_batch_from_cache`` / ``test_batch_from_wav``: one batch of 256 clips (a fixed random
  choice) as a ``[256, 256, 65]`` float32 tensor, read from the cache (page cache warm, as
  during training) versus computed from the wav files (decode, resample, mel), which is what a
  training step without the cache pays. The second reports ``ratio_wav_over_cache``.

Measured 2026-12-01 on the project's 2-core AMD EPYC machine, **shared with other helpers'
jobs** (load average in brackets), ``pytest benchmarks/bench_features.py --benchmark-only``:

- building the cache (5,460 clips, 363 MB): 53.1 s [7.5]; 62.3 s [3.6] in a plain script.
- a batch of 256 from the cache: 4.8 ms (median of 20); from the wavs: 2.31 s (median of 3),
  **482x** [7.7-7.9]. Computing features is what the cache takes out of a training step.
"""

from __future__ import annotations

import os
from itertools import count
from pathlib import Path

import numpy as np
import torch

from ascbench.data.dataset import Dataset
from ascbench.data.layout import SAMPLE_RATE
from ascbench.features.audio import read_batch
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.features.frontends import BaselineMel

BATCH = 256
_medians: dict[str, float] = {}
"""Median seconds of the batch benchmarks, for the ratio (the file's tests run in order)."""


def _rows(features: CachedFeatures) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(len(features), size=BATCH, replace=False))


def test_build_mel_cache(benchmark, small_dataset: Dataset, tmp_path: Path) -> None:
    homes = (tmp_path / f"home-{i}" for i in count())

    def setup() -> tuple[tuple, dict]:
        return (small_dataset, BaselineMel()), {"home": next(homes), "progress": False}

    features = benchmark.pedantic(load_features, setup=setup, rounds=1, iterations=1)
    assert features.built and features.array.shape == (len(small_dataset.clips), 256, 65)
    benchmark.extra_info.update(clips=len(features), load_average_1min=os.getloadavg()[0])


def test_batch_from_cache(benchmark, small_mel: CachedFeatures) -> None:
    rows = _rows(small_mel)
    batch = benchmark.pedantic(small_mel.batch, args=(rows,), rounds=20, iterations=1, warmup_rounds=1)
    assert batch.shape == (BATCH, 256, 65)
    _medians["cache"] = benchmark.stats.stats.median
    benchmark.extra_info.update(load_average_1min=os.getloadavg()[0])


def test_batch_from_wav(benchmark, small_mel: CachedFeatures, small_dataset: Dataset) -> None:
    rows = _rows(small_mel)
    paths = [small_dataset.root / small_mel.filenames[row] for row in rows]
    frontend = BaselineMel()

    def compute() -> torch.Tensor:
        with torch.inference_mode():
            return frontend.compute(read_batch(paths), SAMPLE_RATE)

    batch = benchmark.pedantic(compute, rounds=3, iterations=1, warmup_rounds=1)
    # the same features as the cache holds (the cache computed them in batches of 64)
    torch.testing.assert_close(batch, small_mel.batch(rows), rtol=0, atol=1e-3)
    benchmark.extra_info.update(load_average_1min=os.getloadavg()[0])
    if "cache" in _medians:
        benchmark.extra_info["ratio_wav_over_cache"] = benchmark.stats.stats.median / _medians["cache"]
        print(f"\nbatch of {BATCH} from wav / from cache: {benchmark.extra_info['ratio_wav_over_cache']:.0f}x")
