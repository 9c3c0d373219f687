"""The training engine shared by every recipe (``engine``: the students; ``loop``: the one training loop)."""

from ascbench.training.config import PROFILES, TrainConfig, get_profile
from ascbench.training.device_response import DeviceResponseFamily, DeviceResponses
from ascbench.training.engine import (
    LossFn,
    TrainingData,
    TrainResult,
    UNLABELED,
    UnlabeledPool,
    cross_entropy_loss,
    predict,
    resolve_device,
    seed_everything,
    train,
)
from ascbench.training.loop import EpochEnd, EpochStats, TrainingDiverged

__all__ = [
    "PROFILES",
    "DeviceResponseFamily",
    "DeviceResponses",
    "EpochEnd",
    "EpochStats",
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "TrainingDiverged",
    "UNLABELED",
    "UnlabeledPool",
    "cross_entropy_loss",
    "get_profile",
    "predict",
    "resolve_device",
    "seed_everything",
    "train",
]
