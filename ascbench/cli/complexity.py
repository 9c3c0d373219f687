"""``ascbench profile`` and ``ascbench audit``: complexity figures without training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ascbench.cli.common import SUBMISSIONS_HELP, console, fail

_FORMATS = ("table", "json")


def _check_format(fmt: str) -> str:
    if fmt not in _FORMATS:
        fail(f"--format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    return fmt


def _mark(ok: bool | None) -> str:
    return {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[yellow]unknown[/]"}[ok]


# --- profile ----------------------------------------------------------------------------------


def profile(
    target: Annotated[
        str,
        typer.Argument(
            help="A registered system (see `ascbench systems`), or a model factory: "
            "path/to/file.py:factory or package.module:factory (called with no arguments).",
            show_default=False,
        ),
    ],
    input_shape: Annotated[
        Optional[str],
        typer.Option(
            "--input-shape",
            "--frontend-shape",
            help="Model input for one clip, batch 1 first, e.g. 1,1,256,65 (log-mel) or 1,16000 (waveform). "
            "Default: one 1-s clip of the system's frontend; for a factory, of --frontend.",
            show_default=False,
        ),
    ] = None,
    frontend: Annotated[
        Optional[str],
        typer.Option("--frontend", help="Factories only: the frontend whose 1-s clip sets the input shape "
                     "(baseline-mel, kaldi-fbank, waveform-16k, waveform-32k). Default: baseline-mel, 1,1,256,65.",
                     show_default=False),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table (rich tables) or json (machine-readable).")] = "table",
    top: Annotated[int, typer.Option("--top", min=1, help="Modules shown in the breakdown, by MACs; the rest are summed in one row.")] = 10,
    depth: Annotated[int, typer.Option("--depth", min=1, help="Module nesting depth of the breakdown (rows always sum to the total).")] = 2,
    int8: Annotated[bool, typer.Option("--int8", help="Also quantize to int8 (PT2E, calibrated on structured random inputs) and report the real file size.")] = False,
    calibration: Annotated[int, typer.Option("--calibration", min=2, help="Calibration clips for --int8.")] = 32,
    save_int8: Annotated[Optional[Path], typer.Option("--save-int8", help="With --int8: keep the .pt2 file here (default: a temporary folder, deleted).", show_default=False)] = None,
    submissions: Annotated[Optional[Path], typer.Option("--submissions", help=SUBMISSIONS_HELP, show_default=False)] = None,
) -> None:
    """Complexity of a deployable model for one 1-second clip, without training.

    Prints parameters; MACs under the DCASE convention (NeSsi/torchinfo:
    conv and linear multiply-adds plus bias adds, a norm layer its parameter
    count, pooling, activations and adds 0); parameter memory at int8 and
    fp16 (1 kB = 1,000 B); pass/fail against the DCASE 2024 limits (128 kB,
    30 M MACs); the per-module breakdown; and any operator left uncounted.

    For example, ascbench profile cp-mobile gives 61,148 params and 29,419,156 MACs.
    """
    from ascbench.evaluation.profile import (
        TargetError,
        build_factory,
        int8_size,
        is_factory_reference,
        load_system,
        measure,
        parse_shape,
        profile_dict,
    )

    _check_format(fmt)
    if save_int8 is not None and not int8:
        fail("--save-int8 needs --int8")
    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        if is_factory_reference(target):
            resolved = build_factory(target, shape, frontend)
        else:
            if frontend is not None:
                fail("--frontend is for model factories; a registered system brings its own frontend (use --input-shape to override)")
            resolved = load_system(target, submissions, shape)
        report, out_shape = measure(resolved)
    except TargetError as exc:
        fail(str(exc))
    quant = None
    if int8:
        if fmt == "table":
            console.print(f"[dim]quantizing {resolved.name} to int8 ({calibration} calibration clips)...[/]", highlight=False)
        quant = int8_size(resolved, calibration, save_int8)
    data = profile_dict(resolved, report, out_shape, depth, quant)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_profile(data, top)
    if quant is not None and quant.error:
        if fmt == "table":
            console.print(f"[bold red]int8 failed:[/] {escape(quant.error)}", highlight=False)
        raise typer.Exit(1)


def _print_profile(data: dict[str, Any], top: int) -> None:
    limits, within = data["dcase_limits"], data["within_limits"]
    where = f"frontend {data['frontend']}, " if data["frontend"] else "given input shape, "
    summary = Table(
        title=f"Complexity of {data['target']} ({data['kind']}, {where}untrained)",
        caption=f"one 1-s clip: input {data['input_shape']} -> output {data['output_shape']}",
        title_justify="left",
        caption_justify="left",
    )
    summary.add_column("quantity")
    summary.add_column("value", justify="right", no_wrap=True)
    summary.add_column("DCASE 2024 limit", justify="right", no_wrap=True)
    summary.add_column("verdict", no_wrap=True)
    macs_note = "" if data["macs_complete"] else " (lower bound)"
    summary.add_row("parameters", f"{data['params']:,}", "", "")
    summary.add_row(f"MACs per clip{macs_note}", f"{data['macs']:,}", f"{limits['macs']:,}", _mark(within["macs"]))
    for bits, key in ((8, "int8"), (16, "fp16")):
        summary.add_row(
            f"param memory, {key}",
            f"{data['param_memory_kb'][key]:,.3f} kB",
            f"{limits['param_memory_kb']:g} kB",
            _mark(within[f"memory_{key}"]),
        )
    summary.add_row("[bold]within DCASE limits (int8)[/]", "", "", _mark(within["dcase_int8"]))
    console.print(summary)

    rows = sorted(data["breakdown"], key=lambda r: (-r["macs"], -r["params"]))
    total_macs = max(data["macs"], 1)
    modules = Table(title=f"Top modules by MACs ({len(rows)} rows at this depth)", title_justify="left")
    modules.add_column("module", overflow="fold")
    modules.add_column("type", overflow="fold")
    for column in ("params", "MACs", "% MACs"):
        modules.add_column(column, justify="right", no_wrap=True)
    for row in rows[:top]:
        modules.add_row(row["module"], row["kind"], f"{row['params']:,}", f"{row['macs']:,}", f"{100 * row['macs'] / total_macs:.1f}")
    rest = rows[top:]
    if rest:
        macs = sum(r["macs"] for r in rest)
        modules.add_row(f"({len(rest)} more)", "", f"{sum(r['params'] for r in rest):,}", f"{macs:,}", f"{100 * macs / total_macs:.1f}")
    modules.add_row("[bold]total[/]", "", f"{data['params']:,}", f"{data['macs']:,}", "100.0", end_section=True)
    console.print(modules)

    ops = ", ".join(f"{op} {n:,}" for op, n in data["by_operator"].items()) or "none"
    console.print(f"MACs by operator: {ops}", highlight=False)
    zero = ", ".join(op.removeprefix("aten::") for op in data["zero_mac_ops"]) or "none"
    console.print(f"Counted as 0 MACs (DCASE convention): {zero}", highlight=False)
    if data["uncounted_ops"]:
        listing = ", ".join(f"{op} ({n} call{'s' if n != 1 else ''})" for op, n in sorted(data["uncounted_ops"].items()))
        console.print(
            f"[bold yellow]Not counted[/] (no MAC rule for them; MACs above are a lower bound and the MAC verdict is "
            f"unknown unless already over the limit): {listing}",
            highlight=False,
        )
    else:
        console.print("Uncounted operators: none (the MAC count is complete under the convention)", highlight=False)
    quant = data["int8"]
    if quant is not None and not quant["error"]:
        kept = f", kept at {quant['path']}" if quant["path"] else ""
        console.print(
            f"int8 file (PT2E, {quant['calibration_clips']} calibration clips): {quant['file_bytes']:,} B on disk = "
            f"{quant['file_bytes'] / 1000:,.1f} kB (graph included); tensors {quant['tensor_bytes']:,} B, of which "
            f"{quant['int8_values']:,} int8 weights{kept}. The weights are untrained, so int8/float agreement "
            "is not meaningful and is not measured.",
            highlight=False,
        )


# --- audit ------------------------------------------------------------------------------------


def audit(
    params: Annotated[Optional[str], typer.Option("--params", help="Claimed parameter count, e.g. 900000, 0.9e6 or 0.9M.", show_default=False)] = None,
    size_kb: Annotated[Optional[float], typer.Option("--size-kb", help="Claimed model size in kB (1 kB = 1,000 B, as DCASE).", show_default=False)] = None,
    bits: Annotated[Optional[int], typer.Option("--bits", min=1, max=64, help="Claimed bits per parameter (default 8: int8, as DCASE).", show_default=False)] = None,
    macs: Annotated[Optional[str], typer.Option("--macs", help="Claimed MACs per 1-s clip, e.g. 29419156 or 26M.", show_default=False)] = None,
    name: Annotated[str, typer.Option("--name", help="Label of a single claim in the output.")] = "claim",
    table: Annotated[Optional[Path], typer.Option("--table", help="CSV of claims: columns system and any of params, macs, size_kb, bits (+ table, bits_basis, accuracy, note).", show_default=False)] = None,
    paper: Annotated[bool, typer.Option("--paper", help="Audit the seed paper's tables 1-2 (shipped in ascbench/resources/paper_tables.csv).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with code 1 when any claim is impossible.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Check that claimed complexity figures are mutually possible and within the DCASE limits.

    A size is possible only if size_kB x 1000 x 8 / bits >= params:
    0.9 M params do not fit in 115.6 kB at 8 bits (they need 900 kB).
    Each claim is also held against the DCASE 2024 limits: 128 kB of
    parameter memory and 30 M MACs per clip. Where a source does not state
    the bit width, int8 is assumed and the output says so.

    One claim: --params, --size-kb, --bits, --macs. A table of claims: --table FILE.csv, or --paper
    (the seed paper's tables 1-2).
    """
    from ascbench.evaluation.audit import PAPER_TABLES, Claim, ClaimFileError, audit_claim, load_claims, parse_count

    _check_format(fmt)
    single = any(v is not None for v in (params, size_kb, macs))
    sources = sum((single, table is not None, paper))
    if sources != 1:
        fail("give one claim (--params, --size-kb, --bits, --macs), or --table FILE.csv, or --paper" + (" -- not several" if sources else ""))
    if bits is not None and not single:
        fail("--bits belongs to a single claim; a table gives its bit width per row (column bits)")
    try:
        if single:
            try:
                count = parse_count(params) if params is not None else None
                mac_count = parse_count(macs) if macs is not None else None
            except ValueError as exc:
                fail(str(exc))
            claims = [Claim(name, params=count, size_kb=size_kb, bits=bits or 8,
                            bits_basis="given" if bits is not None else "assumed: int8 (DCASE), not given",
                            macs=mac_count, source="command line")]
        else:
            claims = load_claims(PAPER_TABLES if paper else table)
    except (ClaimFileError, ValueError) as exc:
        fail(str(exc))
    if not claims:
        fail(f"{table or PAPER_TABLES}: no claims (only a header)")
    verdicts = [audit_claim(c) for c in claims]
    if fmt == "json":
        typer.echo(json.dumps([_verdict_dict(v) for v in verdicts], indent=2))
    else:
        _print_audit(verdicts, paper)
    if strict and any(v.impossible for v in verdicts):
        raise typer.Exit(1)


def _verdict_dict(v: Any) -> dict[str, Any]:
    c = v.claim
    return {
        "system": c.system, "table": c.table, "source": c.source,
        "params": c.params, "macs": c.macs, "size_kb": c.size_kb, "bits": c.bits, "bits_basis": c.bits_basis,
        "accuracy": c.accuracy, "note": c.note, **({"extra": c.extra} if c.extra else {}),
        "verdict": v.status, "problems": list(v.problems),
        "needed_kb": v.needed_kb, "max_params": v.max_params, "implied_bits_per_param": v.implied_bits,
        "fits": v.fits, "size_within_limit": v.size_within_limit, "macs_within_limit": v.macs_within_limit,
        "arithmetic": list(v.arithmetic),
    }


def _print_audit(verdicts: list[Any], paper: bool) -> None:
    from ascbench.evaluation.audit import DCASE_MAX_KB, DCASE_MAX_MACS

    title = "Seed paper, tables 1-2: claimed complexity" if paper else "Claimed complexity"
    out = Table(
        title=title,
        caption=f"DCASE 2024 limits: <= {float(DCASE_MAX_KB):g} kB parameter memory, <= {DCASE_MAX_MACS / 1e6:g} M MACs; "
        "1 kB = 1,000 B; needs = params x bits / 8000",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    out.add_column("system", overflow="fold", min_width=8)
    for column in ("params", "MACs", "size kB", "bits", "needs kB"):
        out.add_column(column, justify="right", no_wrap=True)
    out.add_column("verdict", no_wrap=True)
    assumed = False
    for v in verdicts:
        c = v.claim
        star = "*" if c.bits_assumed else ""
        assumed |= c.bits_assumed
        colour = "red" if v.impossible else "yellow" if v.over_limit else "green"
        out.add_row(
            c.system,
            f"{c.params:,}" if c.params is not None else "—",
            f"{c.macs:,}" if c.macs is not None else "—",
            f"{c.size_kb:g}" if c.size_kb is not None else "—",
            f"{c.bits}{star}",
            f"{v.needed_kb:,.3f}".rstrip("0").rstrip(".") if v.needed_kb is not None else "—",
            f"[{colour}]{v.status.replace(', ', chr(10)).replace('over DCASE limit', 'over limit')}[/]",
        )
    console.print(out)
    if assumed:
        console.print("* bit width not stated by the source; audited as int8 (the DCASE convention).", highlight=False)
    for v in verdicts:
        c = v.claim
        where = f" ({Path(c.source).name})" if c.source and c.source != "command line" else ""
        basis = f"; bits: {c.bits_basis}" if c.bits_basis not in ("", "given", "stated") else ""
        console.print(f"[bold]{c.system}[/]{where}{basis}", highlight=False)
        for line in v.arithmetic:
            console.print(f"  {line}", highlight=False)
        for problem in v.problems or ("consistent",):
            console.print(f"  -> {problem}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``audit`` to the main app."""
    app.command("profile")(profile)
    app.command("audit")(audit)
