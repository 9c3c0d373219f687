"""The Ray executor: same records as the local executor, skipping, shared-stage ordering."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunRequest
from ascbench.runner.ray_executor import RAY_MISSING, import_ray, plan
from tau_fixture import build_tau_fixture

PLUGIN = """
    from torch import nn
    from ascbench import register_system

    @register_system("tiny-cnn", description="a small dropped-in test submission")
    def tiny_cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 5, stride=4), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        )
"""


def test_without_ray_the_message_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    with pytest.raises(ImportError, match=r"pip install 'ascbench\[ray\]'"):
        import_ray()
    assert "ascbench[ray]" in RAY_MISSING


@dataclass(frozen=True)
class StagedRequest:
    """Stands in for a RunRequest whose recipe has a teacher stage keyed by (teacher, fraction)."""

    teacher: str | None
    fraction: float

    def shared_stage_key(self):
        return None if self.teacher is None else (self.teacher, self.fraction)


def test_runs_sharing_a_teacher_stage_wait_for_the_first():
    requests = [
        StagedRequest("beats", 0.25),  # 0 builds (beats, 0.25)
        StagedRequest(None, 0.25),  # 1 has no stage
        StagedRequest("beats", 0.25),  # 2 waits for 0
        StagedRequest("beats", 0.5),  # 3 builds (beats, 0.5)
        StagedRequest("hubert", 0.25),  # 4 builds (hubert, 0.25)
        StagedRequest("beats", 0.25),  # 5 waits for 0
        StagedRequest("beats", 0.5),  # 6 waits for 3
    ]
    assert plan(requests) == [None, None, 0, None, None, 0, 3]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    data = build_tau_fixture(root / "dev").root
    submissions = root / "submissions"
    submissions.mkdir()
    (submissions / "tiny_cnn.py").write_text(textwrap.dedent(PLUGIN))
    return [
        RunRequest(system, data, 0.25, seed, profile="smoke", device="cpu", submissions=submissions)
        for system in ("cp-mobile", "tiny-cnn")
        for seed in (0, 1)
    ]


def comparable(record) -> dict:
    """What must not depend on the executor: key, metrics, complexity, system (not times, hosts)."""
    data = record.to_json_dict()
    return {k: data[k] for k in ("key", "metrics", "complexity", "system")}


@pytest.mark.slow
def test_ray_grid_records_equal_local_ones_and_resume(grid, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ascbench[ray]'")
    from ascbench.runner.local import run_local
    from ascbench.runner.ray_executor import run_with_ray

    local_home, ray_home = tmp_path / "local", tmp_path / "ray"
    local = run_local([dataclasses.replace(r, home=local_home) for r in grid], progress=False)
    assert all(o.error is None for o in local), [o.error for o in local]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        requests = [dataclasses.replace(r, home=ray_home) for r in grid]
        remote = run_with_ray(requests, progress=False)
        assert [o.error for o in remote] == [None] * 4
        assert [comparable(o.record) for o in remote] == [comparable(o.record) for o in local]
        assert [o.request.label() for o in remote] == [r.label() for r in grid]

        # an unfinished run (no record, e.g. its node died) is the only one run again
        lost = remote[2].record_path
        lost.unlink()
        again = run_with_ray(requests, progress=False)
        assert [o.skipped for o in again] == [True, True, False, True]
        assert comparable(again[2].record) == comparable(remote[2].record)
        assert len(list(ResultsStore(ray_home).iter_records())) == 4
    finally:
        ray.shutdown()
