"""Shared fixtures of the benchmarks: synth-tau22 small and its baseline-mel cache, made once.

The benchmarks live outside ``testpaths`` (``tests``), so ``pytest`` alone never runs them;
``pytest benchmarks/ --benchmark-only`` does. Files are named ``bench_*.py`` and collected by
the hook below, so they cannot be mistaken for tests either.

Generating synth small and building its mel cache take a minute or two each on two cores. To
reuse them across sessions, point ``ASCBENCH_BENCH_DATA`` at a synth-tau22 small directory
(``ascbench data synth --size small``) and ``ASCBENCH_BENCH_HOME`` at an ascbench home whose
cache may be (or already is) built there. The benchmarks that time generation and cache
building always write into fresh temporary directories.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ascbench.data.dataset import Dataset
from ascbench.data.reader import load_dataset
from ascbench.data.synth import SynthConfig, generate
from ascbench.features.cache import CachedFeatures, load_features
from ascbench.features.frontends import BaselineMel

DATA_ENV = "ASCBENCH_BENCH_DATA"
HOME_ENV = "ASCBENCH_BENCH_HOME"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` (pytest's default pattern is ``test_*.py``; a file named on the
    command line is collected by pytest itself)."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ASCBENCH_HOME of the session: a temporary directory (or ``$ASCBENCH_BENCH_HOME``)."""
    home = Path(os.environ[HOME_ENV]) if os.environ.get(HOME_ENV) else tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASCBENCH_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth-tau22 small, seed 0 (5,460 clips): ``$ASCBENCH_BENCH_DATA`` or generated once."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return generate(SynthConfig.preset("small", seed=0), tmp_path_factory.mktemp("data") / "small", progress=False)


@pytest.fixture(scope="session")
def small_dataset(small_root: Path) -> Dataset:
    return load_dataset(small_root)


@pytest.fixture(scope="session")
def small_mel(small_dataset: Dataset, _home: Path) -> CachedFeatures:
    """The baseline-mel cache of synth small in the session's home (built if missing)."""
    return load_features(small_dataset, BaselineMel(), home=_home, progress=False)
