"""The engine's CPU speed settings: channels-last by default, memory reuse changes no result.

Why they are on is measured in ``benchmarks/bench_training.py``; here: they are what runs, and
they keep the engine's guarantees (bit-identical reruns, exact resume).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import BaselineMel
from ascbench.training import EpochEnd, TrainConfig, TrainingData, seed_everything, train
from ascbench.training.checkpoint import CHECKPOINT_FILE
from baselines.cp_mobile import cp_mobile

CONFIG = TrainConfig(epochs=2, batch_size=16, lr=5e-3, warmup_steps=2, fms_p=0.5, roll_s=0.05, freq_mask=4, num_threads=1)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))


def data(tmp_path: Path, n: int = 40) -> TrainingData:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    x = rng.normal(-4.0, 1.0, size=(n, 32, 24)).astype(np.float32)
    for i, label in enumerate(labels):
        x[i, 8 * label : 8 * label + 8] += 2.5
    frontend = BaselineMel(n_fft=512, win_length=512, hop_length=500, n_mels=32)
    features = CachedFeatures(frontend, tmp_path / "features", x, tuple(f"audio/{i}.wav" for i in range(n)))
    return TrainingData(features, np.arange(n), labels)


def model() -> nn.Module:
    seed_everything(0)
    return cp_mobile(base_channels=8, n_blocks=(1, 1, 1), n_classes=4)


def weights(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_cpu_training_runs_channels_last_by_default(tmp_path: Path) -> None:
    seen: list[bool] = []

    def loss(m: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        out = m.stem(inputs)
        seen.append(out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())
        return F.cross_entropy(m.head(m.stages(out)), labels)

    result = train(model(), data(tmp_path), CONFIG.replace(max_steps=1), tmp_path / "cl", seed=0, device="cpu", progress=False, loss_fn=loss)
    off = train(model(), data(tmp_path), CONFIG.replace(max_steps=1, channels_last=False), tmp_path / "nchw", seed=0,
                device="cpu", progress=False, loss_fn=loss)
    assert seen == [True, False]
    # the model comes back in the default layout either way
    assert result.model.stem[0].conv.weight.is_contiguous() and off.model.stem[0].conv.weight.is_contiguous()


@pytest.mark.parametrize("threads", [1, 2])
def test_memory_reuse_changes_no_weight_and_reruns_are_identical(tmp_path: Path, threads: int) -> None:
    config = CONFIG.replace(num_threads=threads)
    runs = [
        weights(train(model(), data(tmp_path), config.replace(reuse_freed_memory=reuse), tmp_path / name, seed=1,
                      device="cpu", progress=False).model)
        for name, reuse in (("a", True), ("b", True), ("c", False))
    ]
    assert_same(runs[0], runs[1])
    assert_same(runs[0], runs[2])


class Interrupt(Exception):
    pass


def test_a_checkpoint_resumes_across_the_memory_setting(tmp_path: Path) -> None:
    straight = train(model(), data(tmp_path), CONFIG, tmp_path / "straight", seed=2, device="cpu", progress=False)

    def crash_after_first_epoch(event: EpochEnd) -> None:
        if event.epoch == 1:
            raise Interrupt

    workdir = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(model(), data(tmp_path), CONFIG, workdir, seed=2, device="cpu", progress=False, on_epoch_end=crash_after_first_epoch)
    assert (workdir / CHECKPOINT_FILE).is_file()
    resumed = train(model(), data(tmp_path), CONFIG.replace(reuse_freed_memory=False), workdir, seed=2, device="cpu", progress=False)
    assert resumed.resumed_from == 1
    assert_same(weights(resumed.model), weights(straight.model))
