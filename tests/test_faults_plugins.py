"""Fault tests: one bad plugin never takes the grid (or the registry) down, and the data generator's
worker processes do not outlive a killed parent.

Each plugin here fails the way real submissions do: an error that only its training-mode forward
raises (validation runs in eval mode and passes), an exit at import (a script that parses its own
command line with argparse), an exit in its factory or forward.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from ascbench.cli.main import app
from test_cli_hardening import _folder
from ascbench.results.store import ResultsStore
from ascbench.runner.request import RunRequest
from ascbench.systems import SystemLoadError, discover, validate_system

runner = CliRunner()

TINY = """
    from torch import nn
    from ascbench import register_system

    @register_system("{name}")
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
"""

TRAINS_BADLY = """
    import sys
    from torch import nn
    from ascbench import register_system


    class TrainsBadly(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

        def forward(self, x):
            if self.training:  # validation (eval mode) passes; the first training step does not
                {failure}
            return self.net(x)


    @register_system("{name}")
    def build() -> nn.Module:
        return TrainsBadly()
"""

FAILURES = {
    "attribute": "return self.net(x) + self.no_such_attribute",
    "type": "return self.net(x, 'extra argument')",
    "key": "return {}['missing-key']",
    "index": "return [][3]",
    "assertion": "assert x.shape[0] == -1, 'a plugin assertion'",
    "exit": "sys.exit(3)",
    "interrupt": "raise KeyboardInterrupt",
}

ARGPARSE_AT_IMPORT = """
    import argparse

    parser = argparse.ArgumentParser(prog="argy")
    parser.add_argument("--config", required=True)  # never on ascbench's command line: exits with status 2
    parser.parse_args()
"""

EXIT_IN_FACTORY = """
    import sys
    from torch import nn
    from ascbench import register_system

    @register_system("exits-building")
    def build() -> nn.Module:
        sys.exit(1)
"""

EXIT_IN_FORWARD = """
    import argparse
    from torch import nn
    from ascbench import register_system


    class ParsesInForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(1, 10)

        def forward(self, x):
            argparse.ArgumentParser(prog="fwd").parse_args(["--unknown"])
            return self.head(x.mean(dim=(1, 2, 3)).unsqueeze(1))


    @register_system("exits-forward")
    def build() -> nn.Module:
        return ParsesInForward()
"""




def _flat(text: str) -> str:
    """Output without rich's wrapping: paths and messages are matched whole."""
    return "".join(text.replace("│", "").split())


def _bad(kind: str) -> str:
    return TRAINS_BADLY.format(name=f"bad-{kind}", failure=FAILURES[kind])


def _common(data: Path, home: Path, subs: Path) -> list[str]:
    return ["--data", str(data), "--profile", "smoke", "--fraction", "0.25", "--device", "cpu", "--home", str(home),
            "--submissions", str(subs), "--no-progress"]  # fmt: skip


def _systems(home: Path) -> list[str]:
    return sorted(r.key.system for r in ResultsStore(home).iter_records())


# --- 1(a): an exception in one run costs that run only ----------------------------------------------


def test_an_attribute_error_in_training_fails_that_run_and_the_grid_goes_on(tiny_synth_root: Path, tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"bad.py": TRAINS_BADLY.format(name="bad", failure=FAILURES["attribute"])})
    home = tmp_path / "home"
    result = runner.invoke(app, ["run", "--models", "bad,cp-mobile", *_common(tiny_synth_root, home, subs)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output  # one run of the grid failed: as for any failed run
    assert _systems(home) == ["cp-mobile"]  # the system after the bad one still ran
    output = _flat(result.output)
    assert "runbadsplit25seed0failed:AttributeError:" in output and "no_such_attribute" in output
    assert f"(from{subs / 'bad.py'}:" in output  # the plugin's own line, not torch's __getattr__


def test_any_plugin_exception_or_exit_fails_only_its_run(tiny_synth_root: Path, tmp_path: Path) -> None:
    """TypeError, KeyError, IndexError, AssertionError and SystemExit were not "recoverable": the
    first of them ended the grid with a traceback (or, for the exit, with the plugin's status)."""
    from ascbench.runner.local import run_local

    kinds = ["type", "key", "index", "assertion", "exit"]
    subs = _folder(tmp_path, "subs", {**{f"bad_{k}.py": _bad(k) for k in kinds}, "tiny.py": TINY.format(name="tiny")})
    home = tmp_path / "home"
    systems = [*(f"bad-{k}" for k in kinds), "tiny"]
    requests = [RunRequest(s, tiny_synth_root, 0.25, 0, profile="smoke", device="cpu", home=home, submissions=subs) for s in systems]
    console = Console(record=True, width=400)
    outcomes = run_local(requests, registry=discover(subs), progress=False, console=console)
    errors = {o.request.system: o.error for o in outcomes}
    printed = console.export_text()
    expected = {"type": "TypeError", "key": "KeyError", "index": "IndexError", "assertion": "AssertionError: a plugin assertion",
                "exit": "SystemExit: 3"}  # fmt: skip
    for kind, prefix in expected.items():
        error = errors[f"bad-{kind}"]
        assert error is not None and error.startswith(prefix), (kind, error)
        assert f"{subs / f'bad_{kind}.py'}:" in error, error  # where, in the plugin
        assert f"run bad-{kind} split25 seed0 failed: {prefix}" in printed, kind
    assert errors["tiny"] is None and _systems(home) == ["tiny"]


def test_an_exit_fails_its_run_but_ctrl_c_still_stops_the_grid(tiny_synth_root: Path, tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"bad_exit.py": _bad("exit"), "bad_interrupt.py": _bad("interrupt")})
    home = tmp_path / "home"
    result = runner.invoke(app, ["run", "--models", "bad-exit,bad-interrupt,cp-mobile", *_common(tiny_synth_root, home, subs)])
    assert result.exit_code == 130, result.output  # the CLI's Ctrl-C status, not the plugin's 3
    output = _flat(result.output)
    assert "runbad-exitsplit25seed0failed:SystemExit:3" in output
    assert "interrupted:" in output
    assert _systems(home) == []  # the grid stopped at the interrupt: cp-mobile never started


def test_a_ray_task_returns_its_run_failure_instead_of_raising(tiny_synth_root: Path, tmp_path: Path) -> None:
    """Raised out of the task, an AttributeError became the error of every run waiting on this one,
    and a SystemExit ended the Ray worker (retried as a crashed worker)."""
    from ascbench.runner.ray_executor import _execute

    subs = _folder(tmp_path, "subs", {"bad_attribute.py": _bad("attribute"), "bad_exit.py": _bad("exit")})
    threads = torch.get_num_threads()
    try:
        for system, prefix in (("bad-attribute", "AttributeError"), ("bad-exit", "SystemExit: 3")):
            request = RunRequest(system, tiny_synth_root, 0.25, 0, profile="smoke", device="cpu", home=tmp_path / "home", submissions=subs)
            outcome = _execute(request, threads)
            assert outcome.record is None and outcome.error is not None and outcome.error.startswith(prefix), outcome.error
            waiting = _execute(request, threads, outcome)  # a run sharing its teacher stage is not run
            assert waiting.error is not None and waiting.error.startswith("not run:")
    finally:
        torch.set_num_threads(threads)


# --- 1(b): exits at import, in the factory or forward are plugin problems ----------------------------


def test_a_plugin_that_parses_its_own_arguments_at_import_is_a_plugin_problem(tiny_synth_root: Path, tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"argy.py": ARGPARSE_AT_IMPORT, "exits.py": "import sys\nsys.exit(2)\n",
                                      "builds.py": EXIT_IN_FACTORY, "forward.py": EXIT_IN_FORWARD, "tiny.py": TINY.format(name="tiny")})  # fmt: skip
    registry = discover(subs)
    assert {"cp-mobile", "tiny", "exits-building", "exits-forward"} <= set(registry.names())
    problems = {Path(p.origin.split()[-1]).name: p.message for p in registry.problems}
    assert problems["argy.py"].startswith("failed to import: SystemExit: 2 at ")
    assert problems["argy.py"].endswith(f"(from {subs / 'argy.py'}:6)")  # argparse's exit, called from the plugin's line
    assert problems["exits.py"] == f"failed to import: SystemExit: 2 at {subs / 'exits.py'}:2"

    listed = runner.invoke(app, ["systems", "--submissions", str(subs)])
    assert listed.exit_code == 0, listed.output
    output = _flat(listed.output)
    assert {"cp-mobile", "tiny"} <= set(discover(subs).systems)  # the table's narrow columns may wrap names
    assert f"{subs / 'argy.py'}:failedtoimport:SystemExit:2" in output
    assert "exits-building(" in output and "build_model()failed:SystemExit:1" in output
    assert "exits-forward(" in output and "forwardpassona[1,1,256,65]inputfailed:SystemExit:2" in output

    home = tmp_path / "home"
    result = runner.invoke(app, ["run", "--models", "cp-mobile", *_common(tiny_synth_root, home, subs)])
    assert result.exit_code == 0, result.output
    assert _systems(home) == ["cp-mobile"]


def test_validate_system_turns_exits_into_load_errors(tmp_path: Path) -> None:
    subs = _folder(tmp_path, "subs", {"builds.py": EXIT_IN_FACTORY, "forward.py": EXIT_IN_FORWARD})
    registry = discover(subs, entry_points=False)
    with pytest.raises(SystemLoadError, match=r"exits-building .*build_model\(\) failed: SystemExit: 1 at .*builds\.py:8"):
        validate_system(registry.get("exits-building"))
    with pytest.raises(SystemLoadError, match=r"exits-forward .*forward pass .* failed: SystemExit: 2 at .*argparse\.py:\d+ \(from .*forward\.py:\d+\)"):
        validate_system(registry.get("exits-forward"))


# --- 3: data generation workers end with their parent -----------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ..., starttime at 19); None
    when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def _spawned_workers(parent: int) -> dict[int, str]:
    """The multiprocessing workers ``parent`` spawned, by pid, with their start times (a pid that
    is reused later is not mistaken for the worker). The resource tracker is not one of them."""
    workers: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None or fields[1] != str(parent):
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers[int(entry.name)] = fields[19]
    return workers


def _running(pid: int, started: str) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[19] == started and fields[0] not in ("Z", "X")  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signalling and /proc are Linux's")
def test_generation_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of `ascbench data synth` gives its pool no chance to shut down: the workers must
    notice on their own, not go on rendering (then wait forever for tasks)."""
    script = ("from ascbench.data.synth import SynthConfig, generate; "
              f"generate(SynthConfig.preset('small', 0, workers=2), {str(tmp_path / 'set')!r}, progress=False)")  # fmt: skip
    log = (tmp_path / "generate.log").open("wb")
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 or not any(tmp_path.glob(".set.partial-*/audio/*.wav")):  # both started, clips being written
            assert child.poll() is None and time.monotonic() < deadline, (tmp_path / "generate.log").read_text()
            workers = _spawned_workers(child.pid)
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_running(pid, started) for pid, started in workers.items()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid, started in workers.items() if _running(pid, started)], "workers outlived their killed parent"
    finally:
        log.close()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        for pid, started in workers.items():  # whatever outlived the parent (the code before the fix)
            if _running(pid, started):
                os.kill(pid, signal.SIGKILL)
