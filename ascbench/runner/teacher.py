"""A run's teacher, resolved against today's files and records before the run trains.

What decides a distilled student's numbers includes its teacher's content: the bytes of a logits
file, the records of an ensemble's member runs, a checkpoint's files. So the teacher is resolved
here, where the run's identity is computed (a student whose teacher changed is rerun, never
reused), and handed to the recipe as a function from clip names to logits
(:attr:`ascbench.recipes.base.RecipeContext.teacher_logits`), so recipes never read the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ascbench.data.dataset import Dataset, DataSplit
from ascbench.distill.ensemble import Member, ensemble_logits, members_digest
from ascbench.distill.logits_file import TeacherLogitsError, read_teacher_logits
from ascbench.distill.sources import TeacherSource
from ascbench.results.identity import identity_label
from ascbench.results.provenance import canonical_json
from ascbench.results.record import Record, audio_outside_split
from ascbench.systems.spec import SystemSpec

FindRun = Callable[[str], "tuple[SystemSpec, Record | None, str]"]
"""``system -> (spec, its usable record at the run's data, split, seed and profile or None, the
command that trains it)``."""


@dataclass
class ResolvedTeacher:
    """A ``logits:`` or ``runs:`` teacher, checked: its content digest and how to read it."""

    source: TeacherSource
    digest: str
    """Of the logits file's bytes, or of the members' record checksums."""
    members: list[Member] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)
    """What the student's record notes of its teacher."""
    source_digest: str = ""
    """What the teacher is regardless of the run's seed (the file's content, or the members' own
    identities), so that a board averages the seeds of one student (``GROUPED``)."""

    def logits_fn(self, dataset: Dataset, split: DataSplit, home: Path, device, progress: bool) -> Callable[[Sequence[str]], np.ndarray]:
        """The teacher's logits of the named clips (what the recipe calls)."""
        if self.source.kind == "logits":
            known = {c.filename for c in dataset.clips}
            return lambda names: read_teacher_logits(self.source.path, known).for_clips(names)

        def ensemble(names: Sequence[str]) -> np.ndarray:
            logits, reused = ensemble_logits(self.members, dataset, names, home, split.fraction, self.info["seed"], device, progress)
            self.info["teacher_reused"] = reused
            return logits

        return ensemble


def resolve_teacher(source: TeacherSource | None, find_run: FindRun, seed: int, home: Path) -> ResolvedTeacher | None:
    """The run's ``logits:``/``runs:`` teacher; None for other sources (the recipe builds those).

    A missing file is a ``TeacherLogitsError`` naming it; a member run without a usable record is
    a ``ValueError`` giving the command that trains it."""
    if source is None or source.layered:
        return None
    if source.kind == "logits":
        try:
            content = source.path.read_bytes()
        except OSError as error:
            raise TeacherLogitsError(f"--teacher {source.spec}: cannot read the file ({error.strerror or error})") from None
        digest = hashlib.sha256(content).hexdigest()
        return ResolvedTeacher(source, digest[:16], info={"teacher_sha256": digest, "teacher_file": str(source.path)}, source_digest=digest[:16])
    members, missing, outside, kinds = [], [], [], []
    for system in source.systems:
        spec, record, command = find_run(system)
        if record is None or "model" not in record.artifacts:
            missing.append(f"{system} (train it: {command})")
            continue
        members.append(Member(spec, home / record.artifacts["model"], record.checksum or "", record.metrics.accuracy))
        kinds.append([system, identity_label(record.identity)])
        outside += [f"{use} of {system}" for use in audio_outside_split(record)]
    if missing:
        raise ValueError(f"--teacher {source.spec}: no current record of {'; '.join(missing)}")
    info: dict[str, object] = {
        "seed": seed,
        "teacher_members": [{"system": m.spec.name, "accuracy": round(m.accuracy, 5), "record_checksum": m.record_checksum} for m in members],
        "teacher_members_audio_outside_split": outside,
    }
    return ResolvedTeacher(source, members_digest(members), members, info,
                           hashlib.sha256(canonical_json(kinds).encode()).hexdigest()[:16])
