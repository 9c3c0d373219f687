"""The one progress display (``ascbench.progress``): what it shows, and that a disabled one is inert."""

from __future__ import annotations

import io

from rich.console import Console

from ascbench.progress import progress_bar


def test_a_bar_shows_its_description_count_and_status_and_a_disabled_one_prints_nothing() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bar(True, "baseline-mel features", 10, completed=2, console=console) as bar:
        bar.advance(3, status="loss 1.25")
        bar.advance(5)
    shown = out.getvalue()
    assert "baseline-mel features" in shown and "10/10" in shown and "loss 1.25" in shown

    quiet = io.StringIO()
    with progress_bar(False, "nothing", 4, console=Console(file=quiet)) as bar:
        bar.advance(4, status="x")
        bar.describe("y")
    assert quiet.getvalue() == ""


def test_inside_the_grid_display_each_stage_is_a_labelled_line_of_it_and_goes_when_done() -> None:
    from ascbench.progress import labelled, live_console, live_display

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with live_display(True, console) as live:
        assert live is not None and live_console() is console
        runs = live.add_task("runs", total=2, status="")
        with labelled("cp-mobile"), progress_bar(True, "epochs 1/3", 30) as bar:
            [stage] = [t for t in live.tasks if t.id != runs]
            assert stage.description == "cp-mobile · epochs 1/3"
            bar.describe("epochs 2/3")
            assert stage.description == "cp-mobile · epochs 2/3"
            console.print("epoch 1/3: loss 1.2")  # a log line, printed above the bars
        assert [t.id for t in live.tasks] == [runs]  # the stage's line is gone
    assert "epoch 1/3: loss 1.2" in out.getvalue()
    piped = Console(file=io.StringIO())  # not a terminal: no live region, plain lines only
    with live_display(True, piped) as live:
        assert live is None and live_console() is None


def test_a_finished_run_gets_one_result_line(tiny_synth_root, tmp_path) -> None:
    from ascbench.runner.local import run_local
    from ascbench.runner.request import RunRequest

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    request = RunRequest("cp-mobile", tiny_synth_root, 0.25, 0, profile="smoke", home=tmp_path / "home")
    [outcome] = run_local([request], progress=True, console=console)
    text = out.getvalue()
    assert outcome.record is not None
    assert f"done cp-mobile split25 seed0: accuracy {outcome.record.metrics.accuracy * 100:.1f} %" in text
    assert "runs" in text and "1/1" in text


def test_a_teacher_stage_logs_whole_epoch_lines_at_80_columns(tmp_path, capsys, monkeypatch) -> None:
    """A real (tiny) teacher fine-tuning logs through its stage's stderr log: the stage heads its
    lines once and each epoch line stays whole in an 80-column terminal (it folded when every
    line carried the stage's name)."""
    import re

    import numpy as np

    from ascbench.distill.teachers.finetune import FinetuneConfig, finetune_teacher
    from test_faults_teacher_resume import new_classifier, tone_clips, waves

    monkeypatch.setenv("COLUMNS", "80")
    clips, labels = tone_clips(16, seed=3)
    config = FinetuneConfig(epochs=2, batch_size=8, lr=3e-3, encoder_lr=1e-3, warmup_fraction=0.5)
    finetune_teacher(new_classifier(), waves(clips, tmp_path / "waves"), np.arange(16), labels, config, seed=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("teacher fine-tuning:") == 1
    epochs = [line for line in lines if "epoch" in line and "/2" in line]
    assert len(epochs) == 2
    for line in epochs:
        assert re.fullmatch(r"  epoch \d/2: loss [\d.]+, accuracy [\d.]+, lr \S+, \d+ clips/s, [\d.]+ s", line), line


def test_the_runs_bar_names_the_system_and_shows_split_and_seed_whole_at_80_columns(tmp_path, monkeypatch) -> None:
    """The runs bar's 30-column description cut "hubert-mobilenetv2 split25 seed0" to
    "hubert-mobilenetv2 spli…": the split and seed now sit in the status column."""
    from rich.progress import Progress

    from ascbench.progress import _columns
    from ascbench.runner import local
    from ascbench.runner.request import RunRequest
    from ascbench.systems import discover

    monkeypatch.setattr(local, "grid_eta", lambda requests, registry: None)  # no estimate: this test is about the label
    request = RunRequest("hubert-mobilenetv2", tmp_path, 0.25, 0, profile="smoke", home=tmp_path)
    progress = Progress(*_columns())
    bar = local.RunsBar(progress, [request], discover())

    def shown() -> str:
        out = io.StringIO()
        Console(file=out, width=80, color_system=None).print(progress.make_tasks_table(progress.tasks))
        return out.getvalue()

    bar.start(0, request)
    assert "runs · hubert-mobilenetv2" in shown() and "split25 seed0" in shown()
    bar.finish(0, computed=True)
    assert "split25" not in shown() and "1/1" in shown()
