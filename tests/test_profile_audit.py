"""``ascbench profile`` (complexity without training) and ``ascbench audit`` (claimed figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ascbench.cli.main import app
from ascbench.evaluation.audit import PAPER_TABLES, Claim, ClaimFileError, audit_claim, load_claims, parse_count

# A factory whose counts are worked out by hand under the DCASE convention:
# conv 1->4, 3x3, padding 1: 36 weights + 4 biases = 40 params, (36 + 4) MACs per output position;
# average pooling and flatten: 0; linear 4->10: 40 + 10 = 50 params and 50 MACs.
FACTORY = """
import torch
from torch import nn

def small():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

def broken():
    raise RuntimeError("no weights for you")

class Untraceable(nn.Module):  # runs eagerly, refuses the JIT trace (as a custom extension op does)
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 10)
    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("my_extension::fused_op cannot be traced")
        return self.fc(x.flatten(1)[:, :4])

def untraceable():
    return Untraceable()
"""
SMALL_PARAMS = 40 + 50


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_model.py"
    path.write_text(FACTORY)
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


# --- profile ----------------------------------------------------------------------------------


def test_profile_cp_mobile_prints_the_official_dcase_figures() -> None:
    result = invoke("profile", "cp-mobile")
    assert result.exit_code == 0, result.output
    assert "61,148" in result.output and "29,419,156" in result.output
    assert "61.148 kB" in result.output and "122.296 kB" in result.output  # int8 and fp16 memory
    assert "FAIL" not in result.output and "Uncounted operators: none" in result.output
    assert "stages.0" in result.output  # the per-module breakdown


def test_profile_factory_path_counts_by_hand(factory_file: Path) -> None:
    ref = f"{factory_file}:small"
    default = json.loads(invoke("profile", ref, "--format", "json").output)
    assert default["input_shape"] == [1, 1, 256, 65] and default["output_shape"] == [1, 10]
    assert default["params"] == SMALL_PARAMS
    assert default["macs"] == 40 * 256 * 65 + 50
    assert default["param_memory_kb"] == {"int8": 0.09, "fp16": 0.18}
    assert default["within_limits"]["dcase_int8"] is True and default["uncounted_ops"] == {}

    result = invoke("profile", ref, "--input-shape", "1,1,8,8", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["macs"] == 40 * 8 * 8 + 50
    rows = {row["module"]: row for row in data["breakdown"]}
    assert rows["0"]["macs"] == 2560 and rows["4"]["params"] == 50 and rows["2"]["macs"] == 0
    assert sum(row["macs"] for row in data["breakdown"]) == data["macs"]


def test_profile_int8_saves_a_real_file(factory_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "small-int8.pt2"
    result = invoke("profile", f"{factory_file}:small", "--input-shape", "1,1,8,8", "--int8", "--calibration", "8",
                    "--save-int8", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    int8 = json.loads(result.output)["int8"]
    assert int8["error"] is None and int8["file_bytes"] == out.stat().st_size
    assert int8["int8_values"] == 36 + 40  # conv and linear weights; biases stay float
    assert "untrained" in int8["note"]


def test_profile_unknown_system_lists_the_registered_ones() -> None:
    result = invoke("profile", "no-such-system")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "unknown system 'no-such-system'" in text and "cp-mobile" in text and "Traceback" not in text


def test_profile_bad_factory_references_say_what_was_expected(factory_file: Path, tmp_path: Path) -> None:
    missing_attr = flat(invoke("profile", f"{factory_file}:nope").output)
    assert str(factory_file) in missing_attr and "'nope'" in missing_attr and "broken, small" in missing_attr
    missing_file = flat(invoke("profile", f"{tmp_path / 'absent.py'}:small").output)
    assert "absent.py: no such file" in missing_file and "path/to/file.py:factory" in missing_file
    failing = invoke("profile", f"{factory_file}:broken")
    assert failing.exit_code == 2 and "no weights for you" in flat(failing.output)
    wrong_shape = invoke("profile", f"{factory_file}:small", "--input-shape", "1,16000")
    assert wrong_shape.exit_code == 2 and "--input-shape" in flat(wrong_shape.output)
    untraceable = invoke("profile", f"{factory_file}:untraceable", "--input-shape", "1,4")
    message = flat(untraceable.output)
    assert untraceable.exit_code == 2 and "MAC counting" in message and "cannot be traced" in message
    assert "--input-shape right" not in message  # the forward pass ran: the shape is not the problem


# --- audit: the arithmetic ----------------------------------------------------------------------


def test_audit_finds_the_impossible_claim_and_passes_a_consistent_one() -> None:
    bad = audit_claim(Claim("H_M", params=900_000, size_kb=115.6, bits=8))
    assert bad.impossible and bad.status.startswith("impossible")
    assert bad.needed_kb == 900.0 and bad.max_params == 115_600
    assert bad.implied_bits == pytest.approx(115.6 * 8000 / 900_000)

    good = audit_claim(Claim("cp-mobile", params=61_148, size_kb=61.2, bits=8, macs=29_419_156))
    assert good.status == "consistent" and good.fits and good.macs_within_limit and not good.problems

    # exactly full is possible, one parameter more is not (exact decimal arithmetic)
    assert audit_claim(Claim("x", params=115_600, size_kb=115.6)).fits is True
    assert audit_claim(Claim("x", params=115_601, size_kb=115.6)).fits is False
    # a lower precision makes the same size hold more parameters
    assert audit_claim(Claim("x", params=900_000, size_kb=115.6, bits=1)).fits is True


def test_audit_checks_the_dcase_limits() -> None:
    at_limit = audit_claim(Claim("x", params=128_000, size_kb=128, macs=30_000_000))
    assert at_limit.status == "consistent"
    over = audit_claim(Claim("x", params=100_000, size_kb=130, macs=30_000_001))
    assert over.fits and over.status == "over DCASE limit" and len(over.problems) == 2
    fp16 = audit_claim(Claim("x", params=100_000, bits=16))  # no size claimed: 200 kB of fp16 params
    assert fp16.fits is None and fp16.size_within_limit is False


def test_audit_cli_single_claim_and_strict_exit_code() -> None:
    args = ("audit", "--params", "900000", "--size-kb", "115.6", "--bits", "8")
    lenient = invoke(*args)
    assert lenient.exit_code == 0 and "impossible" in lenient.output
    assert "900.0 kB" in flat(lenient.output) and "115,600 params at most" in flat(lenient.output)
    assert invoke(*args, "--strict").exit_code == 1
    ok = invoke("audit", "--params", "61148", "--size-kb", "61.2", "--macs", "29419156", "--strict")
    assert ok.exit_code == 0 and "consistent" in ok.output
    assert invoke("audit").exit_code == 2  # nothing to audit
    assert invoke("audit", "--paper", "--params", "1").exit_code == 2  # two sources


# --- audit: the seed paper and claims files -----------------------------------------------------


def test_paper_tables_load_and_audit_as_computed_by_hand() -> None:
    claims = {c.system: c for c in load_claims(PAPER_TABLES)}
    assert list(claims) == ["BASE_I", "BASE_II", "BASE_III", "H_M"]
    h_m = claims["H_M"]
    assert (h_m.params, h_m.macs, h_m.size_kb, h_m.bits, h_m.accuracy) == (900_000, 26_000_000, 115.6, 8, 81.3)
    assert not h_m.bits_assumed and claims["BASE_I"].bits_assumed
    assert claims["BASE_II"].extra["s4_s6_drop_pct"] == "19.8"

    verdicts = {c.system: audit_claim(c) for c in claims.values()}
    # H_M: 900,000 x 8 / 8000 = 900 kB needed > 115.6 kB claimed
    assert verdicts["H_M"].impossible and verdicts["H_M"].needed_kb == 900.0
    # BASE_II: 384.6 kB hold 384,600 int8 params, not 3.8 M; 384.6 kB itself is over 128 kB
    assert verdicts["BASE_II"].max_params == 384_600 and verdicts["BASE_II"].size_within_limit is False
    # BASE_III's 3.0 x 10^7 MACs sit exactly at the 30 M limit; BASE_I's 4.1 x 10^7 are over
    assert verdicts["BASE_III"].macs_within_limit is True and verdicts["BASE_I"].macs_within_limit is False

    result = invoke("audit", "--paper", "--format", "json", "--strict")
    assert result.exit_code == 1
    rows = json.loads(result.output)
    assert [r["system"] for r in rows] == ["BASE_I", "BASE_II", "BASE_III", "H_M"]
    assert all(r["verdict"].startswith("impossible") for r in rows)


def test_claims_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text("# my systems\nsystem,params,size_kb,bits\nok,1000,1.0,8\nbad,lots,2.0,8\n")
    with pytest.raises(ClaimFileError, match=rf"claims.csv:4: column 'params': 'lots' is not a count"):
        load_claims(path)
    result = invoke("audit", "--table", str(path))
    assert result.exit_code == 2 and f"{path}:4" in flat(result.output).replace(" ", "")

    path.write_text("system,params,size_kb\nok,1000,1.0\nshort,5\n")
    with pytest.raises(ClaimFileError, match=r"claims.csv:3: 2 fields, the header has 3"):
        load_claims(path)
    path.write_text("name,params\nx,1\n")
    with pytest.raises(ClaimFileError, match=r"claims.csv:1: header has no 'system' column"):
        load_claims(path)


def test_non_finite_claims_are_refused_with_the_field_or_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size_kb must be a finite"):
        Claim("x", params=10, size_kb=float("nan"))
    single = invoke("audit", "--params", "1000", "--size-kb", "nan")
    assert single.exit_code == 2 and "size_kb must be a finite" in flat(single.output)
    path = tmp_path / "claims.csv"
    path.write_text("system,params,size_kb\nx,1000,inf\n")
    table = invoke("audit", "--table", str(path))
    assert table.exit_code == 2 and "'inf' is not a finite number" in flat(table.output)


def test_claims_file_without_bits_assumes_int8_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text("system,params,size_kb,bits\nmine,1.2M,150,\nlean,64k,16,2\n")
    mine, lean = load_claims(path)
    assert mine.params == 1_200_000 and mine.bits == 8 and mine.bits_assumed and mine.source.endswith("claims.csv:2")
    assert audit_claim(lean).status == "consistent"  # 64,000 x 2 bits = 16 kB exactly
    assert parse_count("29_419_156") == 29_419_156 and parse_count("2.6e7") == 26_000_000
    with pytest.raises(ValueError):
        parse_count("0.5")
