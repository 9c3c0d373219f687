"""The TAU22 reader on a real-format fixture: clips, splits, fractions, naming, fingerprint, errors."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ascbench.data import reader
from ascbench.data.dataset import Dataset
from ascbench.data.layout import CLIP_SAMPLES, META_FILE, SCENES, SPLIT_FILES, TEST_FILE, UNSEEN_DEVICES, ClipName
from ascbench.data.reader import DataError, fingerprint, load_dataset, load_split
from tau_fixture import (
    TauFixture,
    add_clip,
    add_extra_audio,
    build_tau_fixture,
    clone_fixture,
    set_field,
    set_header,
    write_clip,
)

FRACTION_FILES = {0.05: "split5.csv", 0.1: "split10.csv", 0.25: "split25.csv", 0.5: "split50.csv", 1.0: "split100.csv"}


@pytest.fixture(scope="module")
def tau(tmp_path_factory: pytest.TempPathFactory) -> TauFixture:
    return build_tau_fixture(tmp_path_factory.mktemp("tau") / "dev")


@pytest.fixture(scope="module")
def dataset(tau: TauFixture) -> Dataset:
    return load_dataset(tau.root)


@pytest.fixture
def copy(tau: TauFixture, tmp_path: Path) -> TauFixture:
    return clone_fixture(tau, tmp_path / "copy")


def _fields(filename: str) -> list[str]:
    """Split a clip name independently of ClipName: scene, city, location, segment, n, device."""
    return filename.removeprefix("audio/").removesuffix(".wav").split("-")


def test_clips_carry_labels_devices_cities_and_recordings(tau: TauFixture, dataset: Dataset) -> None:
    assert len(dataset.clips) == len(tau.meta) == 120
    assert [clip.filename for clip in dataset.clips] == [clip.filename for clip in tau.meta]
    for clip in dataset.clips:
        scene, city, location, segment, _, device = _fields(clip.filename)
        assert (clip.scene, clip.device, clip.city) == (scene, device, city)
        assert clip.identifier == f"{city}-{location}"
        assert clip.recording_id == f"{city}-{location}-{segment}"
        assert clip.label == SCENES.index(scene)
        assert dataset.clip(clip.filename) is clip
    assert Counter(clip.scene for clip in dataset.clips) == Counter({scene: 12 for scene in SCENES})
    assert len({clip.recording_id for clip in dataset.clips}) == 40


def test_splits_and_test_in_file_order(tau: TauFixture, dataset: Dataset) -> None:
    assert set(dataset.splits) == set(SPLIT_FILES)
    for name in SPLIT_FILES:
        assert list(dataset.splits[name]) == tau.splits[name]
    assert [len(dataset.splits[name]) for name in SPLIT_FILES] == [5, 10, 20, 40, 80]
    assert list(dataset.test) == tau.test
    assert {dataset.clip(name).device for name in dataset.test} == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}


def test_split_files_beside_meta_are_found(tmp_path: Path) -> None:
    flat = build_tau_fixture(tmp_path / "flat", split_setup=False)
    assert not (flat.root / "split_setup").exists()
    dataset = load_dataset(flat.root)
    assert list(dataset.splits["split25.csv"]) == flat.splits["split25.csv"]
    assert list(dataset.test) == flat.test


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5, 1.0])
def test_load_split_train_test_unlabeled(tau: TauFixture, dataset: Dataset, fraction: float) -> None:
    split = load_split(dataset, fraction)
    train = tau.splits[FRACTION_FILES[fraction]]
    assert split.fraction == fraction
    assert [clip.filename for clip in split.train] == train
    assert [clip.filename for clip in split.test] == tau.test
    expected_unlabeled = [c.filename for c in tau.meta if c.filename not in set(train) | set(tau.test)]
    assert [clip.filename for clip in split.unlabeled] == expected_unlabeled
    assert not {clip.device for clip in split.train} & set(UNSEEN_DEVICES)
    assert set(tau.unused) <= {clip.filename for clip in split.unlabeled}


def test_unlabeled_excludes_other_clips_of_test_recordings(copy: TauFixture) -> None:
    test_clip = dataclasses.replace(ClipName.parse(copy.test[0]), index=5, device="a")
    add_clip(copy, test_clip)  # in meta.csv, in no split and not in test.csv
    split = load_split(copy.root, 1.0)
    assert test_clip.filename not in {clip.filename for clip in split.unlabeled}
    assert [clip.filename for clip in split.unlabeled] == copy.unused


@pytest.mark.parametrize("spelling", [25, "25", "25%", "25.0", 0.25, "0.25"])
def test_fraction_spellings(dataset: Dataset, spelling: object) -> None:
    assert load_split(dataset, spelling).train == load_split(dataset, 0.25).train


@pytest.mark.parametrize("bad", [0.3, "30%", 0, "all", 200, "0.025"])
def test_invalid_fraction_lists_valid_values(dataset: Dataset, bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected one of 0\.05, 0\.1, 0\.25, 0\.5, 1\.0"):
        load_split(dataset, bad)


def test_load_split_accepts_a_path(tau: TauFixture) -> None:
    assert [c.filename for c in load_split(str(tau.root), "10%").train] == tau.splits["split10.csv"]


def test_names_never_pass_a_subset_as_tau22(tau: TauFixture, copy: TauFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_dataset(tau.root).name == f"tau22-layout-{tau.root.name}"
    assert load_dataset(tau.root).info == {}
    monkeypatch.setattr(reader, "REAL_CLIP_COUNT", len(tau.meta))
    assert load_dataset(tau.root).name == "tau22"
    info = {"name": "synth-tau22", "size": "small", "seed": 0, "generator_version": "1"}
    (copy.root / "synth_info.json").write_text(json.dumps(info))
    synthetic = load_dataset(copy.root)
    assert synthetic.name == "synth-tau22-small"
    assert synthetic.info == info


def test_fingerprint_stable_and_content_sensitive(tau: TauFixture, dataset: Dataset, tmp_path: Path) -> None:
    assert fingerprint(tau.root) == dataset.fingerprint == fingerprint(tau.root)
    assert len(dataset.fingerprint) == 16 and int(dataset.fingerprint, 16) >= 0
    assert fingerprint(clone_fixture(tau, tmp_path / "same").root) == dataset.fingerprint

    resized = clone_fixture(tau, tmp_path / "resized")
    write_clip(resized.root, tau.meta[0].filename, np.zeros(CLIP_SAMPLES - 1))
    relabelled = clone_fixture(tau, tmp_path / "relabelled")
    set_field(relabelled, relabelled.listing("split5.csv"), tau.splits["split5.csv"][0], "scene_label", "bus")
    extra = clone_fixture(tau, tmp_path / "extra")
    add_extra_audio(extra)
    prints = {fingerprint(fixture.root) for fixture in (resized, relabelled, extra)}
    assert len(prints | {dataset.fingerprint}) == 4


def test_24_bit_wav_reads_back_at_24_bit_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    written = rng.uniform(-0.9, 0.9, CLIP_SAMPLES)
    written[:4] = [3e-6, -3e-6, 0.0, 0.5]  # 3e-6 is 25 steps at 24 bits, below one step at 16 bits
    path = write_clip(tmp_path, "clip.wav", written)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44_100, 1, CLIP_SAMPLES, "PCM_24")
    read, rate = sf.read(str(path), dtype="float64")
    assert rate == 44_100
    np.testing.assert_allclose(read, written, rtol=0, atol=2.0**-23)
    assert abs(read[0] - 3e-6) < 2.0**-23 and read[0] > 0

    codes = rng.integers(-(2**23), 2**23, CLIP_SAMPLES, dtype=np.int32) * 256  # 24-bit codes, left-aligned
    sf.write(str(tmp_path / "codes.wav"), codes, 44_100, subtype="PCM_24")
    np.testing.assert_array_equal(sf.read(str(tmp_path / "codes.wav"), dtype="int32")[0], codes)


def test_missing_meta_is_a_data_error(copy: TauFixture) -> None:
    (copy.root / META_FILE).unlink()
    with pytest.raises(DataError) as caught:
        load_dataset(copy.root)
    assert (caught.value.path, caught.value.line) == (META_FILE, None)
    assert str(caught.value).startswith("meta.csv: missing")
    assert isinstance(caught.value, ValueError)


def test_unknown_label_error_names_file_line_and_valid_labels(copy: TauFixture) -> None:
    _, line = set_field(copy, META_FILE, copy.unused[2], "scene_label", "airprot")
    with pytest.raises(DataError) as caught:
        load_dataset(copy.root)
    assert caught.value.line == line
    assert str(caught.value) == (
        f"meta.csv:{line}: unknown scene label 'airprot'; expected one of airport, bus, metro, metro_station, "
        "park, public_square, shopping_mall, street_pedestrian, street_traffic, tram"
    )


def test_error_counts_further_problems(copy: TauFixture) -> None:
    set_field(copy, META_FILE, copy.unused[0], "source_label", "d")
    set_field(copy, META_FILE, copy.unused[1], "source_label", "e")
    with pytest.raises(DataError, match=r"unknown device \(source_label\) 'd'.*and 1 more problem;.*data check"):
        load_dataset(copy.root)


@pytest.mark.parametrize(
    "breakage, path, line, message",
    [
        (lambda fx: set_header(fx, META_FILE, "filename,scene_label,identifier,source_label"), META_FILE, 1, "bad header"),
        (lambda fx: set_field(fx, META_FILE, fx.unused[0], "filename", "audio/park_lisbon.wav"), META_FILE, None, "unparseable file name"),
        (lambda fx: (fx.root / fx.listing("split50.csv")).unlink(), "split_setup/split50.csv", None, "missing"),
        (lambda fx: set_header(fx, fx.listing(TEST_FILE), "filename"), "split_setup/test.csv", 1, "bad header"),
    ],
)
def test_structural_problems_stop_loading(copy: TauFixture, breakage, path: str, line: int | None, message: str) -> None:
    breakage(copy)
    with pytest.raises(DataError) as caught:
        load_dataset(copy.root)
    assert caught.value.path == path
    if line is not None:
        assert caught.value.line == line
    assert message in caught.value.message


def test_synthetic_data_set_reads(request: pytest.FixtureRequest) -> None:
    try:
        root = request.getfixturevalue("tiny_synth_root")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no tiny_synth_root fixture yet (the synth generator is not in)")
    dataset = load_dataset(root)
    assert dataset.name.startswith("synth-tau22-") and dataset.info
    assert dataset.name == f"synth-tau22-{dataset.info['size']}"
    for fraction in FRACTION_FILES:
        split = load_split(dataset, fraction)
        assert split.train and split.test
        assert not {c.recording_id for c in split.train} & {c.recording_id for c in split.test}
        assert not {c.device for c in split.train} & set(UNSEEN_DEVICES)
    assert fingerprint(root) == dataset.fingerprint


def test_reading_does_not_touch_the_directory(tau: TauFixture) -> None:
    before = sorted(p.relative_to(tau.root) for p in tau.root.rglob("*"))
    load_split(tau.root, 1.0)
    assert sorted(p.relative_to(tau.root) for p in tau.root.rglob("*")) == before


def test_a_later_synth_generator_version_changes_the_fingerprint(tau: TauFixture, tmp_path: Path) -> None:
    """A new generator rewrites every clip under the same names and sizes: only its version in
    synth_info.json tells the data apart, and caches and records of version 1 must not be reused.
    Version 1 keeps the fingerprint its records and leaderboards carry (the csvs and the listing)."""
    first, later = clone_fixture(tau, tmp_path / "v1"), clone_fixture(tau, tmp_path / "v2")
    (first.root / "synth_info.json").write_text(json.dumps({"generator": "synth-tau22", "version": "1", "size": "tiny", "seed": 0}))
    (later.root / "synth_info.json").write_text(json.dumps({"generator": "synth-tau22", "version": "2", "size": "tiny", "seed": 0}))
    assert fingerprint(first.root) == fingerprint(tau.root) == load_dataset(first.root).fingerprint
    assert fingerprint(later.root) != fingerprint(first.root)
    assert load_dataset(later.root).fingerprint == fingerprint(later.root)
