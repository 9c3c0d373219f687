"""The feature cache: correct values, reuse without recomputation, damage detected and repaired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ascbench.data.dataset import Clip, Dataset
from ascbench.data.layout import CLIP_SAMPLES, SAMPLE_RATE, SCENES, ClipName
from ascbench.features import cache as cache_module
from ascbench.features.audio import AudioFormatError, read_batch
from ascbench.features.cache import (
    DATA_FILE,
    MANIFEST_FILE,
    FeatureCacheWarning,
    cache_dir,
    load_features,
)
from ascbench.features.frontends import BaselineMel, KaldiFbank, RawWaveform

CLIPS = 24


def _write_tiny_dataset(root: Path, clips: int = CLIPS, fingerprint: str = "tinyfp0001") -> Dataset:
    """A few 1-s 24-bit wavs (tones over noise, a different tone per clip) in TAU22 layout."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    entries = []
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    for i in range(clips):
        name = ClipName(SCENES[i % len(SCENES)], "vienna", str(100 + i // 10), str(i), i % 10, "a")
        signal = 0.05 * rng.standard_normal(CLIP_SAMPLES) + 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t)
        sf.write(root / name.filename, signal.astype(np.float32), SAMPLE_RATE, subtype="PCM_24")
        entries.append(
            Clip(name.filename, name.scene, name.device, name.city, name.identifier, name.recording_id)
        )
    return Dataset(root=root, name="tiny-test", fingerprint=fingerprint, clips=tuple(entries), splits={}, test=())


def _decoded(dataset: Dataset) -> torch.Tensor:
    """The clips as soundfile decodes them, one file at a time (independent of the cache's reader)."""
    return torch.stack([torch.from_numpy(sf.read(dataset.root / c.filename, dtype="float32")[0]) for c in dataset.clips])


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny tensors gain nothing from two threads, and OpenMP spinning slows a shared machine down."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Dataset:
    return _write_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("ASCBENCH_HOME", str(path))
    return path


def _expected_mel(dataset: Dataset) -> torch.Tensor:
    return torch.cat([BaselineMel().compute(row.unsqueeze(0), SAMPLE_RATE) for row in _decoded(dataset)])


def test_cache_holds_the_frontend_of_every_decoded_clip(tiny, home):
    cached = load_features(tiny, BaselineMel(), progress=False, batch_size=5)
    assert cached.built
    assert cached.path == home.resolve() / "features" / tiny.fingerprint / BaselineMel().key()
    assert cached.filenames == tuple(c.filename for c in tiny.clips)
    assert isinstance(cached.array, np.memmap)
    assert cached.array.shape == (CLIPS, 256, 65) and cached.array.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(np.array(cached.array)), _expected_mel(tiny), rtol=0, atol=1e-4)
    manifest = json.loads((cached.path / MANIFEST_FILE).read_text())
    assert manifest["complete"] is True
    assert manifest["shape"] == [CLIPS, 256, 65]
    assert manifest["dataset_fingerprint"] == tiny.fingerprint
    assert manifest["frontend"]["key"] == BaselineMel().key()
    assert manifest["frontend"]["config"]["n_mels"] == 256
    assert manifest["file_bytes"] == (cached.path / DATA_FILE).stat().st_size


@pytest.mark.parametrize("frontend", [RawWaveform(32_000), KaldiFbank()], ids=lambda f: f.name)
def test_other_frontends_cache_their_own_output(tiny, home, frontend):
    cached = load_features(tiny, frontend, progress=False)
    direct = frontend.compute(_decoded(tiny), SAMPLE_RATE)
    torch.testing.assert_close(cached.batch(range(CLIPS)), direct, rtol=0, atol=1e-5)


def test_second_open_reuses_the_cache_without_reading_audio(tiny, home, monkeypatch):
    first = load_features(tiny, BaselineMel(), progress=False)
    stat = (first.path / DATA_FILE).stat()

    def no_audio(*args, **kwargs):
        raise AssertionError("a valid cache was recomputed")

    monkeypatch.setattr(cache_module, "iter_batches", no_audio)
    second = load_features(tiny, BaselineMel(), progress=False)
    assert not second.built
    after = (second.path / DATA_FILE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    np.testing.assert_array_equal(second.array, first.array)


def test_flipped_byte_is_detected_reported_and_repaired(tiny, home):
    cached = load_features(tiny, BaselineMel(), progress=False)
    data = cached.path / DATA_FILE
    del cached
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit of one float in the middle of the array
    data.write_bytes(bytes(raw))
    with pytest.warns(FeatureCacheWarning, match="corrupt") as caught:
        repaired = load_features(tiny, BaselineMel(), progress=False)
    assert str(repaired.path) in str(caught[0].message)
    assert repaired.built
    torch.testing.assert_close(repaired.batch(range(CLIPS)), _expected_mel(tiny), rtol=0, atol=1e-4)


def _truncate(path: Path) -> None:
    data = path / DATA_FILE
    os.truncate(data, data.stat().st_size // 2)


def _drop_manifest(path: Path) -> None:
    (path / MANIFEST_FILE).unlink()


def _incomplete_manifest(path: Path) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["complete"] = False
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def _garbled_manifest(path: Path) -> None:
    (path / MANIFEST_FILE).write_text('{"complete": tr')


def _drop_data(path: Path) -> None:
    (path / DATA_FILE).unlink()


def _other_filenames(path: Path) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["filenames_digest"] = "0" * 64
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def _older_torchaudio(path: Path) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["torchaudio_version"] = "2.1.0"
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_older_torchaudio, "torchaudio_version"),
        (_truncate, "bytes"),
        (_drop_manifest, "no manifest"),
        (_incomplete_manifest, "not marked complete"),
        (_garbled_manifest, "unreadable manifest"),
        (_drop_data, "missing"),
        (_other_filenames, "filenames_digest"),
    ],
    ids=lambda value: getattr(value, "__name__", value).strip("_") if callable(value) else value,
)
def test_damaged_cache_is_rebuilt(tiny, home, damage, reason):
    path = load_features(tiny, BaselineMel(), progress=False).path
    damage(path)
    with pytest.warns(FeatureCacheWarning, match=reason):
        rebuilt = load_features(tiny, BaselineMel(), progress=False)
    assert rebuilt.built
    torch.testing.assert_close(rebuilt.batch([0, CLIPS - 1]), _expected_mel(tiny)[[0, CLIPS - 1]], rtol=0, atol=1e-4)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, f"{path.name}.lock"])


def test_failed_build_publishes_nothing_and_leftovers_are_cleaned(tmp_path, home):
    dataset = _write_tiny_dataset(tmp_path / "data", clips=6, fingerprint="brokenfp01")
    missing = dataset.clips[4].filename
    (dataset.root / missing).unlink()
    directory = cache_dir(dataset, BaselineMel())
    stale = directory.parent / f".{directory.name}.tmp-99999-deadbeef"  # a build killed long ago
    stale.mkdir(parents=True)
    (stale / DATA_FILE).write_bytes(b"partial")
    with pytest.raises(FileNotFoundError, match=missing):
        load_features(dataset, BaselineMel(), progress=False, batch_size=2)
    assert sorted(p.name for p in directory.parent.iterdir()) == [f"{directory.name}.lock"]


def test_audio_in_the_wrong_format_is_named(tmp_path, home):
    dataset = _write_tiny_dataset(tmp_path / "data", clips=3, fingerprint="badrate001")
    wrong = dataset.root / dataset.clips[1].filename
    sf.write(wrong, np.zeros(16_000, dtype=np.float32), 16_000, subtype="PCM_16")
    with pytest.raises(AudioFormatError, match=rf"{wrong.name}.*16000 samples at 16000 Hz; expected 1 channel, 44100"):
        load_features(dataset, BaselineMel(), progress=False)


def test_different_frontend_config_gets_its_own_cache(tiny, home):
    default = load_features(tiny, BaselineMel(), progress=False)
    narrow = load_features(tiny, BaselineMel(n_mels=64), progress=False)
    assert narrow.path != default.path and narrow.path.parent == default.path.parent
    assert narrow.built and narrow.array.shape == (CLIPS, 64, 65)
    assert (default.path / MANIFEST_FILE).is_file()


def test_other_dataset_fingerprint_gets_its_own_cache(tiny, home):
    first = load_features(tiny, RawWaveform(16_000), progress=False)
    renamed = Dataset(tiny.root, tiny.name, "otherfp002", tiny.clips, {}, ())
    second = load_features(renamed, RawWaveform(16_000), progress=False)
    assert second.built and second.path.parent.name == "otherfp002" != first.path.parent.name


def test_rows_and_batch(tiny, home):
    cached = load_features(tiny, BaselineMel(), progress=False)
    names = [tiny.clips[i].filename for i in (7, 2, 19, 2)]
    rows = cached.rows(names)
    assert rows.tolist() == [7, 2, 19, 2] and rows.dtype == np.int64
    batch = cached.batch(rows)
    assert batch.dtype == torch.float32 and batch.shape == (4, 256, 65)
    torch.testing.assert_close(batch, _expected_mel(tiny)[[7, 2, 19, 2]], rtol=0, atol=1e-4)
    torch.testing.assert_close(cached.batch(torch.tensor([19])), batch[2:3], rtol=0, atol=0)
    batch.zero_()  # a copy: the cache is untouched
    assert float(np.abs(cached.array[7]).sum()) > 0
    assert not cached.array.flags.writeable
    with pytest.raises(ValueError):
        cached.array[0, 0, 0] = 1.0
    with pytest.raises(KeyError, match="audio/nope.wav"):
        cached.rows(["audio/nope.wav"])


def test_reader_decodes_24_bit_exactly(tmp_path):
    samples = np.round(np.linspace(-0.9, 0.9, CLIP_SAMPLES) * 2**23) / 2**23
    path = tmp_path / "clip.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_24")
    batch = read_batch([path, path])
    assert batch.shape == (2, CLIP_SAMPLES) and batch.dtype == torch.float32
    np.testing.assert_array_equal(batch[1].numpy(), samples.astype(np.float32))


_BUILD_IN_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ascbench.data.dataset import Clip, Dataset
    from ascbench.features.cache import load_features
    from ascbench.features.frontends import BaselineMel

    spec = json.loads(Path(sys.argv[1]).read_text())
    clips = tuple(Clip(**clip) for clip in spec["clips"])
    dataset = Dataset(Path(spec["root"]), "tiny-test", spec["fingerprint"], clips, {}, ())
    cached = load_features(dataset, BaselineMel(), home=spec["home"], progress=False, batch_size=2)
    print(json.dumps({"built": cached.built, "sum": float(cached.array.sum(dtype="float64"))}))
    """
)


def test_two_processes_building_the_same_cache_share_one_build(tiny, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "root": str(tiny.root),
                "fingerprint": tiny.fingerprint,
                "home": str(tmp_path / "home"),
                "clips": [vars(clip) for clip in tiny.clips],
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen([sys.executable, "-c", _BUILD_IN_CHILD, str(spec)], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["built"] for r in results) == [False, True]
    assert results[0]["sum"] == results[1]["sum"]
    cached = load_features(tiny, BaselineMel(), home=tmp_path / "home", progress=False)
    assert not cached.built
    torch.testing.assert_close(cached.batch(range(CLIPS)), _expected_mel(tiny), rtol=0, atol=1e-4)
    leftovers = [p.name for p in cached.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
