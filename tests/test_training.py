"""The training engine: it learns, is deterministic, resumes exactly, and stops loudly on NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import BaselineMel, RawWaveform
from ascbench.training import (
    EpochEnd,
    TrainConfig,
    TrainingData,
    TrainingDiverged,
    UNLABELED,
    UnlabeledPool,
    get_profile,
    predict,
    seed_everything,
    train,
)
from ascbench.training.checkpoint import CHECKPOINT_FILE, CheckpointWarning
from baselines.cp_mobile import cp_mobile

CLASSES = 4
# One thread: the tests run on a shared two-core machine, where two threads per op mostly wait.
FAST = TrainConfig(
    epochs=2, batch_size=16, lr=5e-3, warmup_steps=2, fms_p=0.4, roll_s=0.05, freq_mask=4, adir_p=0.5, num_threads=1
)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))


def learnable_data(tmp_path: Path, n: int = 64, seed: int = 0) -> TrainingData:
    """Log-mel-like clips whose class is a raised band of 8 mel bins, recorded by devices a and b."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    x = rng.normal(-4.0, 1.0, size=(n, 32, 24)).astype(np.float32)
    for i, label in enumerate(labels):
        x[i, 8 * label : 8 * label + 8] += 2.5
    frontend = BaselineMel(n_fft=512, win_length=512, hop_length=500, n_mels=32)
    features = CachedFeatures(frontend, tmp_path / "features", x, tuple(f"audio/clip-{i}.wav" for i in range(n)))
    devices = np.where(np.arange(n) % 3 == 0, "b", "a")
    return TrainingData(features, np.arange(n), labels, devices)


def tiny_model() -> nn.Module:
    seed_everything(0)
    return cp_mobile(base_channels=8, n_blocks=(1, 1, 1), n_classes=CLASSES)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


def test_profiles() -> None:
    dcase = get_profile("dcase")
    assert (dcase.epochs, dcase.batch_size, dcase.lr, dcase.weight_decay, dcase.warmup_steps) == (150, 256, 0.005, 1e-4, 2000)
    assert (dcase.fms_p, dcase.fms_alpha, dcase.roll_s, dcase.freq_mask) == (0.4, 0.3, 0.1, 48)
    assert get_profile("smoke").max_steps is not None
    with pytest.raises(ValueError, match="smoke, quick, dcase"):
        get_profile("fast")
    with pytest.raises(ValueError, match="fms_p must be in"):
        TrainConfig(fms_p=1.5)


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    data = learnable_data(tmp_path)
    model = tiny_model()
    before = F.cross_entropy(torch.from_numpy(predict(model, data.features, data.rows, "cpu")), torch.from_numpy(data.labels))
    # time roll and frequency masks on; Freq-MixStyle would hide this toy task's per-band cue
    config = FAST.replace(epochs=12, lr=2e-2, adir_p=0.0, fms_p=0.0)
    result = train(model, data, config, tmp_path / "run", seed=0, device="cpu", progress=False)
    logits = predict(result.model, data.features, data.rows, "cpu")
    after = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.labels))
    assert result.steps == 12 * 4 and len(result.history) == 12
    assert result.history[-1].loss < 0.6 * result.history[0].loss
    assert after < 0.6 * before
    assert (logits.argmax(1) == data.labels).mean() > 0.9


def test_same_seed_same_weights_and_predictions(tmp_path: Path) -> None:
    data = learnable_data(tmp_path)
    runs = []
    for name in ("one", "two"):
        model = train(tiny_model(), data, FAST, tmp_path / name, seed=3, device="cpu", progress=False).model
        runs.append((state(model), predict(model, data.features, data.rows, "cpu")))
    assert_same_weights(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    other = train(tiny_model(), data, FAST, tmp_path / "three", seed=4, device="cpu", progress=False).model
    assert not torch.equal(state(other)["head.0.weight"], runs[0][0]["head.0.weight"])


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    data = learnable_data(tmp_path)
    reference = train(tiny_model(), data, FAST, tmp_path / "straight", seed=1, device="cpu", progress=False)

    calls: list[tuple[int, bool]] = []
    crashed: list[bool] = []

    def crash_once(event: EpochEnd) -> None:
        calls.append((event.epoch, event.replay))
        if not crashed:
            crashed.append(True)
            raise Interrupt  # like Ctrl-C or a kill right after the epoch-1 checkpoint

    workdir = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        train(tiny_model(), data, FAST, workdir, seed=1, device="cpu", progress=False, on_epoch_end=crash_once)
    assert (workdir / CHECKPOINT_FILE).is_file()
    resumed = train(tiny_model(), data, FAST, workdir, seed=1, device="cpu", progress=False, on_epoch_end=crash_once)
    assert resumed.resumed_from == 1 and resumed.steps == reference.steps
    assert calls == [(1, False), (1, False), (2, False)]
    assert_same_weights(state(resumed.model), state(reference.model))
    assert [h.loss for h in resumed.history] == [h.loss for h in reference.history]

    # a finished run's call returns the trained model without training; hooks before the last replay
    calls.clear()
    again = train(tiny_model(), data, FAST, workdir, seed=1, device="cpu", progress=False, on_epoch_end=crash_once)
    assert again.resumed_from == 2 and calls == [(1, True), (2, False)]
    assert_same_weights(state(again.model), state(reference.model))


def test_checkpoint_of_another_run_is_not_resumed(tmp_path: Path) -> None:
    data = learnable_data(tmp_path)
    config = FAST.replace(max_steps=2)
    train(tiny_model(), data, config, tmp_path / "run", seed=1, device="cpu", progress=False)
    with pytest.warns(CheckpointWarning, match="different run"):
        result = train(tiny_model(), data, config, tmp_path / "run", seed=2, device="cpu", progress=False)
    assert result.resumed_from == 0
    (tmp_path / "run" / CHECKPOINT_FILE).write_bytes(b"torn")
    with pytest.warns(CheckpointWarning, match="unreadable"):
        assert train(tiny_model(), data, config, tmp_path / "run", seed=2, device="cpu", progress=False).resumed_from == 0


def test_nan_loss_raises_training_diverged(tmp_path: Path) -> None:
    data = learnable_data(tmp_path)

    def poisoned(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        loss = F.cross_entropy(model(inputs), labels)
        return loss * float("nan") if step == 5 else loss

    with pytest.raises(TrainingDiverged, match=r"nan at epoch 2/2, step 6"):
        train(tiny_model(), data, FAST, tmp_path / "run", seed=0, device="cpu", progress=False, loss_fn=poisoned)


def test_custom_loss_sees_rows_and_steps_and_max_steps_caps_training(tmp_path: Path) -> None:
    data = learnable_data(tmp_path, n=40)
    seen: list[tuple[int, int]] = []

    def recording(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        assert torch.equal(torch.from_numpy(data.labels[rows.numpy()]), labels)
        seen.append((step, len(rows)))
        return F.cross_entropy(model(inputs), labels)

    config = FAST.replace(epochs=5, max_steps=4)
    result = train(tiny_model(), data, config, tmp_path / "run", seed=0, device="cpu", progress=False, loss_fn=recording)
    assert seen == [(0, 16), (1, 16), (2, 8), (3, 16)]  # 40 clips: 16 + 16 + 8 per epoch
    assert result.steps == 4 and result.epochs == 2


def test_a_step_floor_sizes_the_epochs_to_the_training_set() -> None:
    floored = FAST.replace(epochs=20, batch_size=64, min_steps=250)
    assert floored.sized_for(170).epochs == 84  # 3 steps per epoch: 84 epochs are 252 steps
    assert floored.sized_for(800).epochs == 20  # 13 per epoch: 20 epochs already make 260
    sized = floored.sized_for(170)
    assert sized.min_steps is None and sized.sized_for(170) == sized  # sizing twice changes nothing
    assert FAST.sized_for(10) is FAST  # no floor: as given
    with pytest.raises(ValueError, match="min_steps must be >= 1"):
        TrainConfig(min_steps=0)
    assert get_profile("quick").min_steps is not None


def test_training_meets_the_step_floor_and_max_steps_still_caps_it(tmp_path: Path) -> None:
    data = learnable_data(tmp_path, n=40)  # 3 steps per epoch at batch 16
    result = train(tiny_model(), data, FAST.replace(epochs=1, min_steps=7), tmp_path / "floor", seed=0, device="cpu", progress=False)
    assert (result.epochs, result.steps, len(result.history)) == (3, 9, 3)
    capped = FAST.replace(epochs=1, min_steps=7, max_steps=5)
    result = train(tiny_model(), data, capped, tmp_path / "capped", seed=0, device="cpu", progress=False)
    assert (result.epochs, result.steps) == (2, 5)


class WaveNet(nn.Module):
    """A waveform classifier: strided 1-D convs and pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(1, 8, 64, stride=32), nn.BatchNorm1d(8), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.unsqueeze(1))


def test_waveform_inputs_train_with_adir_and_predict(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 32
    waves = rng.normal(0, 0.1, size=(n, 4000)).astype(np.float32)
    cache = CachedFeatures(RawWaveform(16_000), tmp_path / "wave", waves, tuple(f"audio/{i}.wav" for i in range(n)))
    data = TrainingData(cache, np.arange(n), np.arange(n) % CLASSES, np.array(["a", "b"] * (n // 2)))
    seed_everything(0)
    result = train(WaveNet(), data, FAST.replace(adir_p=1.0), tmp_path / "run", seed=0, device="cpu", progress=False)
    assert result.steps == 4 and all(np.isfinite(h.loss) for h in result.history)
    assert predict(result.model, cache, np.arange(5), "cpu").shape == (5, CLASSES)


def test_training_data_is_validated(tmp_path: Path) -> None:
    data = learnable_data(tmp_path, n=8)
    with pytest.raises(ValueError, match="rows\\[1\\] = 99"):
        TrainingData(data.features, np.array([0, 99]), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels of shape"):
        TrainingData(data.features, np.arange(3), np.arange(2))


def test_an_unlabeled_pool_joins_every_epoch_with_a_fresh_draw(tmp_path: Path) -> None:
    """Each epoch holds every labelled clip once plus ``per_epoch`` pool clips labelled UNLABELED,
    drawn anew each epoch, and the loss sees them; without a pool the order is the plain shuffle."""
    data = learnable_data(tmp_path, n=48)
    labelled, pool_rows = np.arange(16), np.arange(16, 48)
    plain = TrainingData(data.features, labelled, data.labels[labelled], data.devices[labelled])
    rows, labels, devices = plain.epoch(torch.Generator().manual_seed(3))
    assert np.array_equal(rows, labelled[torch.randperm(16, generator=torch.Generator().manual_seed(3)).numpy()])
    assert np.array_equal(labels, data.labels[rows]) and np.array_equal(devices, data.devices[rows])

    pooled = TrainingData(data.features, labelled, data.labels[labelled], data.devices[labelled],
                          pool=UnlabeledPool(pool_rows, data.devices[pool_rows], per_epoch=8))  # fmt: skip
    assert len(pooled) == 24
    seen: list[np.ndarray] = []

    def recording(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        rows_np, labels_np = rows.numpy(), labels.numpy()
        in_pool = np.isin(rows_np, pool_rows)
        assert np.all(labels_np[in_pool] == UNLABELED) and np.array_equal(labels_np[~in_pool], data.labels[rows_np[~in_pool]])
        seen.append(rows_np)
        logits = model(inputs)
        return F.cross_entropy(logits[~torch.from_numpy(in_pool)], labels[~torch.from_numpy(in_pool)]) + logits[torch.from_numpy(in_pool)].pow(2).mean()

    result = train(tiny_model(), pooled, FAST.replace(epochs=3), tmp_path / "run", seed=0, device="cpu", progress=False, loss_fn=recording)
    assert result.steps == 6  # 24 clips per epoch, batch 16
    epochs = [np.concatenate(seen[i : i + 2]) for i in range(0, 6, 2)]
    for rows in epochs:
        assert sorted(rows[np.isin(rows, labelled)]) == list(labelled)
        assert np.isin(rows, pool_rows).sum() == 8 and len(set(rows)) == 24
    draws = [frozenset(rows[np.isin(rows, pool_rows)]) for rows in epochs]
    assert len(set(draws)) == 3  # a fresh draw each epoch


def test_an_unlabeled_pool_needs_a_loss_that_uses_it(tmp_path: Path) -> None:
    data = learnable_data(tmp_path, n=24)
    pool = UnlabeledPool(np.arange(16, 24), data.devices[16:], per_epoch=4)
    pooled = TrainingData(data.features, np.arange(16), data.labels[:16], data.devices[:16], pool=pool)
    with pytest.raises(ValueError, match="need a loss_fn"):
        train(tiny_model(), pooled, FAST, tmp_path / "run", seed=0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="per_epoch must be in 1..8"):
        UnlabeledPool(np.arange(16, 24), None, per_epoch=9)
    with pytest.raises(ValueError, match="for both the labelled clips and the pool"):
        TrainingData(data.features, np.arange(16), data.labels[:16], data.devices[:16], pool=UnlabeledPool(np.arange(16, 24), None, 4))
    with pytest.raises(ValueError, match="UnlabeledPool.rows\\[0\\] is not a row"):
        TrainingData(data.features, np.arange(16), data.labels[:16], pool=UnlabeledPool(np.array([99]), None, 1))


def test_training_keeps_the_thread_budget_its_caller_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``num_threads=None`` trains with the process's torch thread count, capped at its cores: a
    Ray task that reserved one CPU sets one thread, and training must not take every core."""
    from ascbench.training import engine

    seen: list[int] = []

    def loss(m: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, step: int) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return F.cross_entropy(m(inputs), labels)

    monkeypatch.setattr(engine, "available_cores", lambda: 4)  # as on a four-core machine
    before = torch.get_num_threads()
    try:
        for caller, num_threads, expected in ((1, None, 1), (3, None, 3), (8, None, 4), (1, 2, 2)):
            torch.set_num_threads(caller)
            config = FAST.replace(num_threads=num_threads, max_steps=1)
            train(tiny_model(), learnable_data(tmp_path), config, tmp_path / f"run{caller}-{num_threads}", seed=0, device="cpu",
                  progress=False, loss_fn=loss)  # fmt: skip
            assert seen[-1] == expected, (caller, num_threads)
            assert torch.get_num_threads() == caller  # restored after training
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("warmup", "expected"), [(1, None), (6, "is 75% of this run's 8 steps"), (20, "covers all 8 steps")])
def test_a_warmup_too_long_for_the_split_is_said_and_recorded(tmp_path: Path, warmup: int, expected: str | None) -> None:
    from ascbench.recipes.supervised import training_notes

    lines: list[str] = []
    config = FAST.replace(epochs=2, warmup_steps=warmup, adir_p=0.0, fms_p=0.0)
    result = train(tiny_model(), learnable_data(tmp_path), config, tmp_path / "run", seed=0, device="cpu", progress=False, log=lines.append)
    assert result.steps == 8
    warned = [line for line in lines if line.startswith("WARNING: warm-up")]
    notes = training_notes(result)
    if expected is None:  # 1 of 8 steps: about the official recipe's share, nothing to say
        assert not warned and "warmup_warning" not in notes
        return
    assert len(warned) == 1 and expected in warned[0]
    assert notes["warmup_warning"] == warned[0]
