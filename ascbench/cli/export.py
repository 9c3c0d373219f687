"""``ascbench predict``, ``ascbench export dcase`` and ``export teacher-logits``: trained systems'
outputs for the outside world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ascbench.cli.common import SUBMISSIONS_HELP, HomeOption, console, err_console, examples, fail, recorded_data_option

EXPORT_EXAMPLES = examples(
    ("ascbench export dcase --system cp-mobile --out pkg/", "a DCASE 2024 package of the dev-test outputs"),
    ("ascbench export dcase -s cp-mobile --eval-audio eval/ -o pkg/", "the same, on the evaluation clips"),
    ("ascbench export dcase2025 -s cp-mobile --label Doe_ASCB_task1_1 -o pkgs/", "a DCASE 2025 inference package"),
    ("pip install pkgs/Doe_ASCB_task1", "which installs and runs without ascbench"),
    ("ascbench export teacher-logits --teacher runs:cp-mobile,mobilenetv2 -o t.tsv", "two runs as a teacher-logits file"),
)
app = typer.Typer(
    help="Export results for the outside world: DCASE 2024 Task 1 submission packages, DCASE 2025 inference packages, teacher-logits files.",
    no_args_is_help=True,
    epilog=EXPORT_EXAMPLES,
)

SystemOption = Annotated[str, typer.Option("--system", "-s", help="Registered system name (see `ascbench systems`), or a recorded one as `ascbench leaderboard` shows it (hubert-mobilenetv2~no-qat, ...@teacher-...).")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA if present, else CPU), cpu or cuda.")]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Clips per forward pass.")]
DataOption = Annotated[Optional[str], typer.Option("--data", help="The data set: the directory `run --data` was given, or its name as recorded (tau22, synth-tau22-small, ...); needed when records of several exist.")]
ProfileOption = Annotated[Optional[str], typer.Option("--profile", "-p", help="Training profile of the runs to export; needed when several were recorded.")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="YAML file with label, index, name, abbreviation, authors (lastname, firstname, email, corresponding, affiliation: abbreviation/institute/department/location), source_code, external_datasets, description fields.")]
LabelOption = Annotated[Optional[str], typer.Option("--label", help="Submission label Lastname_INST_task1_N (default: formed from the corresponding author).")]
IndexOption = Annotated[Optional[int], typer.Option("--index", min=1, max=4, help="Submission index 1-4 (last part of the label).")]
LastnameOption = Annotated[Optional[str], typer.Option("--author-lastname", help="Corresponding author (the --author-* flags replace the config file's authors).")]
InstituteOption = Annotated[Optional[str], typer.Option("--author-abbreviation", help="Institute abbreviation (second part of the label).")]
SubmissionsOption = Annotated[
    Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP)
]


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        fail(f"--device {name!r}: choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available")
    return name


def _spec(system: str, submissions: Path | None, home: Path | None, checkpoint: Path | None = None):
    """The registered system of ``system``, a registry name or a recorded one (an ablation row, a
    run on a local teacher): its weights load into the same architecture. A recorded name is looked
    up in its records, else in the weights file (which names its system), never parsed."""
    from ascbench.results.store import ResultsStore
    from ascbench.systems.checkpoint import CheckpointError, read_checkpoint
    from ascbench.systems.registry import SystemLoadError, discover

    try:
        registry = discover(submissions)
        name = system if system in registry.systems else ResultsStore(home).registered_name(system)
        if name not in registry.systems and checkpoint is not None and checkpoint.is_file():
            try:
                name = read_checkpoint(checkpoint)["system"] or name
            except CheckpointError:
                pass  # load_trained_model names what is wrong with the file
        return registry.get(name)
    except SystemLoadError as error:
        fail(str(error))


def predict(
    system: SystemOption,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Trained weights: a model.pt written by `ascbench run` (a path relative to the ascbench home works, as records store it) or a bare state dict.")],
    audio: Annotated[Path, typer.Option("--audio", "-a", help="Folder of .wav clips (or a data set root with an audio/ folder); any sample rate, mono.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (tab-separated DCASE format).")] = Path("output.csv"),
    weights: Annotated[str, typer.Option("--weights", help="Parameter precision: float32, or float16 (weights rounded to 16 bits, as the DCASE 2024 baseline deploys).")] = "float32",
    batch_size: BatchOption = 64,
    device: DeviceOption = "auto",
    submissions: SubmissionsOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    home: HomeOption = None,
) -> None:
    """Write the DCASE 2024 Task 1 output file of a trained system over a folder of wav files.

    One row per clip: filename, scene_label (the arg-max) and one softmax probability per scene, one row per clip in
    natural file order (0.wav, 1.wav, ..., 10.wav)."""
    from ascbench.export.output import write_output
    from ascbench.export.predict import AudioReadError, list_audio, predict_files, prepare_model
    from ascbench.paths import resolve_home
    from ascbench.systems.checkpoint import CheckpointError, load_trained_model

    if out.is_dir():  # found before the predictions are computed, not after
        fail(f"--out {out}: is a directory; give the output file's path, e.g. {out / 'output.csv'}")
    if not checkpoint.exists() and not checkpoint.is_absolute() and (resolve_home(home) / checkpoint).exists():
        checkpoint = resolve_home(home) / checkpoint
    spec = _spec(system, submissions, home, checkpoint)
    try:
        files = list_audio(audio)
        model = prepare_model(load_trained_model(spec, checkpoint), weights)  # type: ignore[arg-type]
        result = predict_files(model, spec, files, batch_size=batch_size, device=_device(device), progress=not no_progress, console=err_console)
    except (FileNotFoundError, CheckpointError, AudioReadError, ValueError) as error:
        fail(str(error))
    try:
        write_output(out, result.names, result.probabilities)
    except OSError as error:  # a directory, a missing parent, no permission: say where, not a traceback
        fail(f"--out {out}: cannot write the output file ({error.strerror or error})")
    console.print(f"wrote {len(result.names)} predictions of {system} to {out}")


def _submission_info(config: Path | None, label: str | None, index: int | None, name: str | None, abbreviation: str | None,
                     source_code: str | None, *author: str | None):  # fmt: skip
    """The submitter's details: the config file's, overridden by the flags given (the --author-*
    flags replace its authors with one corresponding author)."""
    from ascbench.export.meta import Affiliation, Author, SubmissionConfigError, SubmissionInfo, load_submission_config

    try:
        info = load_submission_config(config) if config is not None else SubmissionInfo()
    except SubmissionConfigError as error:
        fail(str(error))
    for attribute, value in (("label", label), ("index", index), ("name", name), ("abbreviation", abbreviation), ("source_code", source_code)):
        if value is not None:
            setattr(info, attribute, value)
    if any(v is not None for v in author):
        lastname, firstname, email, inst, institute, department, location = (v or "" for v in author)
        info.authors = [Author(lastname, firstname, email, True, Affiliation(inst, institute, department, location))]
    return info


def dcase(
    system: SystemOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Package folder; gets task1/<label>/..., <label>.zip and README.md.")],
    data: DataOption = None,
    profile: ProfileOption = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Which seed's run to submit per split (default: the lowest recorded).")] = None,
    eval_audio: Annotated[Optional[Path], typer.Option("--eval-audio", help="Folder of the DCASE evaluation clips (0.wav ...). Without it, the development-test predictions stored with the records are written, and the package says it is no valid submission.")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Parameter precision of the outputs: float16 (default with --eval-audio, as the baseline deploys) or float32.")] = None,
    config: ConfigOption = None,
    label: LabelOption = None,
    index: IndexOption = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Submission name for the results tables (default: the system name).")] = None,
    abbreviation: Annotated[Optional[str], typer.Option("--abbreviation", help="Short name, at most 10 characters.")] = None,
    author_lastname: LastnameOption = None,
    author_firstname: Annotated[Optional[str], typer.Option("--author-firstname")] = None,
    author_email: Annotated[Optional[str], typer.Option("--author-email")] = None,
    author_abbreviation: InstituteOption = None,
    author_institute: Annotated[Optional[str], typer.Option("--author-institute")] = None,
    author_department: Annotated[Optional[str], typer.Option("--author-department")] = None,
    author_location: Annotated[Optional[str], typer.Option("--author-location")] = None,
    source_code: Annotated[Optional[str], typer.Option("--source-code", help="URL of the system's source code.")] = None,
    batch_size: BatchOption = 64,
    device: DeviceOption = "auto",
    submissions: SubmissionsOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
    home: HomeOption = None,
) -> None:
    """Write a DCASE 2024 Task 1 submission package of one system from its recorded runs.

    Per split present (5/10/25/50/100) a system output file, the meta.yaml (submission, system
    description and complexity, development-set results per split) and a zip of both, laid out as
    the official validator expects. Fields ascbench cannot know are left empty with a comment."""
    from ascbench.export.dcase import ExportError, export_dcase
    from ascbench.export.meta import SubmissionConfigError
    from ascbench.export.predict import AudioReadError
    from ascbench.systems.checkpoint import CheckpointError
    from ascbench.systems.registry import SystemLoadError, discover

    info = _submission_info(config, label, index, name, abbreviation, source_code, author_lastname, author_firstname, author_email,
                            author_abbreviation, author_institute, author_department, author_location)  # fmt: skip
    data_name, data_fingerprint = recorded_data_option(data)
    try:
        registry = discover(submissions)
    except SystemLoadError as error:  # a --submissions / $ASCBENCH_SUBMISSIONS folder that is not there
        fail(str(error))
    try:  # a recorded name (an ablation row, a run on a local teacher) loads its system's architecture
        from ascbench.results.store import ResultsStore

        spec = registry.get(system if system in registry.systems else ResultsStore(home).registered_name(system))
    except SystemLoadError as error:
        if eval_audio is not None:
            fail(str(error))
        from ascbench.results.store import ResultsStore

        if next(ResultsStore(home).iter_records(system=system), None) is None:  # neither installed nor recorded
            fail(str(error))
        spec = None  # the records alone describe a system that is no longer installed
    try:
        result = export_dcase(
            system, out, info, spec=spec, home=home, data=data_name, data_fingerprint=data_fingerprint, profile=profile, seed=seed, eval_audio=eval_audio,
            weights=weights, batch_size=batch_size, device=_device(device), progress=not no_progress, console=err_console,
            warn=lambda message: err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False),
        )
    except (ExportError, SubmissionConfigError, CheckpointError, AudioReadError, FileNotFoundError, ValueError) as error:
        fail(str(error))
    splits = ", ".join(f"split_{p} (seed {s})" for p, s in sorted(result.seeds.items()))
    console.print(f"[bold]{result.label}[/]: {splits}; outputs from the {result.source} clips")
    console.print(f"package: {result.zip_path}  (meta: {result.meta_path})")


def dcase2025(
    system: SystemOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder that gets the project <Lastname>_<INST>_task1/ (other submissions already in it are kept).")],
    data: DataOption = None,
    profile: ProfileOption = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Which seed's dcase2025 run to package (default: the lowest recorded).")] = None,
    weights: Annotated[str, typer.Option("--weights", help="Precision of the shipped parameters: float16 (as the official baseline deploys: 2 bytes per parameter) or float32.")] = "float16",
    config: ConfigOption = None,
    label: LabelOption = None,
    index: IndexOption = None,
    author_lastname: LastnameOption = None,
    author_abbreviation: InstituteOption = None,
    submissions: SubmissionsOption = None,
    home: HomeOption = None,
) -> None:
    """Write the DCASE 2025 Task 1 inference package of one system's recorded dcase2025 run.

    The package is a pip-installable project <Lastname>_<INST>_task1/ whose module <Lastname>_<INST>_task1_<N>
    offers the official predict, load_model, load_inputs and get_model_for_device. The models
    travel as exported programs (no ascbench or plugin code is needed to run them), with
    complexity.json (MACs and parameter bytes per device model) and test_accuracy.json."""
    from ascbench.export.dcase import ExportError
    from ascbench.export.dcase2025 import PackageError
    from ascbench.export.dcase2025_run import export_dcase2025
    from ascbench.export.meta import SubmissionConfigError
    from ascbench.systems.checkpoint import CheckpointError

    info = _submission_info(config, label, index, None, None, None, author_lastname, None, None, author_abbreviation, None, None, None)
    data_name, data_fingerprint = recorded_data_option(data)
    try:
        result = export_dcase2025(system, out, label=info.resolved_label(), spec=_spec(system, submissions, home), home=home, data=data_name,
                                  data_fingerprint=data_fingerprint, profile=profile, seed=seed, weights=weights)  # type: ignore[arg-type]  # fmt: skip
    except (ExportError, PackageError, SubmissionConfigError, CheckpointError, FileNotFoundError) as error:
        fail(str(error))
    for message in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    key = result.record.key
    models = ", ".join(result.device_models) or "none"
    console.print(f"[bold]{escape(result.names.module)}[/]: {escape(key.slug())}; device models: {models}; general model for the rest")
    console.print(f"project: {escape(str(result.project))}  (install: pip install {escape(str(result.project))})", highlight=False)


def register(main: typer.Typer) -> None:
    """Add ``predict`` and the ``export`` group (``export dcase``) to the main app."""
    from ascbench.cli.export_teacher import teacher_logits

    main.command("predict")(predict)
    app.command("dcase")(dcase)
    app.command("dcase2025")(dcase2025)
    app.command("teacher-logits")(teacher_logits)
    main.add_typer(app, name="export")
