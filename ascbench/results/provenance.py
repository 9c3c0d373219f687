"""Where a number came from: code version, packages, machine, configuration and times of a run.

Collected once per run and stored in the record, so that a leaderboard cell can always be traced
back to the exact code (git commit, dirty flag), environment and configuration that produced it.
Nothing here may fail a run: what cannot be determined is recorded as ``None``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any

import ascbench

PACKAGES: tuple[str, ...] = ("torch", "torchaudio", "transformers", "timm", "numpy", "scikit-learn")
GIT_TIMEOUT_S = 10.0


def collect(config: object | None, command: list[str] | None = None) -> dict[str, Any]:
    """Provenance of a run that is about to start; ``started_utc``/``finished_utc`` stay None
    until :func:`clock` fills them.

    ``config`` is the run's configuration dataclass instance (or None when a run has none).
    """
    config_dict = config_to_dict(config) if config is not None else None
    commit, dirty = git_state(package_root())
    return {
        "ascbench_version": ascbench.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": device_info(),
        "torch_threads": _torch_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "hostname": socket.gethostname(),
        "config": config_dict,
        "config_hash": config_hash(config) if config is not None else None,
        "started_utc": None,
        "finished_utc": None,
        "command": list(command) if command is not None else None,
    }


UNSET_LEAVES_IDENTITY = "unset_leaves_identity"
"""Field metadata of a config or options field added after records existed: while it holds its
default it is left out of the config's dict (and so of every hash and identity made from it), so
the records made before it existed stay current."""


def config_to_dict(config: object) -> dict[str, Any]:
    """A config dataclass as plain JSON types (Paths as strings, tuples as lists, enums as values),
    without the later fields (:data:`UNSET_LEAVES_IDENTITY`) that hold their defaults."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config: expected a dataclass instance, got {type(config).__qualname__}")
    return json.loads(canonical_json(_fields(config)))


def _fields(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _fields(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get(UNSET_LEAVES_IDENTITY) and getattr(value, f.name) == f.default)
        }
    if isinstance(value, (list, tuple)):
        return [_fields(v) for v in value]
    if isinstance(value, dict):
        return {k: _fields(v) for k, v in value.items()}
    return value


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal configs give byte-identical text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_plain)


def config_hash(config: object) -> str:
    """sha256 (hex) of the canonical JSON of the config's class name and ``dataclasses.asdict(config)``.

    Equal configs (``==``: same class, equal fields) hash equal in every process; the class name
    is part of the hash because two recipes' configs with coincidentally equal fields are not
    the same configuration.
    """
    payload = {"class": type(config).__qualname__, "fields": config_to_dict(config)}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def package_root() -> Path:
    """The directory holding the ``ascbench`` package (a checkout root for an editable install)."""
    return Path(ascbench.__file__).resolve().parent.parent


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at exactly ``root``; (None, None) if it is not one.

    ``root`` must be the repository's top level: an ascbench installed into site-packages of
    some other git repository must not report that repository's commit. Dirty means tracked
    files differ from the commit (untracked files are ignored, as ``git describe --dirty`` does).
    """
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict[str, Any]:
    """CPU model, architecture and core count, and the name of the current CUDA device when one is
    visible. The architecture is its own field because the same seed draws other numbers on an
    x86_64 and an aarch64 CPU, and the CPU name does not tell them apart (aarch64 Linux has no
    model name to read; under emulation, /proc/cpuinfo names the host's CPU)."""
    info: dict[str, Any] = {"cpu": _cpu_model(), "machine": platform.machine() or None, "cpu_count": os.cpu_count(), "cuda": None}
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # no torch or a broken driver must not fail the run being described
        info["cuda"] = None
    return info


def utc_now() -> str:
    """The current UTC time as ISO-8601 with offset, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class RunClock:
    """Start/finish times of a run, also written into the provenance dict it was opened on."""

    started_utc: str | None = None
    finished_utc: str | None = None
    elapsed_s: float | None = None


@contextmanager
def clock(provenance: dict[str, Any]) -> Iterator[RunClock]:
    """Stamp ``provenance['started_utc']`` on entry and ``['finished_utc']`` on exit (also on error).

    ``elapsed_s`` uses a monotonic clock, so it is right even if the wall clock jumps::

        prov = collect(config, sys.argv)
        with clock(prov) as run:
            ...
        timings["total_s"] = run.elapsed_s
    """
    run = RunClock(started_utc=utc_now())
    provenance["started_utc"] = run.started_utc
    start = time.perf_counter()
    try:
        yield run
    finally:
        run.elapsed_s = time.perf_counter() - start
        run.finished_utc = utc_now()
        provenance["finished_utc"] = run.finished_utc


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def _plain(value: Any) -> Any:
    """JSON form of the non-JSON values a config may hold."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(
        f"config holds a {type(value).__qualname__} ({value!r}), which has no canonical JSON form; "
        "use plain numbers, strings, paths, enums, tuples or nested dataclasses"
    )
