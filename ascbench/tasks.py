"""Challenge tasks as data: which splits a task allows, what the system knows at inference, how the
complexity limits apply and what the data rules are.

A task is what the rules column, the run key and every board title are read from, so that one
editions's rules never leak into another's. ``dcase2024`` (DCASE 2024 Task 1) is the default and
what every record made before tasks existed belongs to. ``dcase2025`` (DCASE 2025 Task 1,
"Low-Complexity Acoustic Scene Classification with Device Information") differs in four ways
that change what is trained and measured: training is on the 2024 25 % split only, the device
of each clip is known at inference, one model per training device is allowed (unknown devices
fall back to a general model), and the complexity limits apply to each device's model on its
own, not to their sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ascbench.data.layout import FRACTION_SPLITS, SEEN_DEVICES, UNSEEN_DEVICES, fraction_percent

ComplexityScope = Literal["model", "device-model"]

DEFAULT_TASK = "dcase2024"

DEVICE_GROUPS: dict[str, tuple[str, ...]] = {
    "real": ("a", "b", "c"),
    "seen": ("s1", "s2", "s3"),
    "unseen": UNSEEN_DEVICES,
}
"""The device groups the official 2025 baseline reports: real devices, simulated devices seen in
training, and simulated devices never in the training data."""


@dataclass(frozen=True)
class Task:
    """One edition's rules, as the harness applies them."""

    name: str
    title: str
    fractions: tuple[float, ...]
    """The training splits a submission may use (fractions of the development training set)."""
    device_known: bool
    """Whether the system is told each clip's recording device at inference."""
    device_models: tuple[str, ...]
    """Devices that get a model of their own (fine-tuned from the general one); every other id,
    the unseen devices and any unknown one included, goes through the general model."""
    complexity_scope: ComplexityScope
    """``model``: the limits apply to the one model; ``device-model``: to each device's model on
    its own (the board shows the largest)."""
    external_data: str
    """What audio or models from outside the split a submission may use, and on what condition."""
    rank_metric: str
    reference: str

    @property
    def split_names(self) -> str:
        return ", ".join(f"split{fraction_percent(f)}" for f in self.fractions)

    def check_fractions(self, fractions: list[float] | tuple[float, ...]) -> None:
        """A split the task does not allow is an error before anything trains."""
        bad = [f for f in fractions if not any(abs(f - allowed) < 1e-9 for allowed in self.fractions)]
        if bad:
            given = ", ".join(f"{f:g}" for f in bad)
            allowed = ", ".join(f"{f:g}" for f in self.fractions)
            raise ValueError(f"--task {self.name} allows training on {self.split_names} only (--fraction {allowed}); "
                             f"--fraction {given} is not one of them")  # fmt: skip

    def model_for(self, device: str) -> str | None:
        """The device model a clip of ``device`` goes through; None: the general model."""
        return device if device in self.device_models else None

    def group_of(self, device: str) -> str | None:
        return next((group for group, members in DEVICE_GROUPS.items() if device in members), None)


TASKS: dict[str, Task] = {
    "dcase2024": Task(
        name="dcase2024",
        title="DCASE 2024 Task 1: data-efficient low-complexity ASC",
        fractions=tuple(sorted(FRACTION_SPLITS)),
        device_known=False,
        device_models=(),
        complexity_scope="model",
        external_data="only the resources the organizers list, declared; no development audio outside the split",
        rank_metric="macro class-wise accuracy, averaged over the five splits",
        reference="https://dcase.community/challenge2024/task-data-efficient-low-complexity-acoustic-scene-classification",
    ),
    "dcase2025": Task(
        name="dcase2025",
        title="DCASE 2025 Task 1: low-complexity ASC with device information",
        fractions=(0.25,),
        device_known=True,
        device_models=SEEN_DEVICES,
        complexity_scope="device-model",
        external_data="any public data set or pre-trained model, declared; no TAU22 audio outside split25",
        rank_metric="macro class-wise accuracy on split25",
        reference="https://dcase.community/challenge2025/task-low-complexity-acoustic-scene-classification-with-device-information",
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; a ``ValueError`` listing the tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)} (`ascbench tasks` lists their rules)") from None
