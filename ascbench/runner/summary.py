"""What ``ascbench run`` prints at the end: the leaderboard of the records it touched."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from ascbench.runner.request import RunOutcome


def print_summary(outcomes: Sequence[RunOutcome], console: Console) -> None:
    """One row per run, grouped under the data set it was measured on."""
    records = [o.record for o in outcomes if o.record is not None]
    for outcome in outcomes:
        if outcome.error:
            console.print(f"[red]failed:[/] {outcome.request.label()}: {outcome.error}")
    if not records:
        return
    datasets = sorted({(r.key.dataset, r.key.dataset_fingerprint) for r in records})
    for name, fingerprint in datasets:
        table = Table(title=f"Runs on {name} ({fingerprint})" + ("" if name == "tau22" else " — synthetic, not TAU results"))
        for column in ("system", "split", "seed", "profile", "accuracy", "seen", "unseen", "S4–S6 att. %", "params", "MACs", "int8 B", "time s"):
            table.add_column(column, justify="left" if column == "system" else "right")
        rows = [r for r in records if (r.key.dataset, r.key.dataset_fingerprint) == (name, fingerprint)]
        for r in sorted(rows, key=lambda r: -r.metrics.accuracy):
            m, c = r.metrics, r.complexity
            table.add_row(
                r.key.system,
                f"{round(r.key.fraction * 100)}%",
                str(r.key.seed),
                r.key.profile,
                _pct(m.accuracy),
                _pct(m.seen_accuracy),
                _pct(m.unseen_accuracy),
                "—" if m.attenuation_pct is None else f"{m.attenuation_pct:.1f}",
                f"{c.params:,}",
                f"{c.macs:,}",
                "—" if c.int8_artifact_bytes is None else f"{c.int8_artifact_bytes:,}",
                f"{r.timings.get('total_s', 0):.0f}",
            )
        console.print(table)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"
