"""The teacher-stage cache: pre-trained and fine-tuned teachers, built once, reused by every
student and seed.

Pre-training a teacher costs far more than training a student, and it depends only on the
teacher's configuration, the data and its seed, so its results are cached under
``teachers_dir(home) / <TeacherStageKey.slug()> /``:

- a ``pretrain`` stage holds the pre-trained encoder (HuBERT: an HF-format ``model/`` directory);
- a ``finetune`` stage holds the fine-tuned classifier's weights (``weights.pt``, a state dict)
  and the teacher outputs for **every clip of the data set** in ``outputs/<name>.npy``
  (:func:`ascbench.distill.teachers.finetune.teacher_outputs`: final logits, layer logits, pooled CNN
  features), so distillation never runs the teacher again.

Every stage has a ``manifest.json`` with its key, whatever the builder reported, and the size
and CRC-32 of each file. A stage is built in a temporary directory beside its final place and
published by one atomic rename while holding a ``flock`` (as the feature cache does), so a
crash never leaves a partial stage in place; one whose manifest or files do not check out is
reported with a :class:`TeacherStageWarning` and rebuilt, never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ascbench.features.cache import _exclusive, _file_checksum, _publish, _remove_leftovers
from ascbench.paths import teachers_dir

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.pt"
OUTPUTS_DIR = "outputs"
MODEL_DIR = "model"


class TeacherStageWarning(UserWarning):
    """A teacher stage on disk was unusable (corrupt, partial, stale) and is being rebuilt."""


@dataclass(frozen=True)
class TeacherStageKey:
    """What a teacher stage depends on; equal keys share one directory."""

    kind: Literal["pretrain", "finetune", "ensemble"]
    """``ensemble``: the mean logits of recorded runs (:mod:`ascbench.distill.ensemble`)."""
    teacher: str
    """Teacher name, e.g. ``hubert-small``, ``beats``."""
    config_hash: str
    """Hash of every configuration the stage was built with (pre-training and fine-tuning)."""
    data_fingerprint: str
    seed: int
    fraction: float | None = None
    """Training fraction of the split it saw (None for stages that do not depend on it)."""

    def __post_init__(self) -> None:
        if self.kind not in ("pretrain", "finetune", "ensemble"):
            raise ValueError(f"teacher stage kind must be 'pretrain', 'finetune' or 'ensemble', got {self.kind!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.teacher):
            raise ValueError(f"teacher name {self.teacher!r} must be letters, digits and ._+- only")

    def slug(self) -> str:
        fraction = "" if self.fraction is None else f"-f{round(self.fraction * 100):03d}"
        return f"{self.teacher}-{self.kind}-{self.data_fingerprint[:12]}-{self.config_hash[:12]}-s{self.seed}{fraction}"


def stage_dir(key: TeacherStageKey, home: Path | str | None = None) -> Path:
    """Where the stage of ``key`` lives (whether or not it exists yet)."""
    return teachers_dir(home) / key.slug()


def get_or_build(
    key: TeacherStageKey, build_fn: Callable[[Path], dict | None], home: Path | str | None = None
) -> tuple[Path, bool]:
    """The verified stage directory of ``key`` and whether it was reused.

    When no valid stage exists, ``build_fn(directory)`` writes the stage's files into an empty
    temporary ``directory`` (and may return a JSON-able dict, kept in the manifest as ``info``);
    the result is checksummed and published atomically. An exception in ``build_fn`` publishes
    nothing.
    """
    directory = stage_dir(key, home)
    if _problem(directory, key) is None:
        return directory, True
    with _exclusive(directory.parent / f"{directory.name}.lock", directory):
        problem = _problem(directory, key)  # another process may have built it meanwhile
        if problem is None:
            return directory, True
        if problem != _MISSING:
            warnings.warn(f"teacher stage {directory}: {problem}; rebuilding it", TeacherStageWarning, stacklevel=2)
        _remove_leftovers(directory)
        temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temporary.mkdir(parents=True)
        try:
            started = time.perf_counter()
            info = build_fn(temporary)
            _write_manifest(temporary, key, info, time.perf_counter() - started)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        _publish(temporary, directory)
    return directory, False


def read_manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST_FILE).read_text())


# -- contents -------------------------------------------------------------------------------------


def save_state(module: nn.Module, directory: Path) -> Path:
    """Write ``module``'s state dict to ``directory/weights.pt``."""
    path = directory / WEIGHTS_FILE
    torch.save({name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}, path)
    return path


def load_state(module: nn.Module, directory: Path) -> nn.Module:
    """Load ``directory/weights.pt`` into ``module`` (strict: every key must match)."""
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module


def save_outputs(outputs: dict[str, np.ndarray], directory: Path) -> None:
    """Write each array to ``directory/outputs/<name>.npy``."""
    (directory / OUTPUTS_DIR).mkdir(exist_ok=True)
    for name, array in outputs.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"output name {name!r} must be letters, digits and _ only")
        np.save(directory / OUTPUTS_DIR / f"{name}.npy", np.ascontiguousarray(array))


def load_outputs(directory: Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """The arrays :func:`save_outputs` wrote (memory-mapped read-only by default)."""
    return {path.stem: np.load(path, mmap_mode="r" if mmap else None) for path in sorted((directory / OUTPUTS_DIR).glob("*.npy"))}


# -- manifest -------------------------------------------------------------------------------------

_MISSING = "missing"


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def _write_manifest(directory: Path, key: TeacherStageKey, info: dict | None, seconds: float) -> None:
    files = _files(directory)
    if not files:
        raise ValueError(f"the builder of teacher stage {key.slug()} wrote no files")
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": asdict(key),
        "complete": True,
        "info": info or {},
        "files": {
            str(p.relative_to(directory)): {"bytes": p.stat().st_size, "checksum": _file_checksum(p)} for p in files
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 2),
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _problem(directory: Path, key: TeacherStageKey) -> str | None:
    """Why the stage in ``directory`` cannot be used, or None when it is complete and intact."""
    if not directory.exists():
        return _MISSING
    try:
        manifest = read_manifest(directory)
    except FileNotFoundError:
        return "no manifest (a build that did not finish)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"unreadable manifest ({error})"
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        return "manifest not marked complete"
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"format version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
    if manifest.get("key") != json.loads(json.dumps(asdict(key))):
        return f"manifest key {manifest.get('key')!r} is not {asdict(key)!r}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected.get("bytes"):
            return f"{name} has {path.stat().st_size} bytes, the manifest says {expected.get('bytes')}"
        if _file_checksum(path) != expected.get("checksum"):
            return f"{name} is corrupt (checksum mismatch)"
    return None
