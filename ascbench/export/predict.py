"""Run a trained system over a folder of wav files: what ``ascbench predict`` and the export use.

Unlike the training data, such a folder is not a TAU22 data set: the DCASE evaluation set names
its clips ``0.wav ... 135729.wav`` and anyone may hand in audio at another sample rate. So files
are listed in natural order (``2.wav`` before ``10.wav``), each is decoded at its own rate and the
system's frontend resamples it exactly as it does in training; only a file that cannot be
decoded, or that is not mono, is an error, and the error names the file.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
from rich.console import Console
from torch import nn

from ascbench.progress import progress_bar
from ascbench.systems.spec import SystemSpec

WeightPrecision = Literal["float32", "float16"]
WEIGHT_PRECISIONS: tuple[str, ...] = ("float32", "float16")


class AudioReadError(ValueError):
    """A file in the audio folder that cannot be used as a clip; the message names it."""


@dataclass(frozen=True)
class Predictions:
    """Class probabilities [N, 10] for ``names`` (file names relative to the audio folder)."""

    names: tuple[str, ...]
    probabilities: np.ndarray


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``2.wav`` < ``10.wav``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def list_audio(folder: Path | str) -> list[Path]:
    """The ``.wav`` files of ``folder`` (or of ``folder/audio`` when ``folder`` holds none), naturally sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--audio {folder}: no such directory")
    files = _wavs(folder)
    if not files and (folder / "audio").is_dir():
        files = _wavs(folder / "audio")
    if not files:
        raise FileNotFoundError(f"--audio {folder}: no .wav files in it (nor in {folder / 'audio'})")
    return sorted(files, key=lambda p: natural_key(p.name))


def _wavs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file()]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a float32 mono waveform and its sample rate."""
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: cannot be read as audio ({error})") from None
    if wave.shape[1] != 1:
        raise AudioReadError(f"{path}: {wave.shape[1]} channels; expected a mono clip")
    if wave.shape[0] == 0:
        raise AudioReadError(f"{path}: holds no samples")
    return wave[:, 0], int(rate)


def prepare_model(model: nn.Module, weights: WeightPrecision = "float32") -> nn.Module:
    """Eval mode; with ``float16`` every parameter and buffer is rounded to half precision.

    The DCASE 2024 baseline stores its parameters in 16 bits to meet the 128 kB limit. Rounding
    the weights and computing in float32 gives the predictions of exactly those stored weights on
    any device (CPUs lack fast half-precision kernels).
    """
    if weights not in WEIGHT_PRECISIONS:
        raise ValueError(f"weights precision {weights!r}: expected one of {', '.join(WEIGHT_PRECISIONS)}")
    model = model.eval()
    return model.half().float() if weights == "float16" else model


def predict_files(
    model: nn.Module,
    spec: SystemSpec,
    files: Sequence[Path],
    *,
    root: Path | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    console: Console | None = None,
) -> Predictions:
    """Class probabilities of ``model`` (already :func:`prepare_model`-d) for every file, in order.

    Files are read ``batch_size`` at a time; inside a batch, clips of equal sample rate and
    length go through the frontend and the model together. ``root`` makes the returned names
    relative to it (default: the bare file names).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    model = model.to(device)
    out = np.empty((len(files), spec.n_classes), dtype=np.float32)
    with progress_bar(progress, f"predict {spec.name}", len(files), console=console, transient=True) as bar:
        for start in range(0, len(files), batch_size):
            batch = files[start : start + batch_size]
            groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
            for row, path in enumerate(batch, start=start):
                wave, rate = read_audio(path)
                groups[(rate, wave.shape[0])].append((row, wave))
            for (rate, _), members in groups.items():
                rows = [row for row, _ in members]
                waves = torch.from_numpy(np.stack([wave for _, wave in members]))
                out[rows] = _probabilities(model, spec, waves, rate, device)
            bar.advance(len(batch))
    names = tuple(str(p.relative_to(root)) if root is not None else p.name for p in files)
    return Predictions(names, out)


@torch.no_grad()
def _probabilities(model: nn.Module, spec: SystemSpec, waves: torch.Tensor, rate: int, device: torch.device) -> np.ndarray:
    features = spec.frontend.compute(waves.to(device), rate)
    inputs = features if features.ndim == 2 else features.unsqueeze(1)  # spectrograms get a channel axis
    logits = model(inputs)
    if logits.ndim != 2 or logits.shape[1] != spec.n_classes:
        raise ValueError(f"{spec.name}: model returned scores of shape {list(logits.shape)}; expected [batch, {spec.n_classes}]")
    return torch.softmax(logits.float(), dim=1).cpu().numpy()
