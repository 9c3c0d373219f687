"""Resumable training state: written atomically at epoch ends, read back with ``weights_only=True``.

A checkpoint holds everything the next epoch depends on -- model (parameters and buffers),
optimizer, LR schedule, gradient scaler, every random generator the run draws from, the epoch
and step counters and the history -- so a run resumed from it continues bit-for-bit as if it
had never stopped (on the same device and thread count). It also holds a fingerprint of the
call that wrote it (config, seed, data, initial weights, loss); a checkpoint with another
fingerprint belongs to another run and is never resumed from.

Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the
old checkpoint: a kill at any moment leaves either the previous or the new checkpoint, whole.
"""

from __future__ import annotations

import os
import random
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FILE = "train_state.pt"
FORMAT_VERSION = 1


class CheckpointWarning(UserWarning):
    """A checkpoint in the work directory was ignored (unreadable, or of another run)."""


Generator = torch.Generator | np.random.Generator
"""A random generator a training run owns besides the global ones (data order, augmentation)."""

_GLOBAL_STREAMS = ("torch", "cuda", "numpy", "python")


def capture_rng(generators: Mapping[str, Generator]) -> dict[str, Any]:
    """The state of every random generator a training run draws from, as weights-only-loadable values:
    the global ones (torch CPU and CUDA, numpy, Python) and the run's own ``generators``, by name."""
    clash = sorted(set(generators) & set(_GLOBAL_STREAMS))
    if clash:
        raise ValueError(f"generator names {clash} are taken by the global random streams")
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {**np_state, "state": {"key": np_state["state"]["key"].tolist(), "pos": np_state["state"]["pos"]}},
        "python": random.getstate(),
        **{name: _generator_state(generator) for name, generator in generators.items()},
    }


def restore_rng(state: dict[str, Any], generators: Mapping[str, Generator]) -> None:
    """Put every generator back into the state :func:`capture_rng` recorded.

    The torch states go back as CPU tensors whatever device they were loaded to:
    ``torch.set_rng_state`` and ``torch.cuda.set_rng_state_all`` take CPU ByteTensors only."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda.cpu() for cuda in state["cuda"]])
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32), "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    for name, generator in generators.items():
        if isinstance(generator, torch.Generator):
            generator.set_state(state[name].cpu())
        else:
            generator.bit_generator.state = state[name]


def _generator_state(generator: Generator) -> Any:
    return generator.get_state() if isinstance(generator, torch.Generator) else generator.bit_generator.state


def save_atomic(path: Path, obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (temporary file, fsync, rename): a kill at any
    moment leaves the previous file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the training ``state`` to ``path`` atomically, marked with the format version."""
    save_atomic(path, {"format_version": FORMAT_VERSION, **state})


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists, is readable and was written by the same call; else None.

    Always read onto the CPU: ``load_state_dict`` copies to the parameters' device anyway, and the
    random states must be CPU tensors (a CUDA one is refused by ``torch.set_rng_state``).

    A checkpoint that cannot be read or belongs to another call is reported with a
    :class:`CheckpointWarning` (naming the file and why) and ignored; the next save replaces it.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or foreign file: whatever torch raises, it is unusable
        warnings.warn(f"ignoring checkpoint {path}: unreadable ({error})", CheckpointWarning, stacklevel=2)
        return None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        warnings.warn(f"ignoring checkpoint {path}: not a format-{FORMAT_VERSION} training state", CheckpointWarning, stacklevel=2)
        return None
    if state.get("fingerprint") != fingerprint:
        warnings.warn(
            f"ignoring checkpoint {path}: written by a different run (config, seed, data, initial weights or loss "
            "differ); training from scratch",
            CheckpointWarning,
            stacklevel=2,
        )
        return None
    return state
