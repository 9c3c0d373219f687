"""Faults in the data and its caches that must never turn into a silent wrong number: audio
rewritten in place, a home moved elsewhere, NaN samples, a full disk during a feature build."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.data import content
from ascbench.data.check import check_dataset
from ascbench.data.content import audio_digest
from ascbench.data.dataset import Dataset
from ascbench.data.reader import load_dataset
from ascbench.features import cache as cache_module
from ascbench.features.audio import AudioFormatError
from ascbench.features.cache import MANIFEST_FILE, FeatureCacheWarning, NotEnoughSpaceError, cache_dir, load_features
from ascbench.features.frontends import RawWaveform
from ascbench.training.config import TrainConfig
from ascbench.training.engine import TrainingData, _fingerprint

FRONTEND = RawWaveform(16_000)
"""The cheapest frontend: these tests are about the cache's identity, not its values."""
SUBSET = 6
OLD = 1_600_000_000_000_000_000
"""An mtime far in the past (2020), so that no file counts as just written."""


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one intra-op thread is faster


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Every test starts as a new process would: nothing remembered from another test."""
    content._memo.clear()
    yield
    content._memo.clear()


def _copy(source: Path, target: Path, mtime_ns: int = OLD) -> Path:
    shutil.copytree(source, target)
    for path in (target / "audio").iterdir():
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return target


def _subset(root: Path, clips: int = SUBSET) -> Dataset:
    dataset = load_dataset(root)
    return dataclasses.replace(dataset, clips=dataset.clips[:clips])


def _rewrite_reversed(path: Path, mtime_ns: int | None = None) -> None:
    """Same format, same size, other samples: what the fingerprint cannot see."""
    info = sf.info(str(path))
    samples, rate = sf.read(str(path), dtype="float64")
    sf.write(str(path), samples[::-1] * 0.25, rate, subtype=info.subtype)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


# -- audio content --------------------------------------------------------------------------------


def test_audio_rewritten_in_place_is_noticed_and_the_cache_rebuilt(tiny_synth_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_synth_root, tmp_path / "data")
    home = tmp_path / "home"
    dataset = _subset(root)
    first = load_features(dataset, FRONTEND, home=home, progress=False)
    before = audio_digest(dataset, home)
    fingerprint = load_dataset(root).fingerprint
    victim = root / dataset.clips[2].filename
    size = victim.stat().st_size
    _rewrite_reversed(victim)

    assert victim.stat().st_size == size and load_dataset(root).fingerprint == fingerprint  # blind to it
    assert audio_digest(dataset, home) != before
    with pytest.warns(FeatureCacheWarning, match="audio content changed"):
        second = load_features(dataset, FRONTEND, home=home, progress=False)
    assert second.built and second.path == first.path
    assert not np.array_equal(second.batch([2]), first.batch([2]))
    np.testing.assert_array_equal(second.batch([0, 1, 3]), first.batch([0, 1, 3]))
    assert second.key != first.key
    assert not load_features(dataset, FRONTEND, home=home, progress=False).built  # and then reused


def test_a_cache_without_an_audio_digest_is_rebuilt(tiny_synth_root: Path, tmp_path: Path) -> None:
    dataset = _subset(tiny_synth_root, 3)
    home = tmp_path / "home"
    manifest_path = load_features(dataset, FRONTEND, home=home, progress=False).path / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["audio_digest"]  # as written before the digest existed
    manifest_path.write_text(json.dumps(manifest))
    with pytest.warns(FeatureCacheWarning, match="no audio digest"):
        assert load_features(dataset, FRONTEND, home=home, progress=False).built


def test_digest_depends_on_content_only_and_rehashes_only_changed_files(
    tiny_synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_root = _copy(tiny_synth_root, tmp_path / "one", OLD)
    second_root = _copy(tiny_synth_root, tmp_path / "two", OLD + 123_456_789_000)
    home = tmp_path / "home"
    hashed: list[str] = []
    original = content._file_sha256

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(content, "_file_sha256", counting)
    # a file changed within RACY_NS of its stat is hashed again on every call (see the next
    # test), and copytree set every ctime to now; this test is about the index, so: no window
    monkeypatch.setattr(content, "RACY_NS", 0)
    first, second = _subset(first_root, 20), _subset(second_root, 20)
    digest = audio_digest(first, home)
    assert len(hashed) == 20
    assert audio_digest(second, home) == digest  # another path, other mtimes: hashed once, same digest
    assert len(hashed) == 40

    hashed.clear()
    assert audio_digest(second, home) == digest
    assert hashed == []  # same stat listing in this process: nothing read
    content._memo.clear()  # a new process: the index in the home spares the hashing
    assert audio_digest(second, home) == digest
    assert hashed == []

    victim = second_root / second.clips[7].filename
    _rewrite_reversed(victim, OLD + 1_000_000_000)
    changed = audio_digest(second, home)
    assert changed != digest and hashed == [victim.name]
    hashed.clear()
    content._memo.clear()
    assert audio_digest(second, home) == changed and hashed == []


def test_a_same_size_rewrite_under_a_restored_mtime_is_noticed(tiny_synth_root: Path, tmp_path: Path) -> None:
    """What a copy tool that keeps times does, or two writes within one tick of the file clock."""
    root = _copy(tiny_synth_root, tmp_path / "data")
    dataset = _subset(root, 3)
    home = tmp_path / "home"
    victim = root / dataset.clips[1].filename
    os.utime(victim, ns=(OLD, OLD))
    _rewrite_reversed(victim)  # mtime: now
    stat = victim.stat()
    before = audio_digest(dataset, home)
    _rewrite_reversed(victim)  # back to the original samples (reversed twice, scaled again) ...
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... under the very same mtime
    assert victim.stat().st_size == stat.st_size
    assert audio_digest(dataset, home) != before


def test_missing_audio_file_is_named(tiny_synth_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_synth_root, tmp_path / "data")
    dataset = _subset(root, 4)
    (root / dataset.clips[3].filename).unlink()
    with pytest.raises(FileNotFoundError, match=dataset.clips[3].filename):
        audio_digest(dataset, tmp_path / "home")


# -- a moved home ---------------------------------------------------------------------------------


def test_a_home_copied_elsewhere_keeps_the_training_fingerprint(tiny_synth_root: Path, tmp_path: Path) -> None:
    dataset = _subset(tiny_synth_root)
    here = load_features(dataset, FRONTEND, home=tmp_path / "here", progress=False)
    shutil.copytree(tmp_path / "here", tmp_path / "there")  # another node mounts the home elsewhere
    there = load_features(dataset, FRONTEND, home=tmp_path / "there", progress=False)
    assert not there.built and there.path != here.path

    def loss(model, inputs, labels, rows, step):  # noqa: ANN001, ANN202
        return model(inputs).sum()

    model = torch.nn.Linear(16_000, 10)
    config = TrainConfig(epochs=1, batch_size=2)
    rows, labels = np.arange(SUBSET), np.arange(SUBSET) % 10

    def identity(features, waveforms=None) -> str:  # noqa: ANN001
        return _fingerprint(model, TrainingData(features, rows, labels, waveforms=waveforms), config, 0, loss)

    assert identity(here) == identity(there)
    assert identity(here, waveforms=here) == identity(there, waveforms=there)
    assert there.key == here.key


# -- non-finite samples ---------------------------------------------------------------------------


def _poison(path: Path) -> None:
    samples, rate = sf.read(str(path), dtype="float32")
    samples[100] = np.nan
    samples[2000] = np.inf
    sf.write(str(path), samples, rate, subtype="FLOAT")


def test_check_names_a_float_wav_holding_nan(tiny_synth_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_synth_root, tmp_path / "data")
    victim = load_dataset(root).clips[5].filename
    _poison(root / victim)
    problems = check_dataset(root, progress=False).problems
    assert [(p.path, p.line) for p in problems] == [(victim, None)]
    assert "2 non-finite sample(s) (NaN or inf), the first at sample 100" in problems[0].message


def test_feature_build_names_a_clip_holding_nan(tiny_synth_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_synth_root, tmp_path / "data")
    dataset = _subset(root, 4)
    _poison(root / dataset.clips[2].filename)
    with pytest.raises(AudioFormatError, match=rf"{dataset.clips[2].filename}: 2 non-finite sample"):
        load_features(dataset, FRONTEND, home=tmp_path / "home", progress=False)


def test_check_reports_the_audio_digest(tiny_synth_root: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    report = check_dataset(tiny_synth_root, progress=False, digest=True, home=home)
    assert report.audio_digest == audio_digest(load_dataset(tiny_synth_root), home)
    result = CliRunner().invoke(app, ["data", "check", str(tiny_synth_root), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"audio digest {report.audio_digest}" in result.output
    assert f"fingerprint {report.fingerprint}" in result.output


# -- a full disk ----------------------------------------------------------------------------------

_Usage = namedtuple("_Usage", "total used free")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir() if p.name.startswith(".")) if directory.parent.exists() else []


def test_free_space_is_checked_at_its_boundary(tiny_synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _subset(tiny_synth_root, 3)
    home = tmp_path / "home"
    directory = cache_dir(dataset, FRONTEND, home)
    free = {"bytes": 0}
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: _Usage(10**12, 0, free["bytes"]))

    with pytest.raises(NotEnoughSpaceError) as caught:
        load_features(dataset, FRONTEND, home=home, progress=False)
    needed = caught.value.needed
    assert needed >= 3 * 16_000 * 4

    free["bytes"] = needed - 1
    with pytest.raises(OSError) as caught:
        load_features(dataset, FRONTEND, home=home, progress=False)
    error = caught.value
    assert isinstance(error, NotEnoughSpaceError) and error.errno == errno.ENOSPC
    assert str(directory) in str(error) and f"{needed:,} bytes" in str(error) and f"{needed - 1:,} bytes" in str(error)
    assert _leftovers(directory) == [] and not directory.exists()

    free["bytes"] = needed
    cached = load_features(dataset, FRONTEND, home=home, progress=False)
    assert cached.built and (cached.path / "features.npy").stat().st_size == needed
    assert _leftovers(directory) == []


def test_space_taken_after_the_check_is_an_error_not_a_crash(
    tiny_synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reservation fails (another writer filled the disk) instead of a later SIGBUS."""
    dataset = _subset(tiny_synth_root, 3)
    home = tmp_path / "home"
    directory = cache_dir(dataset, FRONTEND, home)

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module.os, "posix_fallocate", full)
    with pytest.raises(NotEnoughSpaceError, match="not enough free space"):
        load_features(dataset, FRONTEND, home=home, progress=False)
    assert _leftovers(directory) == [] and not directory.exists()


_BUILD_ON_SMALL_DISK = textwrap.dedent(
    """
    import dataclasses, shutil, sys
    from collections import namedtuple
    from ascbench.data.reader import load_dataset
    from ascbench.features.cache import load_features
    from ascbench.features.frontends import RawWaveform

    root, home, clips, lie = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "lie"
    if lie:  # another writer takes the space between the check and the build
        usage = namedtuple("usage", "total used free")
        shutil.disk_usage = lambda path: usage(1 << 40, 0, 1 << 40)
    dataset = load_dataset(root)
    dataset = dataclasses.replace(dataset, clips=dataset.clips[:clips])
    load_features(dataset, RawWaveform(32_000), home=home, progress=False)
    """
)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs, where mounting is permitted (root on Linux)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux mount(8)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


@pytest.mark.parametrize("lie", ["honest", "lie"])
def test_a_real_full_disk_fails_cleanly(tiny_synth_root: Path, small_disk: Path, lie: str) -> None:
    """20 clips of 32 kHz waveforms need 2.5 MB: with the true free space the check refuses the
    build; with a stale one the block reservation does. Never a SIGBUS, never a temp file left."""
    home = small_disk / "home"
    child = subprocess.run(
        [sys.executable, "-c", _BUILD_ON_SMALL_DISK, str(tiny_synth_root), str(home), "20", lie],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert child.returncode == 1, (child.returncode, child.stderr[-2000:])
    assert "NotEnoughSpaceError: not enough free space for the feature cache" in child.stderr
    assert "it needs 2,560,128 bytes" in child.stderr  # 20 x 32,000 float32 + the 128-byte .npy header
    leftovers = [p for p in (home / "features").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []
