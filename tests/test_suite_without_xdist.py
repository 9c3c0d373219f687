"""The suite loads with plain pytest: pytest-xdist is how CI runs it, not a requirement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_suite_collects_without_xdist() -> None:
    tests = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "--collect-only", "-q", str(tests / "test_metrics.py")],
        capture_output=True, text=True, cwd=tests.parent, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test_metrics.py::" in result.stdout
