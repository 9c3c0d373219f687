"""The Ray executor: same records as the local executor, skipping, shared-stage ordering."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch

from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunRequest
from ascbench.runner.ray_executor import RAY_MISSING, import_ray, plan
from tau_fixture import build_tau_fixture

PLUGIN = """
    from torch import nn
    from ascbench import register_system

    def _cnn(width: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, width, 5, stride=4), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
        )

    @register_system("tiny-cnn", description="a small dropped-in test submission")
    def tiny_cnn() -> nn.Module:
        return _cnn(8)

    @register_system("tiny-cnn-wide", description="the same, twice as wide")
    def tiny_cnn_wide() -> nn.Module:
        return _cnn(16)
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
    system: str = "student"
    seed: int = 0
    options: object = None

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
    assert plan(requests) == [[], [], [0], [], [], [0], [3]]


def test_a_student_of_an_ensemble_waits_for_its_member_runs():
    from ascbench.recipes.options import RunOptions

    requests = [
        StagedRequest(None, 0.25, system="cp-mobile"),  # 0, a member at seed 0
        StagedRequest(None, 0.25, system="efficientnet-b0"),  # 1, a member at seed 0
        StagedRequest(None, 0.25, system="cp-mobile", seed=1),  # 2, a member at seed 1
        StagedRequest(None, 0.25, system="mobilenetv2", options=RunOptions(teacher="runs:cp-mobile,efficientnet-b0")),  # 3
        StagedRequest(None, 0.25, system="mobilenetv2", seed=1, options=RunOptions(teacher="runs:cp-mobile")),  # 4
    ]
    assert plan(requests) == [[], [], [], [0, 1], [2]]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """2 systems x 2 seeds on the tiny real-format data set, smoke profile."""
    root = tmp_path_factory.mktemp("ray")
    data = build_tau_fixture(root / "dev").root
    submissions = root / "submissions"
    submissions.mkdir()
    (submissions / "tiny_cnns.py").write_text(textwrap.dedent(PLUGIN))
    return [
        RunRequest(system, data, 0.25, seed, profile="smoke", device="cpu", submissions=submissions)
        for system in ("tiny-cnn", "tiny-cnn-wide")
        for seed in (0, 1)
    ]


def differences(got: object, want: object, path: str = "") -> dict[str, tuple[object, object]]:
    """Leaf values that differ between two records' dicts, by dotted path: a readable failure."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: dict[str, tuple[object, object]] = {}
        for key in sorted(set(got) | set(want), key=str):
            out.update(differences(got.get(key), want.get(key), f"{path}.{key}" if path else str(key)))
        return out
    return {} if got == want else {path: (got, want)}


def comparable(record) -> dict:
    """What must not depend on the executor: key, metrics, complexity, system, config (not times, hosts)."""
    data = record.to_json_dict()
    same = {k: data[k] for k in ("key", "metrics", "complexity", "system", "notes")}
    same["notes"].pop("clips_per_second", None)  # a throughput, measured
    same["notes"].pop("resumed_from_epoch", None)  # where this execution picked the training up
    same["provenance"] = {k: data["provenance"][k] for k in ("config_hash", "torch_threads")}
    return same


@pytest.mark.slow
def test_ray_grid_records_equal_local_ones_and_resume(grid, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ascbench[ray]'")
    from ascbench.runner.local import run_local
    from ascbench.runner.ray_executor import run_with_ray

    home = tmp_path / "home"
    requests = [dataclasses.replace(r, home=home) for r in grid]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each Ray task below gets with cpus_per_run=1
    try:
        local = [comparable(o.record) for o in run_local(requests, progress=False)]
    finally:
        torch.set_num_threads(threads)
    # start from scratch, keeping only the feature cache (shared by every executor)
    shutil.rmtree(home / "records")
    shutil.rmtree(home / "checkpoints")

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_with_ray(requests, cpus_per_run=1, progress=False)
        assert [o.error for o in remote] == [None] * 4
        assert [o.request.label() for o in remote] == [r.label() for r in grid]
        for outcome, expected in zip(remote, local):
            assert differences(comparable(outcome.record), expected) == {}, outcome.request.label()

        # an unfinished run (no record, e.g. its node died) is the only one run again
        remote[2].record_path.unlink()
        again = run_with_ray(requests, cpus_per_run=1, progress=False)
        assert [o.skipped for o in again] == [True, True, False, True]
        assert differences(comparable(again[2].record), local[2]) == {}
        assert len(list(ResultsStore(home).iter_records())) == 4
    finally:
        ray.shutdown()
