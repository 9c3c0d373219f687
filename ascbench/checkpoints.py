"""Identity and kind of a user's local checkpoint (trained weights or a teacher), without torch.

A run on the user's own weights is a different run from the one the harness trains: its record
must not be skipped because a trained record exists, nor overwrite it. So the weights' identity
becomes part of the recorded name (``hubert-mobilenetv2@teacher-hubert-base-1a2b3c4d``), the way
an ablation's components do. The identity is cheap (file names, sizes and modification times,
not a hash of gigabytes), so an edited or replaced checkpoint is a new run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

TeacherFormat = Literal["hubert", "beats"]


def checkpoint_identity(path: Path | str, option: str = "--checkpoint") -> str:
    """16 hex digits naming a checkpoint file or folder by its files' names, sizes and mtimes."""
    path = Path(path)
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    if not files:
        raise FileNotFoundError(f"{option} {path}: no such file or directory (or it is empty)")
    digest = hashlib.sha256()
    for p in files:
        stat = p.stat()
        digest.update(f"{p.relative_to(path) if path.is_dir() else p.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def checkpoint_label(path: Path | str, option: str = "--checkpoint") -> str:
    """``<file or folder name>-<8 hex of its identity>``, safe in a recorded system name."""
    path = Path(path)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.is_file() else path.name) or "checkpoint"
    return f"{stem}-{checkpoint_identity(path, option)[:8]}"


def teacher_checkpoint_format(path: Path | str) -> TeacherFormat:
    """Which teacher a local checkpoint holds: an HF-format HuBERT folder or an official BEATs file.

    Only the form is checked here (so a mistake is reported before any training starts); the
    loaders check the contents.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hubert"
        raise ValueError(
            f"--teacher-checkpoint {path} is a folder without config.json: not an HF-format HuBERT checkpoint "
            "(a BEATs checkpoint is one .pt file)"
        )
    if path.is_file():
        return "beats"
    raise FileNotFoundError(f"--teacher-checkpoint {path}: no such file or directory")
