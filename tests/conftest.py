"""Session fixtures shared by test files: the tiny synthetic data set, generated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ascbench.data.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def tiny_synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth-tau22-tiny, seed 0 (~1,200 clips), written once per session into a temporary directory.

    Read-only for tests: copy it (tests/tau_fixture.clone_fixture-style hard links are fine
    for csv-only edits) before changing anything.
    """
    root = tmp_path_factory.mktemp("synth") / "synth-tau22-tiny-seed0"
    return generate(SynthConfig.preset("tiny", seed=0), root, progress=False)
