"""Reference data from official implementations in ``../shared/fixtures`` (beside the checkout, as
in CI), or wherever ``ASCBENCH_FIXTURES`` points; tests that need it skip, with the reason, without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_fixture(relative: str) -> Path:
    """The fixture file ``relative`` (e.g. ``beats/tiny_io.npz``); skips the test when it is absent."""
    env = os.environ.get("ASCBENCH_FIXTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    path = root / relative
    if not path.is_file():
        pytest.skip(f"reference fixture {path} not found (set ASCBENCH_FIXTURES to the fixtures folder)")
    return path
