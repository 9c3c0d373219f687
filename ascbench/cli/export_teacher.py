"""``ascbench export teacher-logits``: an ensemble of recorded runs as a teacher-logits file.

Why: a logits file is how ensemble teachers travel between teams and tools (``--teacher
logits:FILE``), and the runs ascbench recorded are a teacher a user already has. The file holds
the members' mean logits on the split's training clips (or, ``--clips test``, on the test clips,
with the teacher's accuracy there), computed from their recorded weights
(the same numbers ``--teacher runs:SYS`` distils from), in the tab-separated form documented in
docs/distillation.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ascbench.cli.common import SUBMISSIONS_HELP, HomeOption, console, fail, resolve_data_root


def teacher_logits(
    teacher: Annotated[str, typer.Option("--teacher", help="The ensemble: runs:SYS[,SYS...] (systems recorded at this split, seed and profile).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .tsv file to write.")],
    fraction: Annotated[str, typer.Option("--fraction", "-f", help="The split whose training clips the file covers: 0.05 ... 1.0 (or 5 ... 100).")] = "0.25",
    clips: Annotated[str, typer.Option("--clips", help="train: the split's training clips (what a student distils from); test: the test clips, and the teacher's macro class-wise accuracy on them is printed.")] = "train",
    seed: Annotated[int, typer.Option("--seed", help="The member runs' seed.")] = 0,
    data: Annotated[Optional[str], typer.Option("--data", help="A TAU22-layout directory or synth-tau22[-tiny|small|medium] (default: synth-tau22 small).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="The member runs' training profile.")] = "quick",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    submissions: Annotated[Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
    home: HomeOption = None,
) -> None:
    """Write the mean logits of recorded runs as a teacher-logits file for --teacher logits:FILE.

    The file holds the members' mean logits on a split's training clips (header `filename` + the 10
    scenes, one row per clip), for `ascbench run --teacher logits:FILE` here or anywhere else; with
    --clips test, on the test clips, printing the teacher's accuracy. Members without a current
    record are named with the command that trains them."""
    import numpy as np

    from ascbench.data.layout import parse_fraction
    from ascbench.evaluation.metrics import macro_class_accuracy
    from ascbench.data.reader import load_split
    from ascbench.distill.logits_file import write_teacher_logits
    from ascbench.distill.sources import parse_teacher
    from ascbench.runner.execute import member_run
    from ascbench.runner.request import RunRequest
    from ascbench.runner.teacher import resolve_teacher
    from ascbench.systems.registry import SystemLoadError, discover
    from ascbench.data.reader import load_dataset
    from ascbench.paths import resolve_home
    from ascbench.training import resolve_device

    try:
        source = parse_teacher(teacher)
        if source.kind != "runs":
            raise ValueError(f"--teacher {teacher}: export writes an ensemble of recorded runs; give runs:SYS[,SYS...]")
        split_fraction = parse_fraction(fraction)
        registry = discover(submissions)
        for system in source.systems:
            registry.get(system)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))
    if clips not in ("train", "test"):
        fail(f"--clips {clips}: expected train or test")
    if out.is_dir():
        fail(f"--out {out}: is a directory; give the file's path, e.g. {out / 'teacher.tsv'}")
    data_root = resolve_data_root(data, home, progress=not no_progress)
    request = RunRequest("export", data_root, split_fraction, seed, profile=profile, device=device, home=home, submissions=submissions)
    home_dir = resolve_home(home)
    try:
        resolved = resolve_teacher(source, lambda system: member_run(request, system, registry), seed, home_dir)
        dataset = load_dataset(data_root)
        split = load_split(dataset, split_fraction)
        chosen = split.train if clips == "train" else split.test
        names = [c.filename for c in chosen]
        logits = resolved.logits_fn(dataset, split, home_dir, resolve_device(device), not no_progress)(names)
    except ValueError as error:
        fail(str(error))
    path = write_teacher_logits(out, names, logits)
    members = ", ".join(f"{m.spec.name} ({m.accuracy:.1%})" for m in resolved.members)
    what = f"training clips of split{round(split_fraction * 100)}" if clips == "train" else "test clips"
    console.print(f"{path}: logits of {len(names)} {what} ({dataset.name}), the mean of {members} at seed {seed}, "
                  f"profile {profile}", highlight=False, soft_wrap=True)
    if clips == "test":
        accuracy = macro_class_accuracy(np.array([c.label for c in chosen]), logits.argmax(axis=1))
        console.print(f"the teacher's macro class-wise accuracy on the {len(names)} test clips: {accuracy:.1%}", highlight=False, soft_wrap=True)
