"""A linear probe of a data set: how hard is it, and is the difficulty of the right kind?

Logistic regression on each clip's per-mel-bin mean and standard deviation over time (of the
baseline log-mel) is the floor any real model must beat. On synth-tau22 it must land well
above chance and well below 100 %, lose accuracy on the unseen devices s4-s6, confuse the
classes TAU confuses, and see the device clearly. The tests assert this on the tiny set and
``python -m ascbench.data.synth.probe DIR`` reports it for any TAU22-layout directory.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ascbench.data.dataset import Dataset
from ascbench.data.layout import DEVICES, SCENE_INDEX, SCENES, UNSEEN_DEVICES
from ascbench.data.reader import load_dataset
from ascbench.features.audio import iter_batches
from ascbench.features.frontends import BaselineMel

CONFUSED_PAIRS: tuple[tuple[str, str], ...] = (
    ("bus", "tram"),
    ("bus", "metro"),
    ("metro", "tram"),
    ("public_square", "street_pedestrian"),
    ("airport", "shopping_mall"),
)
"""The scene pairs real TAU models confuse most; the generator is built to reproduce this."""


@dataclass(frozen=True)
class ProbeReport:
    accuracy: float
    """Macro class-wise accuracy of the scene probe on test.csv (trained on split100)."""
    seen_accuracy: float
    unseen_accuracy: float
    device_accuracy: float
    """Device probe, 3-fold cross-validated over test.csv grouped by recording (chance 1/9)."""
    confusion: np.ndarray
    """Row-normalised scene confusion matrix on test.csv (rows: true class in SCENES order)."""

    @property
    def gap(self) -> float:
        """Seen minus unseen accuracy, in points of accuracy (0-1)."""
        return self.seen_accuracy - self.unseen_accuracy

    def pair_confusion(self) -> tuple[float, float]:
        """Mean symmetric confusion (c_ij + c_ji) / 2 over :data:`CONFUSED_PAIRS`, and over all other pairs."""
        pairs = {tuple(sorted((SCENE_INDEX[a], SCENE_INDEX[b]))) for a, b in CONFUSED_PAIRS}
        c = self.confusion
        confused, other = [], []
        for i in range(len(SCENES)):
            for j in range(i + 1, len(SCENES)):
                (confused if (i, j) in pairs else other).append((c[i, j] + c[j, i]) / 2)
        return float(np.mean(confused)), float(np.mean(other))

    def summary(self) -> str:
        confused, other = self.pair_confusion()
        return (
            f"scene probe accuracy {self.accuracy:.3f} (seen {self.seen_accuracy:.3f}, unseen s4-s6 "
            f"{self.unseen_accuracy:.3f}, gap {100 * self.gap:.1f} points); device probe {self.device_accuracy:.3f} "
            f"(chance {1 / len(DEVICES):.3f}); confusion of TAU's confused pairs {confused:.3f} vs other pairs {other:.3f}"
        )


def clip_statistics(dataset: Dataset, filenames: list[str], batch_size: int = 64) -> np.ndarray:
    """[clips, 2 * 256]: mean and standard deviation over time of each mel bin of the baseline log-mel."""
    frontend = BaselineMel()
    rows = []
    with torch.inference_mode():
        for _, waves in iter_batches([dataset.root / f for f in filenames], batch_size):
            mel = frontend.compute(waves, 44_100)
            rows.append(torch.cat([mel.mean(-1), mel.std(-1)], dim=1).numpy())
    return np.concatenate(rows)


def _probe() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))


def probe(root: Path | str) -> ProbeReport:
    dataset = load_dataset(root)
    train = list(dataset.splits["split100.csv"])
    test = list(dataset.test)
    features = clip_statistics(dataset, train + test)
    x_train, x_test = features[: len(train)], features[len(train) :]
    scene = lambda names: np.array([dataset.clip(f).label for f in names])  # noqa: E731
    y_train, y_test = scene(train), scene(test)

    predicted = _probe().fit(x_train, y_train).predict(x_test)
    unseen = np.array([dataset.clip(f).device in UNSEEN_DEVICES for f in test])

    def accuracy(mask: np.ndarray) -> float:
        return float(balanced_accuracy_score(y_test[mask], predicted[mask]))

    devices = np.array([DEVICES.index(dataset.clip(f).device) for f in test])
    groups = np.array([dataset.clip(f).recording_id for f in test])
    device_predicted = np.empty_like(devices)
    for fit, held in GroupKFold(n_splits=3).split(x_test, devices, groups):
        device_predicted[held] = _probe().fit(x_test[fit], devices[fit]).predict(x_test[held])
    return ProbeReport(
        accuracy=accuracy(np.ones_like(unseen)),
        seen_accuracy=accuracy(~unseen),
        unseen_accuracy=accuracy(unseen),
        device_accuracy=float(np.mean(device_predicted == devices)),
        confusion=confusion_matrix(y_test, predicted, labels=range(len(SCENES)), normalize="true"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a TAU22-layout data set root (meta.csv, audio/, split_setup/)")
    args = parser.parse_args()
    report = probe(args.root)
    print(report.summary())
    width = max(map(len, SCENES))
    print(" " * width, " ".join(s[:5].rjust(5) for s in SCENES))
    for name, row in zip(SCENES, report.confusion):
        print(name.rjust(width), " ".join(f"{v:5.2f}" for v in row))


if __name__ == "__main__":
    main()
