"""One run of the benchmark grid, as plain data that can cross a process (or Ray) boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ascbench.checkpoints import checkpoint_label
from ascbench.distill.sources import SELF_SUPERVISED
from ascbench.recipes.options import SOURCE_SEPARATOR, RunOptions
from ascbench.results.record import Record
from ascbench.tasks import DEFAULT_TASK


def recorded_name(system: str, options: RunOptions | None = None, checkpoint: Path | None = None) -> str:
    """The name a run is recorded and shown under: the system, then its options as people read
    them (:meth:`RunOptions.label`), then the user's trained weights it evaluated.

    Options change the run, so they change the name: an ablated run
    (``hubert-mobilenetv2~no-fms+qat``), a run on another teacher
    (``mobilenetv2@teacher-runs-cp-mobile``, ``hubert-mobilenetv2@teacher-hubert-base-1a2b3c4d``), a
    pinned teacher seed (``@teacher-seed0``) or pool KD (``@pool-kd1``) is never skipped because
    the default run's record exists, nor overwrites it, and on a leaderboard it is a row of its own.
    The name is for people and for the record's path; what the run was is the record's ``options``,
    and nothing parses the name back.
    """
    name = system + (options.label() if options is not None else "")
    if checkpoint is not None:
        name += f"{SOURCE_SEPARATOR}weights-{checkpoint_label(checkpoint)}"
    return name


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
    options: RunOptions | None = None
    """The recipe's run options, validated (None: the recipe's defaults)."""
    submissions: Path | None = None
    command: tuple[str, ...] = ()
    """The command line that asked for this run (provenance)."""
    teacher: str | None = None
    """The teacher network (``hubert``, ``beats``) the run pre-trains or loads (None: none)."""
    task: str = DEFAULT_TASK
    """The challenge task whose rules the run follows (:mod:`ascbench.tasks`)."""

    def shared_stage_key(self) -> tuple | None:
        """Runs with equal keys share one teacher stage; executors build it once before the rest."""
        if self.teacher is None:
            return None
        source = self.options.teacher if self.options is not None else SELF_SUPERVISED  # a distilled recipe's default
        return (self.teacher, str(self.data_root), self.fraction, self.profile, source, self.effective_teacher_seed, str(self.home))

    @property
    def effective_teacher_seed(self) -> int:
        pinned = getattr(self.options, "teacher_seed", None)
        return self.seed if pinned is None else pinned

    @property
    def recorded_system(self) -> str:
        return recorded_name(self.system, self.options, self.checkpoint)

    def where(self) -> str:
        """The split, seed and (when not the default) task: the label without the system."""
        task = "" if self.task == DEFAULT_TASK else f" {self.task}"
        return f"split{round(self.fraction * 100)} seed{self.seed}{task}"

    def label(self) -> str:
        return f"{self.recorded_system} {self.where()}"


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
