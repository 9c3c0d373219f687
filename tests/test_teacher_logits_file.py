"""The teacher-logits file (``--teacher logits:FILE``), on real files: what is written is read back
to the bit, the three formats and their spellings agree, and every bad file is one error line that
names the file and, where there is one, the line and column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ascbench.data.layout import SCENES
from ascbench.distill.logits_file import TeacherLogitsError, read_teacher_logits, write_teacher_logits

NAMES = [f"audio/{scene}-lisbon-1-{i}-0-a.wav" for i, scene in enumerate(SCENES)]


def logits_of(rows: int) -> np.ndarray:
    """Row i, column j is 10 * i + j: where a value landed says which row and scene it came from."""
    return (10 * np.arange(rows)[:, None] + np.arange(len(SCENES))).astype(np.float32)


def table(path: Path, header: list[str], rows: list[list[str]], sep: str = "\t") -> Path:
    path.write_text("".join(sep.join(cells) + "\n" for cells in [header, *rows]))
    return path


def rows_of(names: list[str], logits: np.ndarray) -> list[list[str]]:
    return [[name, *map(repr, values)] for name, values in zip(names, logits.astype(np.float64).tolist())]


def refused(path: Path, known: list[str] | None = None) -> str:
    with pytest.raises(TeacherLogitsError) as caught:
        read_teacher_logits(path, known)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    return message


# --- what is read -------------------------------------------------------------------------------


def test_a_written_file_reads_back_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=8, size=(len(NAMES), len(SCENES))).astype(np.float32)
    logits[0] = [0.1, -0.0, 1e-45, 3.4e38, -3.4e38, 1 / 3, 1e-7, 16777217, np.float32(np.pi), -1e-38]
    path = write_teacher_logits(tmp_path / "teacher.tsv", NAMES, logits)
    read = read_teacher_logits(path, NAMES)
    assert read.logits.dtype == np.float32 and read.logits.tobytes() == logits.tobytes()  # -0.0 and subnormals too
    assert read.filenames == tuple(NAMES) and read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_text().splitlines()[0].split("\t") == ["filename", *SCENES]
    assert [p.name for p in tmp_path.iterdir()] == ["teacher.tsv"]  # no temporary file left


def test_bare_names_are_given_their_audio_folder(tmp_path: Path) -> None:
    bare = [name.removeprefix("audio/") for name in NAMES]
    path = table(tmp_path / "bare.tsv", ["filename", *SCENES], rows_of(bare, logits_of(len(NAMES))))
    read = read_teacher_logits(path, NAMES)
    assert read.filenames == tuple(NAMES)
    np.testing.assert_array_equal(read.for_clips(NAMES[::-1]), logits_of(len(NAMES))[::-1])


def test_scene_columns_in_any_order_come_back_in_scenes_order(tmp_path: Path) -> None:
    shuffled = list(np.random.default_rng(1).permutation(SCENES))
    values = np.array([[SCENES.index(scene) for scene in shuffled]], dtype=np.float32)  # each cell holds its scene's index
    path = table(tmp_path / "shuffled.tsv", ["filename", *shuffled], rows_of(NAMES[:1], values))
    np.testing.assert_array_equal(read_teacher_logits(path).logits, [np.arange(len(SCENES))])


def test_a_csv_may_be_comma_separated(tmp_path: Path) -> None:
    logits = logits_of(3)
    comma = table(tmp_path / "teacher.csv", ["filename", *SCENES], rows_of(NAMES[:3], logits), sep=",")
    tab = table(tmp_path / "tabs.csv", ["filename", *SCENES], rows_of(NAMES[:3], logits))
    for path in (comma, tab):
        np.testing.assert_array_equal(read_teacher_logits(path).logits, logits)


def test_npz_and_pt_files_read_like_the_table(tmp_path: Path) -> None:
    logits = logits_of(len(NAMES))
    reversed_scenes = np.array(SCENES[::-1])
    npz = tmp_path / "teacher.npz"
    np.savez(npz, filenames=np.array([n.removeprefix("audio/") for n in NAMES]), logits=logits[:, ::-1], scenes=reversed_scenes)
    pt = tmp_path / "teacher.pt"
    torch.save({"filenames": NAMES, "logits": torch.from_numpy(logits).to(torch.float64)}, pt)
    for path in (npz, pt):
        read = read_teacher_logits(path, NAMES)
        assert read.filenames == tuple(NAMES) and read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        np.testing.assert_array_equal(read.logits, logits)


def test_for_clips_gives_rows_in_the_order_asked_and_names_what_is_missing(tmp_path: Path) -> None:
    path = write_teacher_logits(tmp_path / "teacher.tsv", NAMES[:6], logits_of(6))
    read = read_teacher_logits(path)
    np.testing.assert_array_equal(read.for_clips([NAMES[4], NAMES[0], NAMES[4]]), logits_of(6)[[4, 0, 4]])
    assert read.for_clips([]).shape == (0, len(SCENES))
    with pytest.raises(TeacherLogitsError) as caught:
        read.for_clips(NAMES)
    message = str(caught.value)
    assert str(path) in message and "no logits for 4 of the 10 clips" in message, message
    assert f"({NAMES[6]}, {NAMES[7]}, {NAMES[8]}, ...)" in message and NAMES[9] not in message


# --- what is refused ----------------------------------------------------------------------------


def bad_table(path: Path, problem: str) -> None:
    rows = rows_of(NAMES[:4], logits_of(4))  # lines 2 to 5
    header = ["filename", *SCENES]
    if problem == "9 scene columns":
        header, rows = header[:-1], [row[:-1] for row in rows]
    elif problem == "unknown scene":
        header[3] = "beach"
    elif problem == "repeated scene":
        header[-1] = "bus"
    elif problem == "no filename column":
        header, rows = header[1:], [row[1:] for row in rows]
    elif problem == "nan":
        rows[1][2] = "nan"
    elif problem == "inf":
        rows[1][2] = "-inf"
    elif problem == "too large for float32":
        rows[1][2] = "1e39"
    elif problem == "not a number":
        rows[1][2] = "high"
    elif problem == "short row":
        rows[1] = rows[1][:-1]
    elif problem == "duplicate filename":
        rows[3][0] = NAMES[1].removeprefix("audio/")
    elif problem == "not a clip":
        rows[2][0] = "audio/not-a-clip-a.wav"
    elif problem == "not a wav name":
        rows[2][0] = "clips/x.flac"
    table(path, header, rows)


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("9 scene columns", ["line 1", "9 scene columns (missing tram)"]),
        ("unknown scene", ["line 1", "unknown 'beach'", "missing metro"]),
        ("repeated scene", ["line 1", "missing tram", "repeated bus"]),
        ("no filename column", ["line 1", "the first column is 'airport'", "expected the header 'filename'"]),
        ("nan", ["line 3", f"({NAMES[1]}), column bus", "nan is not a finite float32"]),
        ("inf", ["line 3", "column bus", "-inf is not a finite float32"]),
        ("too large for float32", ["line 3", "column bus", "1e+39 is not a finite float32"]),
        ("not a number", ["line 3, column bus", "'high' is not a number"]),
        ("short row", ["line 3", "10 fields; expected 11"]),
        ("duplicate filename", ["line 5", f"{NAMES[1]} is given twice, first at line 3"]),
        ("not a clip", ["line 4", "audio/not-a-clip-a.wav is not a clip of the data set"]),
        ("not a wav name", ["line 4", "'clips/x.flac'", "'audio/<name>.wav'"]),
    ],
)
def test_a_bad_table_is_one_line_naming_file_line_and_column(problem: str, expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    bad_table(path, problem)
    message = refused(path, NAMES)
    assert all(part in message for part in expected), message


def test_an_empty_file_a_header_alone_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    assert "empty file; expected the header 'filename'" in refused(empty)
    header_only = table(tmp_path / "header.tsv", ["filename", *SCENES], [])
    assert "no rows after the header" in refused(header_only)
    assert "no such file" in refused(tmp_path / "absent.tsv")
    other = tmp_path / "teacher.json"
    other.write_text("{}")
    assert "unknown format '.json'" in refused(other)


def test_a_comma_separated_tsv_is_told_to_use_tabs(tmp_path: Path) -> None:
    path = table(tmp_path / "commas.tsv", ["filename", *SCENES], rows_of(NAMES[:2], logits_of(2)), sep=",")
    assert "line 1" in (message := refused(path)) and "separated by tabs" in message


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"logits": np.zeros((2, 10), dtype=np.int64)}, "'logits' has dtype int64; logits must be floating point"),
        ({"logits": np.zeros((2, 10), dtype=bool)}, "'logits' has dtype bool; logits must be floating point"),
        ({"logits": np.zeros((2, 9), dtype=np.float32)}, "'logits' has shape [2, 9]; expected [2, 10]"),
        ({"logits": np.array([[0.0] * 10, [0.0] * 9 + [np.nan]])}, f"filenames[1] ({NAMES[1]}), column tram: nan is not a finite"),
        ({"scenes": np.array(SCENES[:9])}, "'scenes': 9 scene columns (missing tram)"),
        ({"filenames": np.array([NAMES[0], NAMES[0]])}, f"filenames[1]: {NAMES[0]} is given twice, first at filenames[0]"),
        ({"logits": None}, "no 'logits'"),
    ],
)
def test_a_bad_npz_names_the_array_and_what_was_expected(arrays: dict, expected: str, tmp_path: Path) -> None:
    content = {"filenames": np.array(NAMES[:2]), "logits": np.zeros((2, 10), dtype=np.float32)} | arrays
    path = tmp_path / "bad.npz"
    np.savez(path, **{key: value for key, value in content.items() if value is not None})
    assert expected in (message := refused(path)), message


def test_a_bad_pt_names_the_dtype_and_the_first_offending_clip(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    torch.save({"filenames": NAMES[:2], "logits": torch.zeros(2, 10, dtype=torch.int32)}, path)
    assert "'logits' has dtype torch.int32; logits must be floating point" in refused(path)
    logits = torch.zeros(2, 10)
    logits[1, 0] = float("inf")
    torch.save({"filenames": NAMES[:2], "logits": logits}, path)
    assert f"filenames[1] ({NAMES[1]}), column airport: inf is not a finite" in refused(path)
    path.write_bytes(b"not a torch file")
    assert "not loadable with torch.load(weights_only=True)" in refused(path)


def test_the_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    path = tmp_path / "teacher.tsv"
    with pytest.raises(TeacherLogitsError, match=r"'logits' has shape \[3, 10\]; expected \[2, 10\]"):
        write_teacher_logits(path, NAMES[:2], logits_of(3))
    with pytest.raises(TeacherLogitsError, match="nan is not a finite"):
        write_teacher_logits(path, NAMES[:1], np.full((1, 10), np.nan, dtype=np.float32))
    with pytest.raises(TeacherLogitsError, match="written tab-separated"):
        write_teacher_logits(tmp_path / "teacher.npz", NAMES[:1], logits_of(1))
    assert not list(tmp_path.iterdir())


def test_a_large_file_is_converted_in_chunks_with_its_line_numbers_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ascbench.distill.logits_file as logits_file

    monkeypatch.setattr(logits_file, "CHUNK_ROWS", 3)
    rows = rows_of(NAMES, logits_of(len(NAMES)))
    path = table(tmp_path / "teacher.tsv", ["filename", *SCENES], rows[:5] + [[]] + rows[5:])  # a blank line 7
    np.testing.assert_array_equal(read_teacher_logits(path).logits, logits_of(len(NAMES)))
    rows[7][10] = "x"
    table(path, ["filename", *SCENES], rows[:5] + [[]] + rows[5:])
    assert "line 10, column tram: 'x' is not a number" in refused(path)
