"""Faults found by walking through issue #23's reproductions at the command line, on a fresh clone
(docs/experiments/fault-walkthrough.md).

An AttributeError in a plugin's training forward is raised by torch's ``Module.__getattr__``. The
run's failure line must name the plugin's own line, ``(from plugin.py:N)``. It named only torch's
``module.py`` when torch was installed in a site folder outside the interpreter's own folders:
the user site, Debian's ``dist-packages`` (also under a venv made with
``--system-site-packages``), or another environment's site-packages that a ``.pth`` file adds.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from ascbench.systems import registry
from ascbench.systems.registry import describe_error


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


PLUGIN = """\
from torch import nn


class TrainsBadly(nn.Module):
    def forward(self, x):
        return x + self.no_such_attribute
"""


def test_torch_outside_the_interpreters_own_folders_still_names_the_plugin_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch in a site folder on sys.path that is none of the interpreter's own (sysconfig's)
    folders: the user site, Debian's dist-packages, another environment's site-packages."""
    venv = tmp_path / "venv" / "lib" / "python3"
    (venv / "site-packages").mkdir(parents=True)
    paths = {**sysconfig.get_paths(), "stdlib": str(tmp_path / "base" / "lib" / "python3"), "platstdlib": str(venv),
             "purelib": str(venv / "site-packages"), "platlib": str(venv / "site-packages")}  # fmt: skip
    monkeypatch.setattr(registry.sysconfig, "get_paths", lambda *args, **kwargs: paths)
    torch_file = Path(torch.nn.Module.__getattr__.__code__.co_filename)
    assert str(torch_file.parents[3]) in sys.path  # torch/nn/modules/module.py: its site folder

    plugin = _write(tmp_path / "subs" / "bad.py", PLUGIN)
    model = _import(plugin, "walkthrough_bad_plugin").TrainsBadly()
    with pytest.raises(AttributeError) as caught:
        model(torch.zeros(1))
    text = describe_error(caught.value)
    assert f" at {torch_file}:" in text
    assert text.endswith(f"(from {plugin}:6)"), text


@pytest.mark.parametrize("folder", ["site-packages", "dist-packages"])
def test_a_site_folder_added_to_sys_path_is_library_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    """Another environment's packages, added by a .pth file, or Debian's dist-packages."""
    site = tmp_path / "other-env" / "lib" / "python3" / folder
    library = _write(site / "walkthrough_fakelib.py", "def get(name):\n    raise AttributeError(f'no attribute {name!r}')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "walkthrough_fakelib", raising=False)
    plugin = _write(tmp_path / "subs" / "plug.py", "import walkthrough_fakelib\n\n\ndef forward():\n    return walkthrough_fakelib.get('x')\n")
    try:
        module = _import(plugin, "walkthrough_plug")
        with pytest.raises(AttributeError) as caught:
            module.forward()
    finally:
        sys.modules.pop("walkthrough_fakelib", None)
    text = describe_error(caught.value)
    assert text.startswith(f"AttributeError: no attribute 'x' at {library}:2"), text
    assert text.endswith(f"(from {plugin}:5)"), text


def test_a_plugin_folder_is_not_library_code(tmp_path: Path) -> None:
    """An error raised on the plugin's own line names only that line."""
    plugin = _write(tmp_path / "subs" / "own.py", "def forward():\n    raise KeyError('missing')\n")
    with pytest.raises(KeyError) as caught:
        _import(plugin, "walkthrough_own").forward()
    text = describe_error(caught.value)
    assert text == f"KeyError: 'missing' at {plugin}:2", text
