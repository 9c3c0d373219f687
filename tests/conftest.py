"""Session fixtures shared by test files (the tiny synthetic data set, generated once), and the
CPU placement of pytest-xdist workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ascbench.data.synth import SynthConfig, generate


@pytest.hookimpl(optionalhook=True)  # plain pytest, without xdist, must still load this file
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may run on (xdist would count physical cores
    when psutil is installed, whatever the affinity mask allows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_configure(config: pytest.Config) -> None:
    """Give each xdist worker a core of its own.

    The engine trains with at most as many torch threads as the process has cores (its affinity
    mask). Two workers with two spinning OpenMP threads each on a two-core machine would take
    turns at both cores; pinned, each computes on one and the suite's Python-bound parts
    (torch.export, data generation) run side by side.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > len(cores):
        return  # more workers than cores: leave the scheduler to share them
    index = int(worker[2:])
    share = cores[index::workers]
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a loaded machine
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module of tiny models)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth-tau22-tiny, seed 0 (~1,200 clips), written once per session into a temporary directory.

    Read-only for tests: copy it (tests/tau_fixture.clone_fixture-style hard links are fine
    for csv-only edits) before changing anything.
    """
    root = tmp_path_factory.mktemp("synth") / "synth-tau22-tiny-seed0"
    return generate(SynthConfig.preset("tiny", seed=0), root, progress=False)
