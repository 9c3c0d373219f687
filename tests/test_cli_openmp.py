"""The command line's OpenMP wait policy: passive unless the user chose one, set before torch
loads (libgomp reads it once, at load), and recorded with every run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BEFORE_TORCH = "import sys, os, ascbench.cli; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"


def _probe(code: str, policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=300).stdout.strip()


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_cli_waits_passively_unless_told_otherwise(given: str | None, expected: str) -> None:
    assert _probe(BEFORE_TORCH, given) == f"{expected} False"  # set before anything could load torch


def test_the_policy_is_recorded_in_a_runs_provenance() -> None:
    from ascbench.results.provenance import collect

    assert collect(None)["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")
