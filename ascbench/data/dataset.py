"""In-memory description of a TAU22-layout data set, as every later stage consumes it.

The reader (:mod:`ascbench.data.reader`) builds these from disk; features, training and
evaluation only ever see these objects, never csv files, so that a real TAU22 directory and
the synthetic stand-in are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ascbench.data.layout import SCENE_INDEX, UNSEEN_DEVICES


@dataclass(frozen=True)
class Clip:
    """One 1-second clip: its file (relative to the data set root) and what is known about it."""

    filename: str
    scene: str
    device: str
    city: str
    identifier: str
    recording_id: str

    @property
    def label(self) -> int:
        """Class index in :data:`ascbench.data.layout.SCENES` order."""
        return SCENE_INDEX[self.scene]

    @property
    def unseen_device(self) -> bool:
        return self.device in UNSEEN_DEVICES


@dataclass(frozen=True)
class Dataset:
    """A whole TAU22-layout data set: every clip of ``meta.csv`` plus the official splits.

    ``name`` says where the data came from (``synth-tau22-small`` or ``tau22``) and travels into
    every result, so synthetic numbers cannot pass as TAU ones; ``fingerprint`` identifies the
    exact content in caches and records.
    """

    root: Path
    name: str
    fingerprint: str
    clips: tuple[Clip, ...]
    splits: dict[str, tuple[str, ...]]
    """split file name (``split25.csv``) -> filenames, in file order."""
    test: tuple[str, ...]
    info: dict = field(default_factory=dict)
    """Generator parameters for synthetic data (size, seed, version); empty for real data."""

    def clip(self, filename: str) -> Clip:
        return self._by_name[filename]

    @property
    def _by_name(self) -> dict[str, Clip]:
        cache = self.__dict__.get("_by_name_cache")
        if cache is None:
            cache = {c.filename: c for c in self.clips}
            object.__setattr__(self, "_by_name_cache", cache)
        return cache


@dataclass(frozen=True)
class DataSplit:
    """The clips one run trains and is tested on, for one training fraction."""

    dataset: Dataset
    fraction: float
    train: tuple[Clip, ...]
    test: tuple[Clip, ...]
    unlabeled: tuple[Clip, ...]
    """Training-pool clips outside this split: the audio self-supervised teachers pre-train on."""
