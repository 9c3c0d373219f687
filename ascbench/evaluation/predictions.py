"""Per-clip predictions of one system on test.csv: what metrics, comparisons and the store share.

Keeping the file names beside the scores is what lets two systems be compared clip by clip
(a paired bootstrap is only valid on the same clips) and lets metrics be recomputed later from
a stored run without re-running the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import softmax

from ascbench.data.layout import SCENES, ClipName

ScoreKind = Literal["logits", "probabilities"]
SCORE_KINDS: tuple[str, ...] = ("logits", "probabilities")
PROBABILITY_TOLERANCE = 1e-3
"""How far a row of 'probabilities' may sum from 1 (float32 softmax outputs drift by ~1e-6)."""


def as_probabilities(scores: np.ndarray, scores_are: ScoreKind) -> np.ndarray:
    """Return class probabilities [N, C] as float64 from logits or probabilities.

    Logits go through a softmax; probabilities are checked, not renormalised, because rows that
    do not sum to one usually mean logits were passed as probabilities, and a silent
    renormalisation would turn that mistake into a wrong log loss.
    """
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(SCENES):
        raise ValueError(f"scores: expected shape [N, {len(SCENES)}], got {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"scores: row {bad} holds a non-finite value ({array[bad].tolist()})")
    if scores_are == "logits":
        return softmax(array, axis=1)
    if scores_are == "probabilities":
        sums = array.sum(axis=1)
        off = np.flatnonzero((np.abs(sums - 1.0) > PROBABILITY_TOLERANCE) | (array < 0).any(axis=1))
        if off.size:
            row = int(off[0])
            raise ValueError(
                f"scores: row {row} is not a probability vector (sum {sums[row]:.6g}, min {array[row].min():.6g}); "
                f"{off.size} such rows. Pass scores_are='logits' if these are logits."
            )
        return array
    raise ValueError(f"scores_are={scores_are!r}: expected one of {', '.join(SCORE_KINDS)}")


@dataclass(frozen=True)
class ClipPredictions:
    """One system's scores for each test clip, in one fixed clip order."""

    filenames: tuple[str, ...]
    """Clip paths as in test.csv (``audio/<...>-<device>.wav``); the device is read from them."""
    labels: np.ndarray
    """True class indices [N] in SCENES order."""
    scores: np.ndarray
    """Raw model outputs [N, 10]; ``scores_are`` says whether they are logits or probabilities."""
    scores_are: ScoreKind = "logits"

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        scores = np.asarray(self.scores)
        n = len(self.filenames)
        if labels.shape != (n,):
            raise ValueError(f"labels: expected shape [{n}] (one per file name), got {list(labels.shape)}")
        if scores.shape != (n, len(SCENES)):
            raise ValueError(f"scores: expected shape [{n}, {len(SCENES)}], got {list(scores.shape)}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels: expected integer class indices, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(SCENES)):
            bad = int(np.flatnonzero((labels < 0) | (labels >= len(SCENES)))[0])
            raise ValueError(f"labels: {self.filenames[bad]!r} has class index {labels[bad]}; expected 0-{len(SCENES) - 1}")
        if self.scores_are not in SCORE_KINDS:
            raise ValueError(f"scores_are={self.scores_are!r}: expected one of {', '.join(SCORE_KINDS)}")
        if len(set(self.filenames)) != n:
            raise ValueError("filenames: the same clip appears more than once")
        object.__setattr__(self, "filenames", tuple(str(f) for f in self.filenames))
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def devices(self) -> list[str]:
        """Recording device of each clip, parsed from its file name."""
        return [ClipName.parse(f).device for f in self.filenames]

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class index per clip (argmax; identical for logits and probabilities)."""
        return np.asarray(self.scores).argmax(axis=1)

    def probabilities(self) -> np.ndarray:
        return as_probabilities(self.scores, self.scores_are)

    def aligned_to(self, filenames: tuple[str, ...] | list[str]) -> "ClipPredictions":
        """The same predictions reordered to ``filenames``; refuses a different clip list.

        Paired comparisons need both systems on exactly the same clips; a different set means
        the systems were tested on different data and must not be compared.
        """
        mine, theirs = set(self.filenames), set(filenames)
        if mine != theirs or len(filenames) != len(self.filenames):
            only_here = sorted(mine - theirs)
            only_there = sorted(theirs - mine)
            raise ValueError(
                "the two clip lists differ: "
                f"{len(only_here)} clip(s) only in one (e.g. {only_here[:3]}), "
                f"{len(only_there)} only in the other (e.g. {only_there[:3]}); "
                "paired comparison needs both systems on the same test clips"
            )
        position = {f: i for i, f in enumerate(self.filenames)}
        order = np.array([position[f] for f in filenames], dtype=np.int64)
        return ClipPredictions(tuple(filenames), self.labels[order], np.asarray(self.scores)[order], self.scores_are)
