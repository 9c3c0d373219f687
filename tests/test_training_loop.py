"""The one training loop (:mod:`ascbench.training.loop`): the students, teacher fine-tuning, BEATs
and HuBERT pre-training all run it, so they share its schedule and its resume.

The kill is a ``Killed`` raised by the loop's own save right after it wrote the epoch-1
checkpoint (what a kill -9 at that moment leaves: checkpoints are only ever replaced whole).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import KaldiFbank
from ascbench.distill.teachers.beats_pretrain import PRETRAIN_CONFIGS, RESUME_FILE, BEATsPretrainConfig, pretrain_beats
from ascbench.distill.teachers.finetune import FinetuneConfig, finetune_teacher
from ascbench.distill.teachers.hubert_pretrain import HubertPretrainConfig, pretrain_hubert
from ascbench.training import TrainConfig, TrainingDiverged, train
from ascbench.training import loop
from ascbench.training.checkpoint import CHECKPOINT_FILE
from ascbench.training.loop import Checkpointing, StepPlan, fit, shuffled_batches, warmup_cosine
from test_faults_teacher_resume import TINY as TINY_HUBERT
from test_faults_teacher_resume import assert_same_state, new_classifier, state, tone_clips, waves
from test_training import learnable_data, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

STUDENT = TrainConfig(epochs=2, batch_size=16, lr=5e-3, warmup_steps=2, fms_p=0.4, roll_s=0.05, freq_mask=4, adir_p=0.5, num_threads=1)
FINETUNE = FinetuneConfig(epochs=2, batch_size=8, lr=3e-3, encoder_lr=1e-3, warmup_fraction=0.5)
BEATS = BEATsPretrainConfig(
    model=replace(PRETRAIN_CONFIGS["small"].model, encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64, embed_dim=16,
                  conv_pos=16, conv_pos_groups=4),
    codebook_size=16, codebook_dim=8, epochs=2, batch_size=8, lr=3e-3, stats_clips=16,
)  # fmt: skip
HUBERT = HubertPretrainConfig(model_overrides=TINY_HUBERT, clusters=4, epochs=2, batch_size=8, lr=2e-3, final_dim=8, kmeans_frames=400)


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each caller of the loop as ``run(workdir) -> trained weights``, on tiny data."""
    home = tmp_path_factory.mktemp("data")
    students = learnable_data(home, n=32)
    clips, labels = tone_clips(16, seed=3)
    wave_cache = waves(clips, home / "waves")
    fbank = torch.randn(16, 1, 8, generator=torch.Generator().manual_seed(0)).repeat_interleave(16, dim=-1) + 0.1 * torch.randn(16, 98, 128)
    fbank_cache = CachedFeatures(KaldiFbank(), home / "fbank", fbank.numpy(), tuple(f"audio/{i}.wav" for i in range(16)))
    return {
        "student": lambda work: state(train(tiny_model(), students, STUDENT, work, seed=1, device="cpu", progress=False).model),
        "finetune": lambda work: state(finetune_teacher(new_classifier(), wave_cache, np.arange(16), labels, FINETUNE, seed=0,
                                                        progress=False, workdir=work)),  # fmt: skip
        "beats": lambda work: state(pretrain_beats(fbank_cache, np.arange(16), BEATS, work, seed=5, progress=False)),
        "hubert": lambda work: state(pretrain_hubert(wave_cache, np.arange(16), HUBERT, work, seed=0, progress=False)),
    }


@pytest.mark.parametrize("caller", ["student", "finetune", "beats", "hubert"])
def test_every_caller_is_killed_and_resumed_through_the_shared_loop(callers, caller, tmp_path, monkeypatch) -> None:
    run = callers[caller]
    want = run(tmp_path / "straight")

    saved, resumed = [], []
    real_save, real_resume = loop._save, loop._resume

    def save_then_die(state, epoch):
        real_save(state, epoch)
        saved.append((state.checkpoint.path, epoch))
        raise Killed

    monkeypatch.setattr(loop, "_save", save_then_die)
    with pytest.raises(Killed):
        run(tmp_path / "killed")
    (path, epoch), = saved
    assert epoch == 1 and path.is_file() and tmp_path / "killed" in path.parents
    assert path.name in (CHECKPOINT_FILE, RESUME_FILE, f"iter1.{CHECKPOINT_FILE}")

    monkeypatch.setattr(loop, "_save", real_save)
    monkeypatch.setattr(loop, "_resume", lambda state: resumed.append(real_resume(state)) or resumed[-1])
    torch.manual_seed(1234)  # a new process: the global generators hold whatever ran before
    np.random.seed(1234)
    assert_same_state(run(tmp_path / "killed"), want)
    assert resumed == [1]  # epoch 1 came from the checkpoint


def test_students_and_teachers_follow_one_lr_curve(callers, tmp_path, monkeypatch) -> None:
    """The students' warm-up in steps and the teachers' as a fraction meet in one schedule:
    2 warm-up steps of 4 (students) and half of 4 (fine-tuning) give the same LR per step,
    the students' historical one (transformers' cosine schedule with warm-up)."""
    from transformers import get_cosine_schedule_with_warmup

    made, curves = [], []
    real_schedule, real_step = loop.warmup_cosine, loop._optimizer_step
    monkeypatch.setattr(loop, "warmup_cosine", lambda warmup, total: made.append((warmup, total)) or real_schedule(warmup, total))

    def recording_step(state, loss, params):
        curves[-1].append(state.optimizer.param_groups[0]["lr"] / state.optimizer.param_groups[0]["initial_lr"])
        real_step(state, loss, params)

    monkeypatch.setattr(loop, "_optimizer_step", recording_step)
    for caller in ("student", "finetune"):  # both 4 steps: 32 clips in 16s, 16 clips in 8s, 2 epochs
        curves.append([])
        callers[caller](tmp_path / caller)
    assert made == [(2, 4), (2, 4)]
    assert curves[0] == curves[1]

    reference = get_cosine_schedule_with_warmup(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 2, 4)
    assert curves[0] == [reference.lr_lambdas[0](step) for step in range(4)]
    assert curves[0] == [0.0, 0.5, 1.0, 0.5]


def test_warmup_cosine_decays_to_zero_and_a_fraction_converts_at_the_call_site() -> None:
    factor = warmup_cosine(4, 40)
    assert [factor(step) for step in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert factor(40) == 0.0 and factor(41) == 0.0  # no second rise past the end
    assert warmup_cosine(0, 10)(0) == 1.0
    fraction = warmup_cosine(round(0.1 * 40), 40)
    assert [fraction(step) for step in range(41)] == [factor(step) for step in range(41)]


def test_fit_refuses_another_fingerprint_and_reports_divergence(tmp_path) -> None:
    """A bare :func:`fit`: metrics averaged into the history, a foreign checkpoint refused, a
    NaN loss named by epoch and step."""
    x, y = torch.randn(12, 3), torch.tensor([0, 1] * 6)

    def run(fingerprint: str, poison_at: int | None = None):
        torch.manual_seed(0)
        model = nn.Linear(3, 2)
        order = np.random.default_rng(0)

        def loss_fn(index, step):
            logits = model(x[index])
            loss = F.cross_entropy(logits, y[index])
            return loss * float("nan") if step == poison_at else loss, {"accuracy": (logits.argmax(-1) == y[index]).float().mean()}

        checkpoint = Checkpointing(tmp_path / "state.pt", fingerprint, {"order": order})
        return fit(model, torch.optim.AdamW(model.parameters(), lr=0.1), shuffled_batches(12, 5, order), loss_fn,
                   StepPlan.of(12, 5, epochs=2), 1, device=torch.device("cpu"), grad_clip=1.0, checkpoint=checkpoint)  # fmt: skip

    result = run("a")
    assert (result.steps, result.epochs, result.resumed_from) == (6, 2, 0)
    assert [h.epoch for h in result.history] == [1, 2] and set(result.history[0].metrics) == {"accuracy"}
    assert run("a").resumed_from == 2
    with pytest.warns(UserWarning, match="different run"):
        assert run("b").resumed_from == 0
    (tmp_path / "state.pt").unlink()
    with pytest.raises(TrainingDiverged, match=r"nan at epoch 2/2, step 5"):
        run("c", poison_at=4)


def test_a_checkpoint_restores_its_random_states_on_the_cpu(tmp_path, monkeypatch) -> None:
    """The checkpoint is read onto the CPU whatever the training device, so the RNG states reach
    ``torch.set_rng_state`` as the CPU ByteTensors it takes (a CUDA one is refused)."""
    from ascbench.training import checkpoint as checkpoint_module

    loads = []
    real_load = torch.load
    monkeypatch.setattr(checkpoint_module.torch, "load", lambda *a, **k: loads.append(k.get("map_location")) or real_load(*a, **k))
    data = learnable_data(tmp_path, n=16)
    train(tiny_model(), data, STUDENT, tmp_path / "run", seed=0, device="cpu", progress=False)
    train(tiny_model(), data, STUDENT, tmp_path / "run", seed=0, device="cpu", progress=False)
    assert loads == ["cpu"]
