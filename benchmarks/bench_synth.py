"""Writing synth-tau22: ``ascbench.data.synth.generate`` for the tiny and small presets, seed 0.

Goals on two cores: small (5,460 clips) within 60 s, tiny (1,220 clips) in a few seconds.
Each round writes into a fresh temporary directory (so nothing is replaced or skipped).

Measured 2026-12-01 on the project's 2-core AMD EPYC machine, **shared with other helpers'
jobs** (load average in brackets), ``pytest benchmarks/bench_synth.py --benchmark-only``:

- small: 87.0 s [7.4]; 88.3 s [1.5-3.6] in a plain script. Over the 60-s goal under this load.
- tiny: 20.7 s (median of 3) [7.9]; 29.0 s [1.5]. With ``workers=1`` tiny took 16.0 and 16.2 s
  against 28.0 and 22.7 s with the default 2 [6] -- on a busy machine the second process costs
  more than it brings at this size.
"""

from __future__ import annotations

import os
from itertools import count
from pathlib import Path

import pytest

from ascbench.data.reader import load_dataset
from ascbench.data.synth import SynthConfig, generate

ROUNDS = {"tiny": 3, "small": 1}


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_generate(benchmark, size: str, tmp_path: Path) -> None:
    config = SynthConfig.preset(size, seed=0)
    fresh = (tmp_path / f"{size}-{i}" for i in count())

    def setup() -> tuple[tuple, dict]:
        return (config, next(fresh)), {"progress": False}

    out = benchmark.pedantic(generate, setup=setup, rounds=ROUNDS[size], iterations=1)
    clips = len(load_dataset(out).clips)
    benchmark.extra_info.update(clips=clips, workers=config.workers, load_average_1min=os.getloadavg()[0])
    assert clips == sum(config.clips_per_scene().values()) * 10
