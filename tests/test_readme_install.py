"""The README's install instructions stay true to the project they install: the CPU-only line pins
what pyproject.toml pins (a bumped torch in one and not the other would install a torch the
project was never run with, or fail to resolve), and `.ci/run` runs the Quickstart's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_TRIO = ("torch", "torchaudio", "torchvision")


def pinned() -> dict[str, str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", d).groups() for d in dependencies if "==" in d)
    return {name: pins[name] for name in TORCH_TRIO}


def test_the_cpu_only_install_pins_what_pyproject_pins():
    readme = " ".join((ROOT / "README.md").read_text().split())
    line = re.search(r"CPU-only torch on x86_64, install `([^`]+)` from PyTorch's CPU index", readme)
    assert line, "README lost its CPU-only install line"
    named = dict(part.split("==") for part in line.group(1).split())
    assert named == pinned()


def test_ci_runs_the_quickstart_test_command():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart") :].split("## ", 2)[1]
    commands = re.findall(r"```bash\n(.+?)\n```", quickstart)
    assert len(commands) == 2, commands
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
