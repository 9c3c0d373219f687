"""``ascbench export dcase``: packages checked against the DCASE 2024 Task 1 submission format.

The required blocks and fields below are those the official validator checks
(toni-heittola/dcase2024_task1_submission_validator, main.py), written out here independently of
the exporter so that a field the exporter forgets fails the test.
"""

from __future__ import annotations

import csv
import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from ascbench.data.layout import DEVICES, SCENES
from ascbench.export.dcase import ExportError, export_dcase
from ascbench.export.meta import Affiliation, Author, SubmissionConfigError, SubmissionInfo, load_submission_config
from ascbench.export.predict import list_audio, predict_files, prepare_model
from ascbench.results.store import ResultsStore
from ascbench.systems import discover
from ascbench.systems.checkpoint import load_trained_model, save_trained_model
from records_factory import make_record

OUTPUT_HEADER = ["filename", "scene_label", "airport", "bus", "metro", "metro_station", "park", "public_square",
                 "shopping_mall", "street_pedestrian", "street_traffic", "tram"]
DESCRIPTION = ["input_sampling_rate", "acoustic_features", "data_augmentation", "machine_learning_method",
               "external_data_usage", "complexity_management", "pipeline", "framework", "split_adaptations",
               "system_adaptations"]
SPLITS_PRESENT = {5: 0.05, 10: 0.1, 25: 0.25}
LABEL = "Doe_TU_task1_1"


@pytest.fixture(scope="module")
def spec():
    return discover().get("cp-mobile")


@pytest.fixture(scope="module")
def home(tmp_path_factory, spec) -> Path:
    """A store with cp-mobile runs on three of the five splits (seeds 0 and 1 on split 25), each
    with a saved model, as the runner leaves them."""
    home = tmp_path_factory.mktemp("home")
    store = ResultsStore(home)
    for pct, fraction in SPLITS_PRESENT.items():
        for seed in ((0, 1) if pct == 25 else (0,)):
            record, predictions = make_record("cp-mobile", seed=seed, fraction=fraction, skill=0.5 + pct / 200)
            torch.manual_seed(pct * 10 + seed)
            model_path = home / "checkpoints" / record.key.slug() / "model.pt"
            save_trained_model(spec.build_model(), spec, model_path, meta={"run": record.key.slug()})
            record.artifacts["model"] = str(model_path.relative_to(home))
            store.write(record, predictions)
    return home


def info() -> SubmissionInfo:
    return SubmissionInfo(
        authors=[Author("Doe", "Jane", "jane@example.org", True, Affiliation("TU", "Tech University", "Acoustics", "Tampere"))],
        source_code="https://example.org/code",
    )


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file, delimiter="\t"))


def assert_meta_complete(meta: dict) -> None:
    """The validator's required blocks and fields (DCASE 2024 Task 1)."""
    assert set(meta) >= {"submission", "system", "results"}
    assert set(meta["submission"]) >= {"label", "name", "abbreviation", "authors"}
    assert len(meta["submission"]["abbreviation"]) <= 10
    for author in meta["submission"]["authors"]:
        assert set(author) >= {"lastname", "firstname", "email", "affiliation"}
    assert sum(bool(a.get("corresponding")) for a in meta["submission"]["authors"]) == 1
    assert set(meta["system"]) >= {"description", "complexity", "external_datasets", "source_code"}
    assert set(meta["system"]["description"]) >= set(DESCRIPTION)
    assert set(meta["system"]["complexity"]) >= {"total_model_size", "total_parameters", "macs"}
    assert isinstance(meta["system"]["complexity"]["total_parameters"], int)
    assert set(meta["results"]["development_dataset"]) == {f"split_{p}" for p in (5, 10, 25, 50, 100)}


def test_development_test_package(home, spec, tmp_path):
    warnings: list[str] = []
    result = export_dcase("cp-mobile", tmp_path / "pkg", info(), spec=spec, home=home, progress=False, warn=warnings.append)
    assert result.label == LABEL and result.source == "development-test"
    assert result.seeds == {5: 0, 10: 0, 25: 0} and result.missing_splits == [50, 100]
    assert any("split_50, split_100" in w for w in warnings)
    assert any("seeds [0, 1]" in w for w in warnings)
    assert any("not a valid challenge submission" in w for w in warnings)
    assert not any("outside the split" in w for w in warnings)  # cp-mobile learns from its split alone

    store = ResultsStore(home)
    for pct, fraction in SPLITS_PRESENT.items():
        record = next(store.iter_records(system="cp-mobile", fraction=fraction))
        stored = store.load_predictions(record)
        rows = read_rows(result.outputs[pct])
        assert rows[0] == OUTPUT_HEADER
        assert len(rows) - 1 == len(stored) == record.metrics.n_test  # one row per test clip
        assert [r[0] for r in rows[1:]] == [f.removeprefix("audio/") for f in stored.filenames]
        scores = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
        np.testing.assert_allclose(scores, stored.probabilities(), rtol=1e-6, atol=1e-9)
        assert [r[1] for r in rows[1:]] == [SCENES[i] for i in scores.argmax(axis=1)]

    text = result.meta_path.read_text()
    assert "DEVELOPMENT-TEST predictions" in text.splitlines()[1]
    meta = yaml.safe_load(text)
    assert_meta_complete(meta)
    assert meta["submission"]["label"] == LABEL
    complexity = meta["system"]["complexity"]
    assert complexity == {"total_model_size": 61_148 * 4, "total_parameters": 61_148, "macs": 29_419_156}
    assert meta["system"]["description"]["input_sampling_rate"] == "32kHz"
    assert meta["system"]["description"]["data_augmentation"] == ""  # unknown, left empty, not invented
    dev = meta["results"]["development_dataset"]
    assert dev["split_50"] is None and dev["split_100"] is None

    record = next(store.iter_records(system="cp-mobile", fraction=0.1))
    stored = store.load_predictions(record)
    split10 = dev["split_10"]
    assert split10["overall"]["accuracy"] == pytest.approx(record.metrics.accuracy * 100, abs=0.005)
    assert split10["overall"]["logloss"] == pytest.approx(record.metrics.log_loss, abs=5e-5)
    correct = stored.predicted == stored.labels
    devices = np.array(stored.devices)
    for device in DEVICES:
        assert split10["device_wise"][device]["accuracy"] == pytest.approx(correct[devices == device].mean() * 100, abs=0.005)
    for i, scene in enumerate(SCENES):
        assert split10["class_wise"][scene]["accuracy"] == pytest.approx(record.metrics.per_class[scene] * 100, abs=0.005)
        probs = stored.probabilities()[stored.labels == i]
        assert split10["class_wise"][scene]["logloss"] == pytest.approx(-np.log(probs[:, i]).mean(), abs=5e-5)

    with zipfile.ZipFile(result.zip_path) as archive:
        assert archive.testzip() is None
        names = sorted(archive.namelist())
        assert names == sorted([f"task1/{LABEL}/{LABEL}.meta.yaml"] + [f"task1/{LABEL}/{LABEL}.output.split_{p}.csv" for p in SPLITS_PRESENT])
        assert archive.read(f"task1/{LABEL}/{LABEL}.meta.yaml").decode() == text
    assert "development-test" in (tmp_path / "pkg" / "README.md").read_text().lower()


def test_evaluation_package_predicts_each_splits_model(home, spec, tmp_path):
    folder = tmp_path / "eval" / "audio"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in (0, 1, 2, 10, 11):
        sf.write(folder / f"{i}.wav", rng.normal(0, 0.1, 44_100).astype(np.float32), 44_100, subtype="PCM_24")
    warnings: list[str] = []
    result = export_dcase("cp-mobile", tmp_path / "pkg", info(), spec=spec, home=home, seed=0,
                          eval_audio=folder.parent, progress=False, warn=warnings.append)
    assert result.source == "evaluation"
    assert any("the DCASE 2024 evaluation set has 135730" in w for w in warnings)
    store = ResultsStore(home)
    outputs = {}
    for pct, fraction in SPLITS_PRESENT.items():
        rows = read_rows(result.outputs[pct])
        assert [r[0] for r in rows[1:]] == ["0.wav", "1.wav", "2.wav", "10.wav", "11.wav"]
        record = next(r for r in store.iter_records(system="cp-mobile", fraction=fraction) if r.key.seed == 0)
        model = prepare_model(load_trained_model(spec, home / record.artifacts["model"]), "float16")
        expected = predict_files(model, spec, list_audio(folder), progress=False).probabilities
        outputs[pct] = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
        np.testing.assert_allclose(outputs[pct], expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(outputs[5], outputs[10])  # each split's own model, not one model five times
    meta = yaml.safe_load(result.meta_path.read_text())
    assert_meta_complete(meta)
    assert meta["system"]["complexity"]["total_model_size"] == 61_148 * 2  # float16 weights
    assert "evaluation clips of folder 'eval'" in result.meta_path.read_text().splitlines()[1]
    for written in (result.meta_path, tmp_path / "pkg" / "README.md"):  # the local path stays on this machine
        assert str(tmp_path) not in written.read_text(), written


def test_a_system_that_learnt_from_audio_outside_its_split_is_flagged(spec, tmp_path):
    """A teacher the harness pre-trained on the split's unlabeled pool is development audio the
    DCASE rules exclude: the package is still written, with the reason in the warnings and README."""
    store = ResultsStore(tmp_path / "home")
    record, predictions = make_record("cp-mobile", fraction=0.25)
    store.write(dataclasses.replace(record, notes={"teacher": "hubert-small", "teacher_pretraining_audio": "pool"}), predictions)
    warnings: list[str] = []
    export_dcase("cp-mobile", tmp_path / "pkg", info(), spec=spec, home=tmp_path / "home", progress=False, warn=warnings.append)
    (flag,) = [w for w in warnings if "outside the split" in w]
    assert flag.startswith("split_25: trained with development audio outside the split (teacher pre-training)")
    assert flag in (tmp_path / "pkg" / "README.md").read_text()


def test_store_problems_are_explained(home, spec, tmp_path):
    with pytest.raises(ExportError, match="no records of system 'efficientnet-b0'"):
        export_dcase("efficientnet-b0", tmp_path, info(), home=home, progress=False)
    # the hint keeps the data set and profile asked for: without them it would run the default set
    with pytest.raises(ExportError, match=r"run `ascbench run --models cp-mobile --fraction all --data synth-tau22-tiny --profile dcase` first"):
        export_dcase("cp-mobile", tmp_path, info(), home=home, data="synth-tau22-tiny", profile="dcase", progress=False)
    from ascbench.cli.main import app

    unknown = CliRunner().invoke(app, ["export", "dcase", "--system", "nosuch", "--out", str(tmp_path / "x"), "--home", str(home)])
    assert unknown.exit_code == 2 and "unknown system 'nosuch'; registered systems:" in unknown.output, unknown.output
    with pytest.raises(ExportError, match="float32 weights; pass --eval-audio"):
        export_dcase("cp-mobile", tmp_path, info(), home=home, weights="float16", progress=False)
    with pytest.raises(SubmissionConfigError, match="no submission label"):
        export_dcase("cp-mobile", tmp_path, SubmissionInfo(), home=home, progress=False)
    with pytest.raises(SubmissionConfigError, match="expected \\[Lastname\\]_\\[INSTITUTE\\]_task1_\\[1-4\\]"):
        export_dcase("cp-mobile", tmp_path, SubmissionInfo(label="Doe_TU_task2_1"), home=home, progress=False)


def test_user_config_file(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text(
        "index: 2\nname: My system\nabbreviation: MySys\n"
        "authors:\n"
        "  - {lastname: Roe, firstname: Ann, email: ann@x.org, corresponding: true, affiliation: {abbreviation: UX, institute: Uni X}}\n"
        "  - {lastname: Poe, firstname: Bo, email: bo@x.org, affiliation: Uni X}\n"
        "description: {data_augmentation: Freq-MixStyle}\n"
    )
    loaded = load_submission_config(path)
    assert loaded.resolved_label() == "Roe_UX_task1_2"
    assert loaded.authors[1].affiliation.institute == "Uni X" and loaded.description == {"data_augmentation": "Freq-MixStyle"}
    path.write_text("nmae: typo\n")
    with pytest.raises(SubmissionConfigError, match=r"user\.yaml: unknown key\(s\) nmae"):
        load_submission_config(path)


def test_cli_export_with_author_flags(home, tmp_path, monkeypatch):
    from ascbench.cli.main import app

    monkeypatch.setenv("ASCBENCH_HOME", str(home))
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "export", "dcase", "--system", "cp-mobile", "--out", str(out), "--seed", "1", "--no-progress",
        "--author-lastname", "Doe", "--author-firstname", "Jane", "--author-email", "j@x.org", "--author-abbreviation", "TU",
        "--abbreviation", "CPM",
    ])
    assert result.exit_code == 0, result.output
    assert "split_25 (seed 1)" in result.output
    assert "no run with seed 1" in result.output  # splits 5 and 10 only have seed 0
    meta = yaml.safe_load((out / "task1" / LABEL / f"{LABEL}.meta.yaml").read_text())
    assert meta["submission"]["authors"][0]["lastname"] == "Doe" and meta["submission"]["abbreviation"] == "CPM"
    assert meta["results"]["development_dataset"]["split_5"] is None


def test_a_recorded_name_exports_with_its_systems_model_and_a_hint_that_reruns_it(spec, tmp_path, monkeypatch):
    """An ablation row or a run on a local teacher is recorded as ``SYSTEM~no-...@...``: its
    weights are the registered system's architecture, and its missing splits come from the
    command that recorded it, not from ``--models`` with the recorded name (an unknown system)."""
    from ascbench.cli.main import app

    home, name = tmp_path / "home", "cp-mobile~no-fms@teacher-t-1a2b3c4d"
    record, predictions = make_record(name, fraction=0.25)
    record.system["name"] = "cp-mobile"
    record.provenance["config"]["teacher_checkpoint"] = "/models/t.pt"
    record.provenance["command"] = ["ascbench", "run", "--models", "cp-mobile,mobilenetv2", "--ablate", "fms",
                                    "--teacher-checkpoint", "/models/t.pt", "--fraction", "0.25", "--force"]  # fmt: skip
    model_path = home / "checkpoints" / record.key.slug() / "model.pt"
    save_trained_model(spec.build_model(), spec, model_path, meta={"run": record.key.slug()})
    record.artifacts["model"] = str(model_path.relative_to(home))
    ResultsStore(home).write(record, predictions)
    audio = tmp_path / "eval" / "audio"
    audio.mkdir(parents=True)
    sf.write(audio / "0.wav", np.random.default_rng(0).normal(0, 0.1, 44_100).astype(np.float32), 44_100, subtype="PCM_24")

    monkeypatch.setenv("ASCBENCH_HOME", str(home))
    result = CliRunner().invoke(app, [
        "export", "dcase", "--system", name, "--out", str(tmp_path / "pkg"), "--eval-audio", str(audio.parent), "--no-progress",
        "--author-lastname", "Doe", "--author-firstname", "Jane", "--author-email", "j@x.org", "--author-abbreviation", "TU",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read_rows(next((tmp_path / "pkg").rglob("*.output.split_25.csv")))) == 2  # header + the one clip
    hint = "ascbench run --ablate fms --teacher-checkpoint /models/t.pt --models cp-mobile --fraction 5,10,50,100 --seeds 0"
    assert hint in " ".join(result.output.split())
    meta = next((tmp_path / "pkg").rglob("*.meta.yaml")).read_text()
    assert "the teacher was loaded from t.pt (--teacher-checkpoint): list the data it was pre-trained on" in meta
    assert "its teacher was loaded from t.pt (--teacher-checkpoint), not pre-trained by ascbench" in " ".join(meta.split())
    for written in [*(tmp_path / "pkg").rglob("*.yaml"), *(tmp_path / "pkg").rglob("*.md")]:  # nothing local in what is uploaded
        assert "/models/" not in written.read_text() and str(tmp_path) not in written.read_text(), written
    with pytest.raises(ExportError, match=r"no records of system 'cp-mobile~no-adir'.* a row with run options \(an ablation, a teacher\) is run with those options"):
        export_dcase("cp-mobile~no-adir", tmp_path / "none", info(), home=home, progress=False)


def test_export_takes_the_directory_run_was_given(spec, tmp_path, tiny_synth_root):
    """`export dcase --data DIR` with the DIR `run --data` was given exports that data's runs:
    records carry the data set's name, not the directory (which used to find nothing), and the
    directory stands for its content, so a run on other data under the same name is left out."""
    from ascbench.cli.main import app
    from ascbench.data.resolve import recorded_data

    name, fingerprint = recorded_data(str(tiny_synth_root))
    home = tmp_path / "home"
    store = ResultsStore(home)
    for seed, content in ((0, fingerprint), (1, "0123456789abcdef")):
        record, predictions = make_record("cp-mobile", seed=seed, dataset=name, fingerprint=content)
        model_path = home / "checkpoints" / record.key.slug() / "model.pt"
        save_trained_model(spec.build_model(), spec, model_path, meta={"run": record.key.slug()})
        record.artifacts["model"] = str(model_path.relative_to(home))
        store.write(record, predictions)
    flags = ["--author-lastname", "Doe", "--author-firstname", "Jane", "--author-email", "j@x.org", "--author-abbreviation", "TU"]
    result = CliRunner().invoke(app, ["export", "dcase", "--system", "cp-mobile", "--data", str(tiny_synth_root), "--out",
                                      str(tmp_path / "pkg"), "--home", str(home), "--no-progress", *flags])  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "split_25 (seed 0)" in said
    assert "seeds [0, 1]" not in said  # the other content's seed-1 run was never a candidate
