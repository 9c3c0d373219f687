"""``ascbench run``: train (or load) systems under one split and record them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ascbench.ablation import ABLATABLE
from ascbench.cli.common import SUBMISSIONS_HELP, HomeOption, console, fail, report_plugin_problems, resolve_data_root
from ascbench.data.layout import FRACTION_SPLITS, parse_fraction

EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")
POOL_KD_HELP = (
    "Distilled students also learn from the teacher on the split's unlabeled training-pool clips: "
    "R pool clips per labelled clip each epoch (teacher targets only; cross-entropy stays on the split). "
    "This is development audio outside the split, which the DCASE rules forbid; recorded as SYSTEM@pool-kdR. "
    "Default 0: the split's clips only."
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
    models: Annotated[str, typer.Option("--models", "-m", help="'all' (every registered system) or a comma-separated list of names; see `ascbench systems`.")] = "all",
    fraction: Annotated[str, typer.Option("--fraction", "-f", help="Training split: 0.05, 0.1, 0.25, 0.5, 1.0 (or 5..100), a comma-separated list, or 'all' for the five official splits.")] = "0.25",
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds; each seed is a separate run and record.")] = "0",
    data: Annotated[Optional[str], typer.Option("--data", help="A TAU22-layout directory, or synth-tau22 (default: the small synthetic set, generated if missing), synth-tau22-tiny|small|medium.")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Training profile: smoke (seconds, tests), quick (CPU default, minutes), dcase (official 150-epoch recipe, for a GPU).")] = "quick",
    device: Annotated[str, typer.Option("--device", help="auto (CUDA with mixed precision if present, else CPU), cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Rerun runs whose complete record already exists.")] = False,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Evaluate these trained weights instead of training (one system only).")] = None,
    teacher_checkpoint: Annotated[Optional[Path], typer.Option("--teacher-checkpoint", help="A local teacher: HF-format HuBERT directory or BEATs .pt checkpoint, instead of self-supervised pre-training.")] = None,
    teacher_seed: Annotated[Optional[int], typer.Option("--teacher-seed", help="Fine-tune every run's teacher with this seed (recorded as SYSTEM@teacher-seedN). Default: each run fine-tunes its teacher with the run's own seed (from the one self-supervised pre-training), so a mean over seeds covers the teacher's draw too.")] = None,
    pool_kd: Annotated[float, typer.Option("--pool-kd", help=POOL_KD_HELP)] = 0.0,
    ablate: Annotated[Optional[str], typer.Option("--ablate", help=f"Switch components off: comma-separated from {', '.join(ABLATABLE)} (for the paper's ablation table).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (one Ray task per run; pip install 'ascbench\\[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join: auto or HOST:PORT (default: start a local one).")] = None,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-run", help="Ray: CPUs requested by each run.")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-run", help="Ray: GPUs requested by each run.")] = 0.0,
    submissions: Annotated[Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP)] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars (logs, CI).")] = False,
    home: HomeOption = None,
) -> None:
    """Train (or load) each system under the same split and seeds, evaluate it on test.csv, and
    write one record per run; then print the leaderboard of what ran.

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
        fractions = parse_fractions(fraction)
        seed_list = parse_seeds(seeds)
        ablations = parse_ablate(ablate)
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
    if teacher_checkpoint is not None:
        if checkpoint is not None:
            fail("--checkpoint evaluates trained weights, which no teacher changes: drop --teacher-checkpoint")
        teacher_checkpoint = check_teacher_checkpoint(teacher_checkpoint, specs)
    if teacher_seed is not None:
        check_teacher_seed(teacher_seed, specs)
    if pool_kd:
        check_pool_kd(pool_kd, specs, fractions, [ablations], profile)
    check_ablations(ablations, specs, profile)
    data_root = resolve_data_root(data, home, progress=not no_progress)

    requests = build_requests(
        specs,
        data_root,
        fractions,
        seed_list,
        profile=profile,
        device=device,
        home=home,
        force=force,
        checkpoint=checkpoint,
        teacher_checkpoint=teacher_checkpoint,
        teacher_seed=teacher_seed,
        pool_kd=pool_kd,
        ablate=ablations,
        submissions=submissions,
        command=tuple(["ascbench", *sys.argv[1:]]),
    )
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


def check_teacher_checkpoint(path: Path, specs: list) -> Path:
    """Fail before any training when a local teacher cannot serve the selected systems, its form
    or its contents (loaded once here, so a broken file is one error, not one per run).

    Returns the absolute path: runs on other workers (Ray) need not share this directory."""
    from ascbench.checkpoints import teacher_checkpoint_format
    from ascbench.recipes.teachers import load_teacher_checkpoint
    from ascbench.runner.grid import teacher_kind

    try:
        held = teacher_checkpoint_format(path)
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    distilling = [s for s in specs if teacher_kind(s)]
    if not distilling:
        fail(f"--teacher-checkpoint {path}: none of the selected systems distils from a teacher")
    other = [s.name for s in distilling if teacher_kind(s) != held]
    if other:
        needed = " or ".join(sorted({str(teacher_kind(s)) for s in distilling if s.name in other}))
        fail(f"--teacher-checkpoint {path} holds a {held} teacher, not the {needed} teacher of {', '.join(other)}: "
             "run them without it, or in a separate command")
    plain = [s.name for s in specs if not teacher_kind(s)]
    if plain:
        console.print(f"--teacher-checkpoint applies to {', '.join(s.name for s in distilling)}; "
                      f"the others ({', '.join(plain)}) train as usual")
    try:
        load_teacher_checkpoint(held, path)
    except (OSError, ValueError) as error:
        fail(f"--teacher-checkpoint: {error}")
    return path.absolute()  # not resolve(): a symlink's name stays the recorded name


def check_teacher_seed(seed: int, specs: list) -> None:
    """``--teacher-seed`` must be usable by at least one selected system (else it is a typo of --seeds)."""
    from ascbench.runner.grid import teacher_kind

    if seed < 0:
        fail(f"--teacher-seed {seed}: expected a non-negative integer")
    if not any(teacher_kind(s) for s in specs):
        fail(f"--teacher-seed {seed}: none of the selected systems distils from a teacher (--seeds sets the runs' seeds)")


def check_pool_kd(ratio: float, specs: list, fractions: list[float], ablations: list[frozenset[str]], profile: str) -> None:
    """``--pool-kd`` needs a distilling system, a split that leaves an unlabeled pool, and a teacher
    term left on (pool clips have no labels: without one they would teach nothing), judged on the
    recipe's effective configuration: beats-mobilenetv2 has no front or hier to keep."""
    import math

    from ascbench.runner.execute import system_recipe
    from ascbench.runner.grid import teacher_kind

    if not math.isfinite(ratio) or ratio < 0:
        fail(f"--pool-kd {ratio}: expected a non-negative number of pool clips per labelled clip, e.g. 1")
    if not any(teacher_kind(s) for s in specs):
        fail(f"--pool-kd {ratio:g}: none of the selected systems distils from a teacher")
    if any(f >= 1.0 for f in fractions):
        fail(f"--pool-kd {ratio:g}: the 100 % split leaves no unlabeled training-pool clips; choose a smaller --fraction")
    for spec in filter(teacher_kind, specs):
        for ablate in ablations:
            distill = system_recipe(spec).config_for(profile, ablate).distill
            if not distill.teacher_signal:
                fail(f"--pool-kd {ratio:g}: {spec.name} without {', '.join(sorted(ablate))} keeps no teacher term, so the pool clips "
                     "would teach nothing (they have no labels); keep on one of front, hier, kd that its recipe uses")


def check_ablations(
    ablations: frozenset[str], specs: list, profile: str, option: str = "--ablate", remedy: str = ", or those systems out of --models"
) -> None:
    """Every component in ``option`` must be one each selected system's recipe uses; otherwise
    the "ablated" row would be the full system again under an ablation's name."""
    if not ablations:
        return
    from ascbench.runner.execute import inert_ablations, system_recipe

    try:
        inert = {spec.name: names for spec in specs if (names := inert_ablations(system_recipe(spec), profile, ablations))}
    except ValueError as error:  # an unknown profile
        fail(str(error))
    if inert:
        unused = "; ".join(f"{name} does not use {', '.join(names)}" for name, names in inert.items())
        fail(f"{option} {','.join(sorted(ablations))} at profile {profile!r}: {unused} (a run without them trains exactly "
             "as the full system, and would repeat it on the leaderboard under an ablation's name). "
             f"Leave those components out of {option}{remedy}.")


def register(app: typer.Typer) -> None:
    """Add ``run`` to the main app."""
    app.command("run")(run)
