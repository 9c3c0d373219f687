"""Identity and kind of a user's local checkpoint (trained weights or a teacher), without torch.

A run on the user's own weights is a different run from the one the harness trains: its record
must not be skipped because a trained record exists, nor overwrite it. So the weights' identity
becomes part of the recorded name (``hubert-mobilenetv2@teacher-hubert-base-1a2b3c4d``), the way
an ablation's components do. The identity is cheap, not a hash of gigabytes: each file's name,
size and modification time, and a digest of its first and last MiB. The content sample is what
tells apart two same-named, same-sized checkpoints whose times were flattened (unpacked archives,
mounts with coarse times); a format's header (safetensors, a torch zip's directory) and its last
tensors fall in it. Hidden files and folders (``.git``, the ``.cache`` that ``huggingface-cli
download --local-dir`` writes) are left out: a ``git gc`` in a cloned model folder changes no
weight.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

TeacherFormat = Literal["hubert", "beats"]

HF_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")
"""Files of an HF-format model folder, never an official BEATs checkpoint (one ``.pt``)."""


SAMPLE_BYTES = 1 << 20
"""Bytes read from each end of every checkpoint file for its identity."""


def checkpoint_identity(path: Path | str, option: str = "--checkpoint") -> str:
    """16 hex digits naming a checkpoint file or folder by its files' names, sizes, mtimes and a
    digest of each file's first and last :data:`SAMPLE_BYTES`."""
    path = Path(path)
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = sorted(
            (str(p.relative_to(path)), p)
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    if not files:
        raise FileNotFoundError(f"{option} {path}: no such file or directory (or it is empty)")
    digest = hashlib.sha256()
    for name, p in files:
        stat = p.stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:".encode())
        with p.open("rb") as handle:
            digest.update(handle.read(SAMPLE_BYTES))
            if stat.st_size > SAMPLE_BYTES:
                handle.seek(max(SAMPLE_BYTES, stat.st_size - SAMPLE_BYTES))
                digest.update(handle.read())
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
        if (path.parent / "config.json").is_file() and path.suffix in HF_WEIGHT_SUFFIXES:
            raise ValueError(
                f"--teacher-checkpoint {path} is one file of an HF-format folder: "
                f"a HuBERT checkpoint is the folder that holds config.json ({path.parent})"
            )
        return "beats"
    raise FileNotFoundError(f"--teacher-checkpoint {path}: no such file or directory")
