"""A virtual environment with torch and torchaudio and nothing else, and a pip install into it:
where a DCASE 2025 inference package must work (the organizers' environment has no ascbench)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTHING_BUT_TORCH = """
import importlib
for name in ("ascbench", "baselines", "numpy", "soundfile", "torchcodec"):
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable in the fresh environment")
"""
"""Script lines that stop a script run in the fresh environment if anything but torch and
torchaudio (and what they need) could be imported there: the package must not lean on them."""


def _installed_entries(names: list[str]) -> list[Path]:
    """The site-packages entries (packages, modules, .pth files, dist-info folders) of the named
    distributions and of everything they require, recursively, wherever each is installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo, entries = list(names), {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)
        for requirement in map(Requirement, dist.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        for file in dist.files or []:
            top = file.parts[0]
            path = Path(dist.locate_file(top))
            if top not in ("..", "__pycache__") and path.exists():
                entries.setdefault(top, path)
    return list(entries.values())


def _offline_build_tools() -> list[str] | None:
    """The distributions an offline ``--no-build-isolation`` build needs: setuptools, and wheel
    when setuptools is older than 70.1 (it cannot build a wheel by itself); None when this
    environment lacks them -- pip then fetches the build backend from the package index."""
    try:
        version = tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        return None
    if version >= (70, 1):
        return ["setuptools"]
    return ["setuptools", "wheel"] if importlib.util.find_spec("wheel") is not None else None


def make_fresh_environment(root: Path) -> Path:
    """A virtual environment without system site-packages in which torch and torchaudio (and
    what they require) are importable through links to this environment's copies, and nothing
    else is (but the build tools, for an offline build); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-I", "-c", query], check=True, capture_output=True, text=True).stdout.strip())
    for entry in _installed_entries(["torch", "torchaudio", *(_offline_build_tools() or [])]):
        os.symlink(entry, site / entry.name)
    return python


def install_in_fresh_environment(project: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``pip install`` a copy of ``project`` into a new environment; its python and the environment
    variables to run it with. Skips when the build backend is neither here nor reachable."""
    python = make_fresh_environment(tmp_path / "fresh")
    source = tmp_path / "src" / project.name  # a copy: pip's in-tree build writes build/ and egg-info
    shutil.copytree(project, source)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    offline = _offline_build_tools() is not None
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir", str(source)]
    if offline:
        install[-1:-1] = ["--no-index", "--no-build-isolation"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    unreachable = ("No matching distribution found for setuptools", "Failed to establish a new connection", "Network is unreachable")
    if result.returncode != 0 and not offline and any(s in result.stdout + result.stderr for s in unreachable):
        pytest.skip(
            "building the package needs setuptools>=70.1 or the wheel package: neither is in this environment "
            "and the package index that pip would fetch them from cannot be reached"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return python, env
