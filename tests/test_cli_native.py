"""The console script when the machine lacks a native library torch or torchaudio needs: one line
naming the package, the missing library and the fix, exit code 2; any other error keeps its
traceback. Seen on a fresh Debian 12 arm64 install (docs/experiments/install-size.md), where
torchaudio 2.9.1 needs the system's libgomp.so.1."""

from __future__ import annotations

import ctypes
import sys

import pytest

from ascbench.cli import main as cli_main
from ascbench.cli.native_libraries import native_library_problem

TORCHAUDIO_LIB = "/root/ascbench/.venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so"


def load_like_torch(library: str, wrapper_path: str = TORCHAUDIO_LIB) -> None:
    """What ``torch.ops.load_library`` does: dlopen, and re-raise the loader's error as its cause."""
    try:
        ctypes.CDLL(library)
    except OSError as error:
        raise OSError(f"Could not load this library: {wrapper_path}") from error


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the message matched is the Linux loader's")
def test_a_real_failed_load_becomes_one_line_naming_package_and_library(monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "app", lambda: load_like_torch("libascbench-missing-test.so.3"))
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "torchaudio's native code did not load" in err
    assert "libascbench-missing-test.so.3 is missing" in err
    assert "Traceback" not in err


def test_libgomp_gets_the_system_package_that_provides_it():
    """The loader's text as torchaudio's import raised it on Debian 12 arm64 (minbase)."""
    try:
        try:
            raise OSError("libgomp.so.1: cannot open shared object file: No such file or directory")
        except OSError as cause:
            raise OSError(f"Could not load this library: {TORCHAUDIO_LIB}") from cause
    except OSError as error:
        problem = native_library_problem(error)
    assert problem is not None
    assert "libgomp.so.1" in problem and "apt install libgomp1" in problem and "dnf install libgomp" in problem


def test_other_errors_keep_their_traceback(monkeypatch):
    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_main, "app", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cli_main.main()
    assert native_library_problem(ValueError("libx.so.1: cannot open shared object file")) is None
