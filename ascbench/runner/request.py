"""One run of the benchmark grid, as plain data that can cross a process (or Ray) boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ascbench.checkpoints import checkpoint_label
from ascbench.results.record import Record


ABLATION_SEPARATOR = "~no-"
SOURCE_SEPARATOR = "@"


def recorded_name(
    system: str,
    ablate: frozenset[str] | set[str] | tuple[str, ...] = (),
    checkpoint: Path | None = None,
    teacher_checkpoint: Path | None = None,
    teacher_seed: int | None = None,
    pool_kd: float = 0.0,
) -> str:
    """The name a run is recorded under: the system, the components switched off, and the user's
    weights it ran on.

    An ablated run is a different run (``hubert-mobilenetv2~no-fms+qat``): it must never be
    skipped because the full system's record exists, nor overwrite it, and in a leaderboard it
    is a row of its own beside the full system -- which is what an ablation table is. The same
    holds for a run on a local teacher (``hubert-mobilenetv2@teacher-hubert-base-1a2b3c4d``) or on
    trained weights loaded with ``--checkpoint`` (``cp-mobile@weights-model-5e6f7a8b``), and for a
    teacher fine-tuned with one pinned seed for every run (``hubert-mobilenetv2@teacher-seed0``): by
    default each run fine-tunes its teacher with the run's own seed, and keeps the plain name.
    A student that also distils on the unlabeled training pool (``--pool-kd 1``) trains on audio
    outside the split: ``hubert-mobilenetv2@pool-kd1``.
    """
    name = system + (ABLATION_SEPARATOR + "+".join(sorted(ablate)) if ablate else "")
    if teacher_checkpoint is not None:
        name += f"{SOURCE_SEPARATOR}teacher-{checkpoint_label(teacher_checkpoint, '--teacher-checkpoint')}"
    if teacher_seed is not None:
        name += f"{SOURCE_SEPARATOR}teacher-seed{teacher_seed}"
    if pool_kd > 0:
        name += f"{SOURCE_SEPARATOR}pool-kd{pool_kd:g}"
    if checkpoint is not None:
        name += f"{SOURCE_SEPARATOR}weights-{checkpoint_label(checkpoint)}"
    return name


def registered_system(recorded: str) -> str:
    """The registry's name inside a recorded one: ``hubert-mobilenetv2~no-fms@pool-kd1`` ->
    ``hubert-mobilenetv2`` (what loads the architecture of any of its records' weights)."""
    return recorded.split(SOURCE_SEPARATOR, 1)[0].split(ABLATION_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class RunRequest:
    """Train (or load) one system on one split with one seed, then measure and record it.

    Everything is a path or a primitive, so an executor can ship requests to worker processes;
    the registry and the data set are re-read where the run executes.
    """

    system: str
    data_root: Path
    fraction: float
    seed: int
    profile: str = "quick"
    device: str = "auto"
    home: Path | None = None
    force: bool = False
    checkpoint: Path | None = None
    """Trained weights to evaluate instead of training (``ascbench run --checkpoint``)."""
    teacher_checkpoint: Path | None = None
    """A local teacher (HF HuBERT directory or BEATs ``.pt``) instead of self-supervised pre-training."""
    teacher_seed: int | None = None
    """The teacher's fine-tuning seed; None: the run's own seed (each seed re-draws the teacher too)."""
    pool_kd: float = 0.0
    """Unlabeled training-pool clips per labelled clip that a distilled student also learns from
    each epoch (teacher targets only); 0: the split's clips alone, as the DCASE rules ask."""
    ablate: frozenset[str] = frozenset()
    submissions: Path | None = None
    command: tuple[str, ...] = ()
    """The command line that asked for this run (provenance)."""
    teacher: str | None = None
    """The teacher kind the system's recipe distils from (None: no teacher stage)."""

    def shared_stage_key(self) -> tuple | None:
        """Runs with equal keys share one teacher stage; executors build it once before the rest."""
        if self.teacher is None:
            return None
        checkpoint = str(self.teacher_checkpoint) if self.teacher_checkpoint else None
        return (self.teacher, str(self.data_root), self.fraction, self.profile, checkpoint, self.effective_teacher_seed, str(self.home))

    @property
    def effective_teacher_seed(self) -> int:
        return self.seed if self.teacher_seed is None else self.teacher_seed

    @property
    def recorded_system(self) -> str:
        return recorded_name(self.system, self.ablate, self.checkpoint, self.teacher_checkpoint, self.teacher_seed, self.pool_kd)

    def label(self) -> str:
        return f"{self.recorded_system} split{round(self.fraction * 100)} seed{self.seed}"


@dataclass
class RunOutcome:
    """What happened to one request: a fresh record, a reused one, or nothing (with a reason)."""

    request: RunRequest
    record: Record | None
    record_path: Path | None
    skipped: bool = False
    """True when a complete record already existed and ``force`` was off."""
    error: str | None = None
    stage_notes: list[str] = field(default_factory=list)
