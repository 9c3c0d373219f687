"""Where ascbench keeps everything it writes.

Data sets, feature caches, teacher stages, checkpoints and run records live under one home
directory, never inside the repository, so that a checkout stays small and several checkouts
(or CI) can share expensive artefacts. Resolution order: an explicit ``--home`` flag, then
``$ASCBENCH_HOME``, then ``~/.cache/ascbench``.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ASCBENCH_HOME"


def resolve_home(home: Path | str | None = None) -> Path:
    """Return the ascbench home directory (created if missing)."""
    if home is None:
        env = os.environ.get(HOME_ENV)
        home = Path(env) if env else Path.home() / ".cache" / "ascbench"
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir(home: Path | str | None = None) -> Path:
    return _sub(home, "datasets")


def features_dir(home: Path | str | None = None) -> Path:
    return _sub(home, "features")


def records_dir(home: Path | str | None = None) -> Path:
    return _sub(home, "records")


def checkpoints_dir(home: Path | str | None = None) -> Path:
    return _sub(home, "checkpoints")


def teachers_dir(home: Path | str | None = None) -> Path:
    return _sub(home, "teachers")


def _sub(home: Path | str | None, name: str) -> Path:
    path = resolve_home(home) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
