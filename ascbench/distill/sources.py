"""Where a distilled student's teacher comes from: four sources behind one interface.

``--teacher SOURCE`` (``--set teacher=SOURCE``) names one of them:

- ``self-supervised``: the harness pre-trains the recipe's teacher (HuBERT or BEATs) on the
  split's unlabeled pool and fine-tunes it on the split: the two distilled baselines' default.
- ``checkpoint:PATH``: a local HF-format HuBERT folder or BEATs ``.pt`` in place of that
  pre-training (``--teacher-checkpoint PATH`` is its alias).
- ``logits:FILE``: per-clip teacher logits keyed by the TAU filename, the way top DCASE teams
  ship ensemble teachers (:mod:`ascbench.distill.logits_file` reads and checks the file).
- ``runs:SYS[,SYS...]``: an ensemble of systems ascbench trained on the same data, split, seed and
  profile; their logits on the split's training clips are computed once from their recorded
  weights and averaged (:mod:`ascbench.distill.ensemble`).

The first two are *layered* (the recipe runs the teacher network: its CNN features and layer
outputs feed H_M's front-end alignment and hierarchical KD); the last two give final logits
only, which every recipe's logit KD can use. Each source also says how the DCASE rules judge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SELF_SUPERVISED = "self-supervised"
SOURCE_KINDS = ("self-supervised", "checkpoint", "logits", "runs")

EXTERNAL_RESOURCE = "external resource to declare"
"""How the leaderboard's DCASE column qualifies a pass whose teacher came from outside the data set."""


@dataclass(frozen=True)
class TeacherSource:
    """A parsed ``--teacher`` value; ``spec`` is its one canonical spelling (what records keep)."""

    kind: str
    path: Path | None = None
    """The checkpoint or logits file (absolute), for those kinds."""
    systems: tuple[str, ...] = ()
    """The ensemble's members, for ``runs``."""

    @property
    def spec(self) -> str:
        if self.kind == SELF_SUPERVISED:
            return SELF_SUPERVISED
        if self.kind == "runs":
            return "runs:" + ",".join(self.systems)
        return f"{self.kind}:{self.path}"

    @property
    def layered(self) -> bool:
        """Whether the recipe can run the teacher network itself (layer outputs, CNN features)."""
        return self.kind in (SELF_SUPERVISED, "checkpoint")

    @property
    def external(self) -> bool:
        """A resource from outside the data set, which a DCASE submission must declare."""
        return self.kind in ("checkpoint", "logits")

    def label(self) -> str:
        """How the run's name spells the source (the checkpoint form is the one records have
        carried since ``--teacher-checkpoint`` existed)."""
        if self.kind == SELF_SUPERVISED:
            return SELF_SUPERVISED
        if self.kind == "runs":
            return "runs-" + "+".join(self.systems)
        from ascbench.checkpoints import checkpoint_label

        label = checkpoint_label(self.path, "--teacher " + self.kind)
        return label if self.kind == "checkpoint" else f"logits-{label}"

    def describe(self) -> str:
        """A sentence's worth for messages and the record."""
        return {
            SELF_SUPERVISED: "a teacher pre-trained self-supervised on the split's unlabeled pool, fine-tuned on the split",
            "checkpoint": f"the local teacher checkpoint {self.path}",
            "logits": f"the teacher logits in {self.path}",
            "runs": f"the mean logits of the recorded runs of {', '.join(self.systems)}",
        }[self.kind]


def parse_teacher(value: str) -> TeacherSource:
    """``self-supervised``, ``checkpoint:PATH``, ``logits:FILE`` or ``runs:SYS[,SYS...]``.

    Paths are made absolute (``Path.absolute``, so a symlink keeps its name): runs on other
    workers need not share the current directory."""
    text = value.strip()
    kind, separator, rest = text.partition(":")
    kind = kind.strip()
    if text == SELF_SUPERVISED:
        return TeacherSource(SELF_SUPERVISED)
    expected = f"--teacher {value!r}: expected one of self-supervised, checkpoint:PATH, logits:FILE, runs:SYS[,SYS...]"
    if not separator or kind not in SOURCE_KINDS or kind == SELF_SUPERVISED or not rest.strip():
        raise ValueError(expected)
    if kind == "runs":
        systems = tuple(dict.fromkeys(part.strip() for part in rest.replace("+", ",").split(",") if part.strip()))
        if not systems:
            raise ValueError(expected)
        return TeacherSource("runs", systems=systems)
    return TeacherSource(kind, path=Path(rest.strip()).expanduser().absolute())
