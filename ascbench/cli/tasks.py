"""``ascbench tasks``: the challenge tasks ``--task`` chooses between, with their rules."""

from __future__ import annotations

import typer
from rich.table import Table

from ascbench.cli.common import console


def tasks() -> None:
    """List the challenge tasks (run --task, leaderboard --task) and the rules each applies.

    For each task: the splits it allows, whether the device is known at inference, the device models, how the
    complexity limits apply, what outside data is allowed and what ranks systems."""
    from ascbench.tasks import TASKS

    table = Table(title="Tasks (ascbench run --task NAME)", show_lines=True)
    table.add_column("task", no_wrap=True)
    table.add_column("rules", overflow="fold")
    for task in TASKS.values():
        models = (f"general model + one per device ({', '.join(task.device_models)}); other ids use the general one"
                  if task.device_models else "one model")  # fmt: skip
        limits = "each device's model on its own" if task.complexity_scope == "device-model" else "the model"
        rules = "\n".join([
            task.title,
            f"splits: {task.split_names}",
            f"device at inference: {'known' if task.device_known else 'unknown'}",
            f"models: {models}",
            f"limits (128 kB, 30 M MACs) apply to: {limits}",
            f"outside data: {task.external_data}",
            f"rank: {task.rank_metric}",
            task.reference,
        ])  # fmt: skip
        table.add_row(task.name, rules)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)
