"""An ensemble teacher from recorded runs: its members' logits on the clips a student learns from.

Why from recorded weights: the members were trained by ascbench on the same data set, split,
seed and profile as the student, so the ensemble knows nothing the split does not (the DCASE
rules' condition), and their ``model.pt`` is already on disk. Their logits are computed once per
set of clips and cached as a teacher stage keyed by the members' record checksums, so a member
that is retrained (a new record) makes a new stage, never a stale one.

Members are averaged in logit space, which is the mean that the CP-JKU ensembles distil from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ascbench.data.dataset import Dataset
from ascbench.features.cache import load_features
from ascbench.systems.checkpoint import load_trained_model
from ascbench.systems.spec import SystemSpec
from ascbench.distill.teachers.stages import TeacherStageKey, get_or_build
from ascbench.training import predict
from ascbench.training.engine import global_rng_preserved

LOGITS_FILE = "logits.npy"


@dataclass(frozen=True)
class Member:
    """One recorded run of the ensemble."""

    spec: SystemSpec
    weights: Path
    """The run's trained float weights (its record's ``model`` artifact)."""
    record_checksum: str
    """What identifies the run's result: a retrained member is another checksum."""
    accuracy: float
    """The member's own test accuracy (for the record's notes)."""


def members_digest(members: Sequence[Member]) -> str:
    return hashlib.sha256("|".join(f"{m.spec.name}:{m.record_checksum}" for m in members).encode()).hexdigest()[:16]


def ensemble_logits(
    members: Sequence[Member],
    dataset: Dataset,
    filenames: Sequence[str],
    home: Path,
    fraction: float,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, bool]:
    """The members' mean logits ``[len(filenames), classes]`` (float32) and whether the cached
    stage was reused. The global random state is left as found (the student's draws after the
    teacher must not depend on whether it came from the cache)."""
    clips = hashlib.sha256("\n".join(filenames).encode()).hexdigest()[:16]
    key = TeacherStageKey(
        kind="ensemble",
        teacher="runs-" + "+".join(m.spec.name for m in members),
        config_hash=hashlib.sha256(f"{members_digest(members)}|{clips}".encode()).hexdigest(),
        data_fingerprint=dataset.fingerprint,
        seed=seed,
        fraction=fraction,
    )

    def build(directory: Path) -> dict:
        logits = np.stack([_member_logits(m, dataset, filenames, home, device, progress) for m in members]).mean(axis=0)
        np.save(directory / LOGITS_FILE, logits.astype(np.float32))
        return {"members": [m.spec.name for m in members], "clips": len(filenames)}

    with global_rng_preserved():
        directory, reused = get_or_build(key, build, home)
    return np.load(directory / LOGITS_FILE), reused


def _member_logits(member: Member, dataset: Dataset, filenames: Sequence[str], home: Path, device, progress: bool) -> np.ndarray:
    model = load_trained_model(member.spec, member.weights)
    features = load_features(dataset, member.spec.frontend, home=home, progress=progress)
    return np.asarray(predict(model, features, features.rows(list(filenames)), device=device), dtype=np.float32)
