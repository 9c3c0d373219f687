"""Fault tests: a killed teacher fine-tuning resumes from its last epoch, bit for bit, and never from
another configuration's checkpoint; the published stage leaves no checkpoint behind.

The kill is a KeyboardInterrupt raised at the first batch of epoch 2 (what Ctrl-C does; a kill -9
leaves the same files, since checkpoints are only ever replaced whole).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ascbench.features.cache import CachedFeatures
from ascbench.features.frontends import RawWaveform
from ascbench.distill.teachers import finetune as finetune_module
from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.distill.teachers.finetune import FinetuneConfig, finetune_teacher
from ascbench.distill.teachers.hubert import HubertTeacher, build_hubert, hubert_config, save_hubert
from ascbench.training.checkpoint import CHECKPOINT_FILE, CheckpointWarning

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
            num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)  # fmt: skip
CLIPS, BATCH = 32, 8
STEPS_PER_EPOCH = CLIPS // BATCH
CONFIG = FinetuneConfig(epochs=2, batch_size=BATCH, lr=3e-3, encoder_lr=1e-3)
"""Time roll on (the loss function's generator), HuBERT's SpecAugment (numpy's global RNG) and
dropout (torch's): every random stream a resume has to restore is drawn from."""


def tone_clips(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    t = np.arange(16_000) / 16_000
    clips = 0.3 * np.sin(2 * np.pi * np.array([200.0, 500.0, 1200.0, 3000.0])[labels, None] * t)
    return (clips + 0.01 * rng.standard_normal(clips.shape)).astype(np.float32), labels.astype(np.int64)


def waves(array: np.ndarray, path: Path) -> CachedFeatures:
    names = tuple(f"audio/clip-{i}.wav" for i in range(len(array)))
    return CachedFeatures(frontend=RawWaveform(16_000), path=path, array=array, filenames=names)


def new_classifier() -> TeacherClassifier:
    """The same starting point every time: the encoder and the heads (drawn from torch's global
    RNG, as the teacher stage does under the fine-tuning seed)."""
    encoder = HubertTeacher(build_hubert(hubert_config("small", **TINY), seed=0))
    torch.manual_seed(0)
    return TeacherClassifier(encoder, num_classes=4)


class CountBatches:
    """Stands in for the fine-tuning's augmentation (called once per batch): counts the batches,
    and raises KeyboardInterrupt at batch ``interrupt_at`` (1-based) when given."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls, self.interrupt_at = 0, interrupt_at
        self.augment = finetune_module.augment

    def __call__(self, x, config, generator):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.augment(x, config, generator)


def state(classifier: TeacherClassifier) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in classifier.state_dict().items()}


def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    different = [name for name in want if not torch.equal(got[name], want[name])]
    assert not different, different


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[CachedFeatures, np.ndarray]:
    clips, labels = tone_clips(CLIPS, seed=3)
    return waves(clips, tmp_path_factory.mktemp("waves")), labels


@pytest.fixture(scope="module")
def uninterrupted(data) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Weights and history of the same fine-tuning run straight through, without checkpoints.

    On one thread, as the tests (``one_thread``, set up after this module-scoped fixture): the
    float results depend on the thread count."""
    features, labels = data
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        classifier, history = new_classifier(), []
        finetune_teacher(classifier, features, np.arange(CLIPS), labels, CONFIG, seed=0, progress=False, history=history)
    finally:
        torch.set_num_threads(threads)
    return state(classifier), history


def test_interrupted_finetuning_resumes_bit_identically_without_redoing_epoch_1(data, uninterrupted, tmp_path, monkeypatch) -> None:
    features, labels = data
    work = tmp_path / "work"
    interrupt = CountBatches(interrupt_at=STEPS_PER_EPOCH + 1)  # the first batch of epoch 2
    monkeypatch.setattr(finetune_module, "augment", interrupt)
    with pytest.raises(KeyboardInterrupt):
        finetune_teacher(new_classifier(), features, np.arange(CLIPS), labels, CONFIG, seed=0, progress=False, workdir=work)
    assert (work / CHECKPOINT_FILE).is_file()  # epoch 1 is on disk
    assert not [p.name for p in work.iterdir() if p.name != CHECKPOINT_FILE]  # and no temporary file beside it

    # a new process: the global generators hold whatever ran before
    torch.manual_seed(1234)
    np.random.seed(1234)
    resumed = CountBatches()
    monkeypatch.setattr(finetune_module, "augment", resumed)
    classifier, history = new_classifier(), []
    finetune_teacher(classifier, features, np.arange(CLIPS), labels, CONFIG, seed=0, progress=False, history=history, workdir=work)
    assert resumed.calls == STEPS_PER_EPOCH  # epoch 2 only: epoch 1 came from the checkpoint
    want_state, want_history = uninterrupted
    assert history == want_history and [h["epoch"] for h in history] == [1, 2]
    assert_same_state(state(classifier), want_state)


def test_a_checkpoint_of_another_configuration_is_not_resumed_from(data, uninterrupted, tmp_path, monkeypatch) -> None:
    features, labels = data
    work = tmp_path / "work"
    other = FinetuneConfig(epochs=2, batch_size=BATCH, lr=1e-2, encoder_lr=1e-3)  # another head learning rate
    monkeypatch.setattr(finetune_module, "augment", CountBatches(interrupt_at=STEPS_PER_EPOCH + 1))
    with pytest.raises(KeyboardInterrupt):
        finetune_teacher(new_classifier(), features, np.arange(CLIPS), labels, other, seed=0, progress=False, workdir=work)
    assert (work / CHECKPOINT_FILE).is_file()

    fresh = CountBatches()
    monkeypatch.setattr(finetune_module, "augment", fresh)
    classifier = new_classifier()
    with pytest.warns(CheckpointWarning, match="written by a different run"):
        finetune_teacher(classifier, features, np.arange(CLIPS), labels, CONFIG, seed=0, progress=False, workdir=work)
    assert fresh.calls == 2 * STEPS_PER_EPOCH  # trained from scratch
    assert_same_state(state(classifier), uninterrupted[0])


def test_the_teacher_stage_resumes_its_finetuning_then_deletes_the_checkpoint(data, tmp_path, monkeypatch) -> None:
    """Through the stage cache, on a local teacher (no pre-training): the interrupted build
    publishes nothing, keeps its epoch checkpoint in the stage's work dir, and the next build
    resumes from it; once the stage is published the checkpoint is gone."""
    from ascbench.distill.teacher_recipe import TeacherConfig, prepare_teacher
    from ascbench.distill.teachers.stages import read_manifest

    features, labels = data
    checkpoint = save_hubert(build_hubert(hubert_config("small", **TINY), seed=0), tmp_path / "hubert-local")
    clips = [SimpleNamespace(filename=name, label=int(label)) for name, label in zip(features.filenames, labels)]
    split = SimpleNamespace(dataset=SimpleNamespace(fingerprint="f" * 64), fraction=0.25, train=clips, test=clips[:8], unlabeled=[])
    home = tmp_path / "home"
    ctx = SimpleNamespace(split=split, features=features, device=torch.device("cpu"), home=home, progress=False, log=lambda line: None,
                          features_for=lambda frontend: features, train_labels=lambda: labels)  # fmt: skip
    config = TeacherConfig(kind="hubert", size="small", pretrain=None, finetune=CONFIG, amp="off")
    work = home / "teachers" / "work"

    monkeypatch.setattr(finetune_module, "augment", CountBatches(interrupt_at=STEPS_PER_EPOCH + 1))
    with pytest.raises(KeyboardInterrupt):
        prepare_teacher(ctx, config, checkpoint)
    (left,) = work.glob(f"*/{CHECKPOINT_FILE}")
    assert "finetune" in left.parent.name

    resumed = CountBatches()
    monkeypatch.setattr(finetune_module, "augment", resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # the stage's own checkpoint is resumed, not refused
        stage = prepare_teacher(ctx, config, checkpoint)
    assert resumed.calls == STEPS_PER_EPOCH
    assert [h["epoch"] for h in read_manifest(stage.directory)["info"]["history"]] == [1, 2]
    assert not left.parent.exists()  # published: its resume checkpoint is not kept
