"""The registry finds systems wherever they are dropped, and isolates broken plugins."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from ascbench.systems import SystemLoadError, discover, model_input_shape, validate_system

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "submissions" / "_template.py"


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
    from torch import nn
    from ascbench import register_system

    @register_system("{name}", description="test plugin")
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, {classes}))
"""


def test_entry_point_baselines_are_found(tmp_path: Path) -> None:
    registry = discover(submissions=tmp_path)  # an empty folder: only the entry points
    assert "efficientnet-b0" in registry.names()
    spec = registry.get("efficientnet-b0")
    assert spec.family == "baseline" and spec.paper_label == "BASE_II"
    assert spec.origin.startswith("entry point 'baselines'")


def test_dropped_file_and_package_are_registered(tmp_path: Path) -> None:
    _write(tmp_path, "alpha.py", GOOD.format(name="alpha", classes=10))
    pkg = tmp_path / "beta_pkg"
    pkg.mkdir()
    _write(pkg, "__init__.py", GOOD.format(name="beta", classes=10))
    _write(tmp_path, "_ignored.py", GOOD.format(name="ignored", classes=10))
    registry = discover(submissions=tmp_path, entry_points=False)
    assert registry.names() == ["alpha", "beta"]
    assert registry.problems == []
    model = validate_system(registry.get("alpha"))
    out = model(torch.randn(model_input_shape(registry.get("alpha"), batch=3)))
    assert out.shape == (3, 10)


def test_broken_plugins_are_named_and_others_stay_usable(tmp_path: Path) -> None:
    _write(tmp_path, "a_good.py", GOOD.format(name="good", classes=10))
    _write(tmp_path, "z_dup.py", GOOD.format(name="good", classes=10))
    _write(tmp_path, "crash.py", "import this_module_does_not_exist\n")
    _write(tmp_path, "shape.py", GOOD.format(name="wrong-shape", classes=7))
    registry = discover(submissions=tmp_path, entry_points=False)
    assert sorted(registry.names()) == ["good", "wrong-shape"]
    messages = {Path(p.origin.split()[-1]).name: p.message for p in registry.problems}
    assert "already registered" in messages["z_dup.py"] and "a_good.py" in messages["z_dup.py"]
    assert "ModuleNotFoundError" in messages["crash.py"]
    validate_system(registry.get("good"))  # still usable
    with pytest.raises(SystemLoadError, match=r"wrong-shape .*shape\.py.*\(1, 7\).*expected \(1, 10\)"):
        validate_system(registry.get("wrong-shape"))
    with pytest.raises(SystemLoadError, match="unknown system 'nope'"):
        registry.get("nope")


def test_select_all_and_list(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", GOOD.format(name="a-sys", classes=10))
    _write(tmp_path, "b.py", GOOD.format(name="b-sys", classes=10))
    registry = discover(submissions=tmp_path, entry_points=False)
    assert [s.name for s in registry.select("all")] == ["a-sys", "b-sys"]
    assert [s.name for s in registry.select("b-sys, a-sys")] == ["b-sys", "a-sys"]


def test_all_leaves_out_teachers_that_are_still_run_by_name() -> None:
    """A teacher (family ``teacher``, beyond the DCASE limits by design) is not a candidate of
    ``--models all``: it would add its long training to the first run of every user."""
    registry = discover(None)
    assert registry.get("cp-mobile-large").family == "teacher"
    assert "cp-mobile-large" not in [s.name for s in registry.select("all")]
    assert [s.name for s in registry.select("cp-mobile-large")] == ["cp-mobile-large"]


def test_template_registers_once_copied(tmp_path: Path) -> None:
    assert discover(submissions=TEMPLATE.parent, entry_points=False).names() == []  # skipped: leading '_'
    shutil.copy(TEMPLATE, tmp_path / "my_system.py")
    registry = discover(submissions=tmp_path, entry_points=False)
    model = validate_system(registry.get("my-system"))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_discovering_twice_in_one_process_finds_the_same_systems(tmp_path: Path) -> None:
    _write(tmp_path, "twice.py", GOOD.format(name="twice", classes=10))
    first = discover(submissions=tmp_path)
    second = discover(submissions=tmp_path)
    assert first.names() == second.names()
    assert {"efficientnet-b0", "twice"} <= set(second.names())
    assert not second.problems
