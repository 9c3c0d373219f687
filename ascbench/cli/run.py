"""``ascbench run``: train (or load) systems under one split and record them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ascbench.ablation import ABLATABLE
from ascbench.cli.common import (
    DATA_PANEL, EXECUTION_PANEL, OUTPUT_PANEL, SUBMISSIONS_HELP, TEACHERS_PANEL, TRAINING_PANEL, console, examples, fail, home_option,
    report_plugin_problems, resolve_data_root,
)  # fmt: skip
from ascbench.data.layout import FRACTION_SPLITS, parse_fraction
from ascbench.data.resolve import pending_synthetic
from ascbench.data.synth import default_synth_dir
from ascbench.tasks import get_task

EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")
POOL_KD_HELP = (
    "Distilled students also learn from the teacher on R unlabeled training-pool clips per labelled clip (audio "
    "outside the split, which the DCASE rules forbid; recorded as SYSTEM@pool-kdR). Shorthand for --set pool_kd=R."
)
TEACHER_HELP = (
    "The distilled students' teacher: self-supervised (default), checkpoint:PATH (HF HuBERT folder or BEATs .pt), "
    "logits:FILE (docs/distillation.md) or runs:SYS[,SYS...] (the mean of systems trained here on the same split "
    "and seed, trained first if missing; a supervised system learns from it by logit KD). Shorthand for --set teacher=SOURCE."
)
TASK_HELP = (
    "The challenge whose rules the runs follow: dcase2024 (one model, any split) or dcase2025 (split25; the general "
    "model, then a fine-tuned copy per training device a, b, c, s1-s3). `ascbench tasks` lists their rules."
)
OutputHome = home_option(OUTPUT_PANEL)
RUN_EXAMPLES = examples(
    ("ascbench run", "every main system on the 25 % split, seed 0 (the Quickstart)"),
    ("ascbench run --models cp-mobile --profile smoke", "a quick try: one system, a few training steps"),
    ("ascbench run --models all --fraction all --seeds 0,1,2", "the DCASE grid: five splits, three seeds"),
    ("ascbench run --models mobilenetv2 --teacher runs:cp-mobile", "a student distilled from a recorded system"),
    ("ascbench run --executor ray --gpus-per-run 1", "one Ray task per run, one GPU each"),
)
SET_HELP = (
    "Set any run option of the systems' recipes (repeatable), e.g. --set epochs=5; `ascbench systems --options` "
    "lists them."
)


def parse_fractions(value: str) -> list[float]:
    """``0.25``, ``25``, ``0.1,0.25`` or ``all`` (the five official splits); a split given twice
    (``25,0.25``) is one split."""
    if value.strip() == "all":
        return sorted(FRACTION_SPLITS)
    fractions = [parse_fraction(part.strip()) for part in value.split(",") if part.strip()]
    if not fractions:  # "" or "," would otherwise run nothing and exit 0
        raise ValueError(f"--fraction {value!r}: give at least one of 0.05, 0.1, 0.25, 0.5, 1.0 (or 'all')")
    return list(dict.fromkeys(fractions))


def parse_seeds(value: str) -> list[int]:
    """Comma-separated non-negative integers (a negative seed is refused by numpy's generators
    deep inside a run, after the data was already prepared); a seed given twice is one run."""
    expected = f"--seeds {value!r}: expected comma-separated non-negative integers, e.g. 0,1,2"
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValueError(expected) from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    if any(seed < 0 for seed in seeds):
        raise ValueError(expected)
    return list(dict.fromkeys(seeds))


def check_profile(profile: str) -> None:
    """``--profile`` must name a training profile: checked before any data is generated or read."""
    from ascbench.training.config import PROFILES

    if profile not in PROFILES:
        fail(f"--profile {profile!r}: unknown training profile; choose from {', '.join(PROFILES)}")


def check_recipe_profiles(profile: str, specs: list) -> None:
    """Every selected system's recipe must define ``profile`` (a plugin's recipe may know fewer)."""
    from ascbench.runner.execute import system_recipe

    for spec in specs:
        try:
            system_recipe(spec).config(profile)
        except ValueError as error:
            fail(f"--profile {profile!r}: {spec.name}: {error}")


def check_device(device: str, executor: str = "local") -> None:
    """``--device`` is auto, cpu or cuda[:N]; cuda must exist here when the runs execute here.

    With ``--executor ray`` the runs execute on the cluster's nodes, whose GPUs the driver may not
    have, so only the spelling is checked.
    """
    import re

    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        fail(f"--device {device!r}: choose from {', '.join(DEVICES)} (or cuda:N)")
    if executor != "local" or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        fail(f"--device {device}: no CUDA device is available (torch {torch.__version__}); use --device cpu or auto")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        fail(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are available")


def parse_ablate(value: str | None) -> frozenset[str]:
    names = frozenset(part.strip() for part in (value or "").split(",") if part.strip())
    unknown = sorted(names - set(ABLATABLE))
    if unknown:
        raise ValueError(f"--ablate {','.join(unknown)}: unknown component; choose from {', '.join(ABLATABLE)}")
    return names


def run(
    models: Annotated[str, typer.Option("--models", "-m", rich_help_panel=TRAINING_PANEL, help="'all' (every registered system but the teacher family) or a comma-separated list of names; see `ascbench systems`.")] = "all",
    task: Annotated[str, typer.Option("--task", rich_help_panel=DATA_PANEL, help=TASK_HELP)] = "dcase2024",
    fraction: Annotated[str, typer.Option("--fraction", "-f", rich_help_panel=DATA_PANEL, help="Training split: 0.05, 0.1, 0.25, 0.5, 1.0 (or 5..100), a comma-separated list, or 'all' for the five official splits.")] = "0.25",
    seeds: Annotated[str, typer.Option("--seeds", rich_help_panel=DATA_PANEL, help="Comma-separated seeds; each seed is a separate run and record.")] = "0",
    data: Annotated[Optional[str], typer.Option("--data", rich_help_panel=DATA_PANEL, help="A TAU22-layout directory, or synth-tau22 (default: the small synthetic set, generated if missing), synth-tau22-tiny|small|medium.")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", rich_help_panel=TRAINING_PANEL, help="Training profile: smoke (seconds, tests), quick (CPU default, minutes), dcase (official 150-epoch recipe, for a GPU).")] = "quick",
    device: Annotated[str, typer.Option("--device", rich_help_panel=EXECUTION_PANEL, help="auto (CUDA if present, else CPU), cpu or cuda. On CUDA the quick profile trains in mixed precision and dcase in fp32, as the official recipe does (--set amp=bf16|fp16|off chooses).")] = "auto",
    force: Annotated[bool, typer.Option("--force", rich_help_panel=EXECUTION_PANEL, help="Rerun runs whose complete record already exists.")] = False,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", rich_help_panel=TRAINING_PANEL, help="Evaluate these trained weights instead of training (one system only).")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", rich_help_panel=TEACHERS_PANEL, help=TEACHER_HELP)] = None,
    teacher_checkpoint: Annotated[Optional[Path], typer.Option("--teacher-checkpoint", rich_help_panel=TEACHERS_PANEL, help="Alias of --teacher checkpoint:PATH.")] = None,
    teacher_seed: Annotated[Optional[int], typer.Option("--teacher-seed", rich_help_panel=TEACHERS_PANEL, help="Fine-tune every run's teacher with this seed (recorded as SYSTEM@teacher-seedN); default: the run's own seed, so a mean over seeds covers the teacher's draw too.")] = None,
    pool_kd: Annotated[float, typer.Option("--pool-kd", rich_help_panel=TEACHERS_PANEL, help=POOL_KD_HELP)] = 0.0,
    ablate: Annotated[Optional[str], typer.Option("--ablate", rich_help_panel=TRAINING_PANEL, help=f"Switch components off: comma-separated from {', '.join(ABLATABLE)} (for the paper's ablation table). Shorthand for --set ablate=....")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, metavar="N", rich_help_panel=TRAINING_PANEL, help="Train for exactly N epochs, for a quick try (shorthand for --set epochs=N; the row is named SYSTEM@epochsN).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", rich_help_panel=TRAINING_PANEL, metavar="<key=value>", help=SET_HELP)] = None,
    executor: Annotated[str, typer.Option("--executor", rich_help_panel=EXECUTION_PANEL, help="local (this process) or ray (one Ray task per run; pip install 'ascbench\\[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", rich_help_panel=EXECUTION_PANEL, help="Ray cluster to join: auto or HOST:PORT (default: start a local one).")] = None,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-run", rich_help_panel=EXECUTION_PANEL, help="Ray: CPUs requested by each run.")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-run", rich_help_panel=EXECUTION_PANEL, help="Ray: GPUs requested by each run.")] = 0.0,
    submissions: Annotated[Optional[Path], typer.Option("--submissions", rich_help_panel=TRAINING_PANEL, help=SUBMISSIONS_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", rich_help_panel=OUTPUT_PANEL, help="No progress bars (logs, CI).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", rich_help_panel=EXECUTION_PANEL, help="Print the plan and stop: which runs are recorded (skipped) and why the others run, their stages, the caches and their size on disk, and a time estimate in seconds. Nothing is trained, written or generated.")] = False,
    home: OutputHome = None,
) -> None:
    """Train (or load) systems under one split and seeds, record each run, print their leaderboard.

    Each system is trained (or its --checkpoint loaded) under the same split and seeds and evaluated
    on test.csv; each run writes one record, and the leaderboard of what ran is printed at the end.
    A run whose complete record exists is skipped (rerunning the same command takes seconds);
    an interrupted run resumes from its last epoch checkpoint.
    """
    from ascbench.runner.grid import build_requests, run_grid
    from ascbench.systems.registry import SystemLoadError, discover

    if executor not in EXECUTORS:
        fail(f"--executor {executor!r}: choose from {', '.join(EXECUTORS)}")
    check_profile(profile)
    check_device(device, executor)
    try:
        chosen_task = get_task(task)
        fractions = parse_fractions(fraction)
        chosen_task.check_fractions(fractions)
        seed_list = parse_seeds(seeds)
        settings = run_settings(teacher, teacher_checkpoint, teacher_seed, pool_kd, ablate, set_, epochs)
        registry = discover(submissions)
        specs = registry.select(models)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))
    report_plugin_problems(registry.problems)
    check_recipe_profiles(profile, specs)
    if checkpoint is not None and len(specs) != 1:
        fail("--checkpoint loads one system's weights: name exactly one system with --models")
    if checkpoint is not None and not checkpoint.is_file():
        fail(f"--checkpoint {checkpoint}: no such file (a model.pt written by `ascbench run`)")
    if checkpoint is not None and chosen_task.device_models:
        fail(f"--checkpoint evaluates one model's weights; --task {task} fine-tunes a model per device from the general run: "
             "run the general model with --task dcase2024 --checkpoint, or train it here")
    if checkpoint is not None and "teacher" in settings:
        fail("--checkpoint evaluates trained weights, which no teacher changes: drop --teacher-checkpoint / --teacher")
    try:
        options = resolve_options(specs, settings, profile, fractions, registry)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))
    pending = pending_synthetic(data, home) if dry_run else None
    data_root = default_synth_dir(pending, 0, home) if pending else resolve_data_root(data, home, progress=not no_progress)
    try:
        if not pending:
            check_teachers(options, registry, data_root, fractions)
    except (ValueError, SystemLoadError) as error:
        fail(str(error))

    requests = build_requests(
        specs,
        data_root,
        fractions,
        seed_list,
        options=options,
        registry=registry,
        profile=profile,
        device=device,
        home=home,
        force=force,
        checkpoint=checkpoint,
        submissions=submissions,
        command=tuple(["ascbench", *sys.argv[1:]]),
        task=task,
    )
    if dry_run:
        from ascbench.runner.plan import plan_new_synthetic, plan_runs

        print_plan(plan_new_synthetic(requests, registry, pending) if pending else plan_runs(requests, registry))
        return
    try:
        outcomes = run_grid(
            requests,
            executor=executor,
            registry=registry,
            progress=not no_progress,
            console=console,
            ray_address=ray_address,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
        )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] finished runs are recorded; the same command resumes the rest.")
        raise typer.Exit(130)
    except (ValueError, ImportError) as error:
        fail(str(error))
    failed = [o for o in outcomes if o.error]
    from ascbench.results.store import ResultsStore
    from ascbench.runner.summary import print_summary

    print_summary(outcomes, console, ResultsStore(home))
    if failed:
        raise typer.Exit(1)


def print_plan(plan) -> None:
    """The plan of ``run --dry-run``: a line per run, the caches, and the totals with how the time
    was estimated (:mod:`ascbench.runner.plan`)."""
    from rich.table import Table

    console.print(f"[bold]Plan[/] (dry run: nothing is computed). Data: {escape(plan.data)}", highlight=False)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (("run", "left"), ("status", "left"), ("train clips", "right"), ("est. s", "right")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for run in plan.runs:
        table.add_row(escape(run.label), escape(run.reason), f"{run.train_clips:,}", "-" if run.seconds is None else f"{run.seconds:,.0f}")
    console.print(table)
    for run in plan.runs:
        if not run.skipped:
            console.print(f"  {escape(run.label)}: {' → '.join(run.stages)}; estimated by {escape(run.estimated_by)}", highlight=False)
    for cache in plan.caches:
        state = "present" if cache.exists else "to build"
        console.print(f"cache {escape(cache.what)}: {cache.bytes / 1e6:,.0f} MB, {state} ({escape(str(cache.path))})", highlight=False)
    computing = sum(not r.skipped for r in plan.runs)
    console.print(f"[bold]{computing} of {len(plan.runs)} run(s) compute, about {plan.seconds:,.0f} s "
                  f"({plan.seconds / 60:,.1f} min) on this machine; {plan.new_bytes / 1e6:,.0f} MB of new caches.[/]", highlight=False)  # fmt: skip
    console.print("Estimates: from this machine's records of the system (seconds per training clip), else from a few "
                  "optimizer steps timed here, which cover the student's training, plus evaluation and int8 where "
                  "another record of the system has timed them.", highlight=False)  # fmt: skip


def run_settings(
    teacher: str | None, teacher_checkpoint: Path | None, teacher_seed: int | None, pool_kd: float | None, ablate: str | None,
    sets: list[str] | None, epochs: int | None = None,
) -> dict[str, str]:
    """The run options asked for, as ``--set`` pairs: the shorthand flags first, ``--set`` last
    (so it wins)."""
    from ascbench.recipes.options import parse_settings

    settings: dict[str, str] = {}
    if teacher is not None and teacher_checkpoint is not None:
        raise ValueError("--teacher and --teacher-checkpoint both name a teacher: give one (--teacher checkpoint:PATH)")
    if teacher_checkpoint is not None:
        settings["teacher"] = f"checkpoint:{teacher_checkpoint}"
    if teacher is not None:
        settings["teacher"] = teacher
    if teacher_seed is not None:
        settings["teacher_seed"] = str(teacher_seed)
    if pool_kd:
        settings["pool_kd"] = repr(pool_kd)
    if ablate:
        settings["ablate"] = ",".join(sorted(parse_ablate(ablate)))
    if epochs is not None:
        settings["epochs"] = str(epochs)
    settings.update(parse_settings(sets or []))
    return settings


SHORTHANDS = {"teacher": "--teacher", "teacher_seed": "--teacher-seed", "pool_kd": "--pool-kd", "ablate": "--ablate", "epochs": "--epochs"}


def resolve_options(specs: list, settings: dict[str, str], profile: str, fractions: list[float], registry) -> dict:
    """Each selected system's run options: its recipe's defaults with the settings its options type
    has, validated by the recipe (every error names the system and what to do instead).

    A setting goes to the systems whose recipe has that option (``--pool-kd`` to the distilled
    ones; the supervised ones train as usual); one that no selected recipe has is an error."""
    from ascbench.recipes.base import options_type, recipe_options
    from ascbench.recipes.options import option_names
    from ascbench.runner.execute import system_recipe

    options, used = {}, set()
    for spec in specs:
        recipe = system_recipe(spec)
        mine = {key: value for key, value in settings.items() if key in option_names(options_type(recipe))}
        used |= set(mine)
        options[spec.name] = recipe_options(recipe, mine, profile, spec.name, fractions)
    for key in settings.keys() - used:
        holders = [s.name for s in registry.systems.values() if key in option_names(options_type(system_recipe(s)))]
        said = f"{SHORTHANDS[key]} {settings[key]}" if key in SHORTHANDS else f"--set {key}={settings[key]}"
        where = f"; it is an option of {', '.join(holders)}" if holders else "; `ascbench systems --options` lists the options"
        raise ValueError(f"{said}: none of the selected systems' recipes takes the option {key!r}{where}")
    return options


def check_teachers(options: dict, registry, data_root: Path, fractions: list[float]) -> None:
    """Teachers that give logits, checked against the data before anything trains: every member of
    a ``runs:`` ensemble is a registered system, and a ``logits:`` file covers every clip the
    students learn from (one error line naming the file otherwise)."""
    from ascbench.data.reader import load_dataset, load_split
    from ascbench.distill.logits_file import read_teacher_logits

    sources = {(o.source, float(getattr(o, "pool_kd", 0.0) or 0.0)) for o in options.values() if o.source is not None}
    for source, pool_kd in sources:
        for system in source.systems:
            registry.get(system)  # a SystemLoadError names the known systems
        if source.kind != "logits":
            continue
        dataset = load_dataset(data_root)
        logits = read_teacher_logits(source.path, {c.filename for c in dataset.clips})
        for fraction in fractions:
            split = load_split(dataset, fraction)
            logits.for_clips([c.filename for c in split.train] + ([c.filename for c in split.unlabeled] if pool_kd > 0 else []))


def register(app: typer.Typer) -> None:
    """Add ``run`` to the main app."""
    app.command("run", epilog=RUN_EXAMPLES)(run)
