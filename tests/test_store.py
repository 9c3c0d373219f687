"""Results store (atomic records, predictions beside them, corrupt files refused) and provenance."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import ascbench
from ascbench.evaluation.metrics import evaluate
from ascbench.results import provenance, store
from ascbench.results.provenance import clock, collect, config_hash, git_state
from ascbench.results.record import Record
from ascbench.results.store import CorruptRecordError, RecordNotFoundError, ResultsStore
from records_factory import RESAMPLES, TrainConfig, make_record, rekey


@pytest.fixture(scope="module")
def run() -> tuple[Record, object]:
    return make_record("cp-mobile", seed=1, skill=0.7)


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ResultsStore:
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    return ResultsStore()


def _leftovers(results: ResultsStore) -> list[Path]:
    return [p for p in results.root.rglob("*") if p.name.endswith(".tmp")]


def test_roundtrip_record_and_predictions(results: ResultsStore, run) -> None:
    record, predictions = run
    assert not results.exists(record.key)

    path = results.write(record, predictions)

    assert path == results.record_path(record.key)
    assert path.is_relative_to(Path(os.environ["ASCBENCH_HOME"]) / "records")
    assert results.exists(record.key)
    assert not results.exists(dataclasses.replace(record.key, seed=2))
    back = results.read(record.key)
    npz = results.predictions_path(back)
    assert npz is not None and npz.parent == path.parent and npz.name.startswith("seed1.")
    assert back.checksum is not None and back.predictions_sha256 is not None
    assert back == dataclasses.replace(record, predictions_file=npz.name, predictions_sha256=back.predictions_sha256,
                                       checksum=back.checksum)
    assert back.metrics.accuracy_ci95 == record.metrics.accuracy_ci95  # tuple survives JSON

    loaded = results.load_predictions(back)
    assert loaded.filenames == predictions.filenames
    np.testing.assert_array_equal(loaded.labels, predictions.labels)
    np.testing.assert_array_equal(loaded.scores, predictions.scores)
    # the stored predictions reproduce the stored metrics exactly (same bootstrap seed)
    assert evaluate(loaded, n_resamples=RESAMPLES, seed=record.key.seed) == back.metrics
    # a compressed npz: every member deflated
    with zipfile.ZipFile(npz) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert _leftovers(results) == []


def test_crash_between_predictions_and_record_leaves_no_record(
    results: ResultsStore, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, predictions = run
    real_write = store._atomic_write

    def dies_mid_json(path: Path, write) -> None:
        if path.suffix != ".json":
            return real_write(path, write)

        def half(file) -> None:
            file.write(json.dumps(record.to_json_dict())[:200].encode())
            raise KeyboardInterrupt("killed while writing the record")

        return real_write(path, half)

    monkeypatch.setattr(store, "_atomic_write", dies_mid_json)
    with pytest.raises(KeyboardInterrupt):
        results.write(record, predictions)

    assert len(list(results.root.rglob("*.predictions.npz"))) == 1  # the npz went first ...
    assert not results.record_path(record.key).exists()  # ... the record never appeared
    assert not results.exists(record.key)
    assert list(results.iter_records()) == []
    assert _leftovers(results) == []

    monkeypatch.setattr(store, "_atomic_write", real_write)  # the run is repeated and completes
    results.write(record, predictions)
    assert results.exists(record.key)
    assert len(results.load_predictions(results.read(record.key))) == len(predictions)


def test_crash_while_replacing_a_record_keeps_the_old_record_whole(
    results: ResultsStore, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--force``: the same key is written again. Killed between the new predictions and the new
    record, the store still holds the old record with its own predictions (never the old record
    in front of the new run's predictions, and never nothing)."""
    record, predictions = run
    results.write(record, predictions)
    real_write = store._atomic_write

    def dies_mid_json(path: Path, write) -> None:
        if path.suffix != ".json":
            return real_write(path, write)
        raise KeyboardInterrupt("killed while writing the record")

    monkeypatch.setattr(store, "_atomic_write", dies_mid_json)
    other = dataclasses.replace(predictions, scores=predictions.scores[::-1].copy(), labels=predictions.labels[::-1].copy(),
                                filenames=predictions.filenames[::-1])
    rerun = dataclasses.replace(record, metrics=dataclasses.replace(record.metrics, accuracy=0.5))
    with pytest.raises(KeyboardInterrupt):
        results.write(rerun, other)
    kept = results.usable(record.key)
    assert kept is not None and kept.metrics.accuracy == record.metrics.accuracy
    assert results.load_predictions(kept).filenames == predictions.filenames
    monkeypatch.setattr(store, "_atomic_write", real_write)
    results.write(record, predictions)  # the next write removes the orphaned predictions file
    assert len(list(results.root.rglob("*.predictions.npz"))) == 1


def test_crash_while_writing_predictions_leaves_nothing(
    results: ResultsStore, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, predictions = run

    def disk_full(file, predictions) -> None:
        file.write(b"PK\x03\x04partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_save_predictions", disk_full)
    with pytest.raises(OSError, match="No space"):
        results.write(record, predictions)
    assert not results.record_path(record.key).exists()
    assert list(results.root.rglob("*.predictions.npz")) == []
    assert _leftovers(results) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "", "not valid JSON"),
        (lambda text: text.replace('"ascbench.record/1"', '"other/9"'), "unsupported record schema"),
        (lambda text: text.replace('"accuracy":', '"acc":', 1), "not a run record"),
        (lambda text: text.replace('"seed": 1', '"seed": 7', 1), "belongs elsewhere"),
    ],
    ids=["truncated", "empty", "foreign-schema", "missing-field", "moved"],
)
def test_corrupt_record_is_reported_not_used(
    results: ResultsStore, run, caplog: pytest.LogCaptureFixture, damage, reason: str
) -> None:
    record, predictions = run
    path = results.write(record, predictions)
    path.write_text(damage(path.read_text()))

    with caplog.at_level(logging.WARNING, logger="ascbench.results.store"):
        assert not results.exists(record.key)
        assert list(results.iter_records()) == []
    assert str(path) in caplog.text and reason in caplog.text
    with pytest.raises(CorruptRecordError, match=reason):
        results.read(record.key)
    [invalid] = results.invalid_records()
    assert invalid.path == path and reason in invalid.reason


def test_read_missing_record_names_the_expected_path(results: ResultsStore, run) -> None:
    record, _ = run
    with pytest.raises(RecordNotFoundError, match=str(results.record_path(record.key))):
        results.read(record.key)


def test_prediction_count_must_match_the_record(results: ResultsStore, run) -> None:
    record, predictions = run
    short = dataclasses.replace(predictions, filenames=predictions.filenames[:-1], labels=predictions.labels[:-1],
                                scores=predictions.scores[:-1])
    with pytest.raises(ValueError, match=f"{len(short)} predictions but metrics.n_test = {len(predictions)}"):
        results.write(record, short)
    assert not results.exists(record.key)


def test_rewrite_without_predictions_drops_the_old_ones(results: ResultsStore, run) -> None:
    record, predictions = run
    results.write(record, predictions)
    results.write(record)  # same key, rerun that kept no predictions
    assert list(results.root.rglob("*.predictions.npz")) == []
    with pytest.raises(FileNotFoundError, match="without per-clip predictions"):
        results.load_predictions(results.read(record.key))


def test_non_finite_metric_is_refused(results: ResultsStore, run) -> None:
    record, _ = run
    bad = dataclasses.replace(record, metrics=dataclasses.replace(record.metrics, log_loss=float("nan")))
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        results.write(bad)
    assert not results.exists(record.key)


def test_iter_records_filters_by_key_fields(results: ResultsStore, run) -> None:
    record, _ = run
    keys = []
    for dataset in ("synth-tau22-tiny", "tau22"):
        for fraction in (0.05, 0.25):
            for system in ("cp-mobile", "efficientnet-b0"):
                for profile in ("smoke", "quick"):
                    rec = rekey(record, dataset=dataset, fraction=fraction, system=system, profile=profile)
                    results.write(rec)
                    keys.append(rec.key)

    def found(**filters) -> set:
        return {r.key for r in results.iter_records(**filters)}

    assert found() == set(keys)
    assert found(dataset="tau22") == {k for k in keys if k.dataset == "tau22"}
    assert found(fraction="25") == found(fraction=0.25) == {k for k in keys if k.fraction == 0.25}
    assert found(system="efficientnet-b0", profile="quick", dataset="synth-tau22-tiny", fraction="5%") == {
        k for k in keys
        if (k.system, k.profile, k.dataset, k.fraction) == ("efficientnet-b0", "quick", "synth-tau22-tiny", 0.05)
    }
    assert len(found(system="efficientnet-b0", profile="quick", dataset="synth-tau22-tiny", fraction="5%")) == 1
    assert found(system="no-such-system") == set()
    with pytest.raises(ValueError, match="invalid fraction"):
        found(fraction=0.3)


# ---------------------------------------------------------------- provenance


def test_collect_records_versions_device_and_command(run) -> None:
    record, _ = run
    prov = record.provenance
    assert prov["ascbench_version"] == ascbench.__version__
    assert prov["python"] == platform.python_version()
    for package in ("torch", "torchaudio", "transformers", "timm"):
        assert prov["packages"][package] == metadata.version(package)
    import torch

    assert prov["device"]["cpu_count"] == os.cpu_count()
    assert prov["device"]["machine"] == platform.machine()  # x86_64 and aarch64 draw other numbers
    assert prov["device"]["cuda"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    assert prov["command"] == ["ascbench", "run", "--models", "cp-mobile", "--seeds", "1"]
    assert prov["config"] == {"lr": 1e-3, "epochs": 2, "batch_size": 32}
    assert prov["config_hash"] == config_hash(TrainConfig())
    json.dumps(prov, allow_nan=False)  # storable as is


def test_collect_reports_this_checkout_commit() -> None:
    head = subprocess.run(["git", "-C", str(provenance.package_root()), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    prov = collect(None)
    if head.returncode != 0:
        assert prov["git_commit"] is None and prov["git_dirty"] is None
    else:
        assert prov["git_commit"] == head.stdout.strip()
        assert isinstance(prov["git_dirty"], bool)
    assert prov["config"] is None and prov["config_hash"] is None


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_git_state_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "model.py").write_text("WIDTH = 32\n")
    _git(repo, "add", "model.py")
    _git(repo, "commit", "-q", "-m", "first")
    commit = _git(repo, "rev-parse", "HEAD")

    assert git_state(repo) == (commit, False)
    (repo / "notes.txt").write_text("untracked files do not make a checkout dirty\n")
    assert git_state(repo) == (commit, False)
    (repo / "model.py").write_text("WIDTH = 48\n")
    assert git_state(repo) == (commit, True)
    # a package inside some other repository must not report that repository's commit
    (repo / "site-packages").mkdir()
    assert git_state(repo / "site-packages") == (None, None)
    assert git_state(tmp_path / "not-a-repo-at-all") == (None, None)


@dataclasses.dataclass(frozen=True)
class Nested:
    teacher: TrainConfig
    layers: tuple[int, ...]
    out: Path


@dataclasses.dataclass(frozen=True)
class SameFieldsOtherRecipe:
    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 32


def test_config_hash_equal_iff_configs_equal() -> None:
    assert config_hash(TrainConfig()) == config_hash(TrainConfig(lr=0.001, epochs=2))
    assert config_hash(TrainConfig()) != config_hash(TrainConfig(lr=0.0011))
    assert config_hash(TrainConfig()) != config_hash(TrainConfig(batch_size=64))
    assert config_hash(TrainConfig()) != config_hash(SameFieldsOtherRecipe())
    a = Nested(TrainConfig(), (3, 2, 1), Path("/tmp/x"))
    assert config_hash(a) == config_hash(Nested(TrainConfig(), (3, 2, 1), Path("/tmp/x")))
    assert config_hash(a) != config_hash(Nested(TrainConfig(epochs=3), (3, 2, 1), Path("/tmp/x")))
    assert config_hash(a) != config_hash(Nested(TrainConfig(), (3, 2), Path("/tmp/x")))
    assert len(config_hash(a)) == 64


def test_config_hash_is_stable_across_processes() -> None:
    code = (
        "import sys; sys.path.insert(0, 'tests'); from records_factory import TrainConfig; "
        "from ascbench.results.provenance import config_hash; print(config_hash(TrainConfig(lr=0.5)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                           cwd=Path(__file__).parent.parent)
    assert other.stdout.strip() == config_hash(TrainConfig(lr=0.5))


def test_config_without_canonical_form_is_refused() -> None:
    @dataclasses.dataclass
    class WithObject:
        thing: object

    with pytest.raises(TypeError, match="no canonical JSON form"):
        config_hash(WithObject(object()))
    with pytest.raises(TypeError, match="expected a dataclass instance"):
        config_hash({"lr": 1e-3})


def test_clock_stamps_utc_start_and_end_even_on_error() -> None:
    prov = collect(TrainConfig())
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with pytest.raises(RuntimeError):
        with clock(prov) as run:
            raise RuntimeError("training diverged")
    after = datetime.now(timezone.utc)
    started = datetime.fromisoformat(prov["started_utc"])
    finished = datetime.fromisoformat(prov["finished_utc"])
    assert started.utcoffset() == finished.utcoffset() == timedelta(0)
    assert before <= started <= finished <= after
    assert run.elapsed_s is not None and run.elapsed_s >= 0
