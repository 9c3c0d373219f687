"""``ascbench ablation``: the paper's ablation table, run and shown as a leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ascbench.cli.common import (
    DATA_PANEL, EXECUTION_PANEL, OUTPUT_PANEL, SUBMISSIONS_HELP, TEACHERS_PANEL, TRAINING_PANEL, console, fail, report_plugin_problems,
    resolve_data_root,
)  # fmt: skip
from ascbench.ablation import ABLATABLE, PAPER_COMPONENTS
from ascbench.cli.run import (
    POOL_KD_HELP, SET_HELP, TEACHER_HELP, OutputHome, check_device, check_profile, check_recipe_profiles, check_teachers, parse_ablate, parse_fractions,
    parse_seeds, resolve_options, run_settings,
)  # fmt: skip


def ablation_sets(components: frozenset[str], all_off: bool) -> list[frozenset[str]]:
    """The full system, each component switched off alone, and (optionally) all of them off."""
    sets = [frozenset()] + [frozenset({name}) for name in sorted(components)]
    if all_off and len(components) > 1:
        sets.append(frozenset(components))
    return sets


def ablation(
    system: Annotated[str, typer.Argument(help="The system to ablate (its recipe must know the components).")] = "hubert-mobilenetv2",
    components: Annotated[str, typer.Option("--components", rich_help_panel=TRAINING_PANEL, help=f"Comma-separated components to switch off one at a time: {', '.join(ABLATABLE)} (kd: the final logit KD).")] = ",".join(PAPER_COMPONENTS),
    all_off: Annotated[bool, typer.Option("--all-off/--no-all-off", rich_help_panel=TRAINING_PANEL, help="Also run with every listed component off at once.")] = True,
    fraction: Annotated[str, typer.Option("--fraction", "-f", rich_help_panel=DATA_PANEL, help="Training split(s), as for `ascbench run`.")] = "0.25",
    seeds: Annotated[str, typer.Option("--seeds", rich_help_panel=DATA_PANEL, help="Comma-separated seeds (each row is a mean over them).")] = "0",
    data: Annotated[Optional[str], typer.Option("--data", rich_help_panel=DATA_PANEL, help="A TAU22-layout directory or synth-tau22[-tiny|small|medium] (default: synth-tau22 small).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", rich_help_panel=TRAINING_PANEL, help="Training profile: smoke, quick (CPU default) or dcase.")] = "quick",
    device: Annotated[str, typer.Option("--device", rich_help_panel=EXECUTION_PANEL, help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", rich_help_panel=EXECUTION_PANEL, help="Rerun rows whose records already exist.")] = False,
    teacher: Annotated[Optional[str], typer.Option("--teacher", rich_help_panel=TEACHERS_PANEL, help=TEACHER_HELP)] = None,
    teacher_checkpoint: Annotated[Optional[Path], typer.Option("--teacher-checkpoint", rich_help_panel=TEACHERS_PANEL, help="Alias of --teacher checkpoint:PATH.")] = None,
    teacher_seed: Annotated[Optional[int], typer.Option("--teacher-seed", rich_help_panel=TEACHERS_PANEL, help="Fine-tune every run's teacher with this seed (recorded as SYSTEM@teacher-seedN); default: the run's own seed, so a mean over seeds covers the teacher's draw too.")] = None,
    pool_kd: Annotated[float, typer.Option("--pool-kd", rich_help_panel=TEACHERS_PANEL, help=POOL_KD_HELP)] = 0.0,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="<key=value>", rich_help_panel=TRAINING_PANEL, help=SET_HELP)] = None,
    submissions: Annotated[Optional[Path], typer.Option("--submissions", rich_help_panel=TRAINING_PANEL, help=SUBMISSIONS_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", rich_help_panel=OUTPUT_PANEL, help="No progress bars.")] = False,
    home: OutputHome = None,
) -> None:
    """Run SYSTEM in full and with each component switched off, then print the ablation table.

    The table is a leaderboard whose rows are SYSTEM and SYSTEM~no-<component> (leave-one-out).
    Every row is an ordinary run with its own record (recorded under SYSTEM~no-...), so reruns are
    skipped, the teacher stage is shared by all rows, and
    `ascbench leaderboard --systems 'SYSTEM*' --format md` regenerates the table from the records.
    A component SYSTEM's recipe does not use is refused before anything runs: its row would be
    the full system again.
    """
    from ascbench.results.store import ResultsStore
    from ascbench.runner.grid import build_requests, run_grid
    from ascbench.runner.summary import print_summary
    from ascbench.systems.registry import SystemLoadError, discover

    check_profile(profile)
    check_device(device)
    try:
        names = parse_ablate(components)
        if not names:
            raise ValueError("--components: name at least one component")
        fractions = parse_fractions(fraction)
        seed_list = parse_seeds(seeds)
        settings = run_settings(teacher, teacher_checkpoint, teacher_seed, pool_kd, None, set_)
        if "ablate" in settings:
            raise ValueError("--set ablate: the rows' ablations are --components; leave ablate out")
        registry = discover(submissions)
        spec = registry.get(system)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))
    report_plugin_problems(registry.problems)
    check_recipe_profiles(profile, [spec])
    from ascbench.recipes.base import inert_ablations
    from ascbench.runner.execute import system_recipe

    inert = inert_ablations(system_recipe(spec), profile, sorted(names))
    if inert:  # all of them in one line, not the first one found
        fail(f"{spec.name}: --components {','.join(sorted(names))} at profile {profile!r}: the recipe does not use {', '.join(inert)} "
             "(a row without them would be the full system again under an ablation's name); leave them out")
    rows = []
    for switched_off in ablation_sets(names, all_off):
        row_settings = {**settings, **({"ablate": ",".join(sorted(switched_off))} if switched_off else {})}
        try:
            rows.append(resolve_options([spec], row_settings, profile, fractions, registry))
        except (ValueError, SystemLoadError) as error:
            fail(str(error).replace("ablate=", "--components "))
    data_root = resolve_data_root(data, home, progress=not no_progress)
    try:
        check_teachers(rows[0], registry, data_root, fractions)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))
    command = tuple(["ascbench", *sys.argv[1:]])
    requests = [
        request
        for options in rows
        for request in build_requests(
            [spec], data_root, fractions, seed_list, options=options, registry=registry, profile=profile, device=device, home=home,
            force=force, submissions=submissions, command=command,
        )  # fmt: skip
    ]
    try:
        outcomes = run_grid(requests, registry=registry, progress=not no_progress, console=console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] finished rows are recorded; the same command resumes the rest.")
        raise typer.Exit(130)
    print_summary(outcomes, console, ResultsStore(home))
    full = rows[0][spec.name]  # the rows' shared options (teacher, ...) are the full row's whole label
    pattern = f"{spec.name}*{full.label()}" if full.label() else f"{spec.name}*"
    seeds = ",".join(map(str, seed_list))  # other seeds' records of the same rows would join the table
    console.print(f"regenerate as markdown: ascbench leaderboard --systems '{pattern}' --profile {profile} --seeds {seeds} --format md",
                  highlight=False)  # fmt: skip
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``ablation`` to the main app."""
    app.command("ablation")(ablation)
