"""The MobileNetV2 student: DCASE complexity limits, output shape, feature taps, strides."""

from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ascbench.distill import FeatureTaps, tap_channels
from ascbench.evaluation.complexity import measure_complexity
from baselines.cp_mobile import cp_mobile_dcase2024
from baselines.mobilenetv2_student import MobileNetV2Student, mobilenetv2_student

INPUT = (1, 256, 65)  # baseline log-mel of a 1-s clip: [channel, mel bins, frames]
MAX_PARAMS = 128_000  # 128 kB at int8
MAX_MACS = 30_000_000

pytestmark = pytest.mark.usefixtures("one_thread")


def dcase_macs(model: nn.Module) -> int:
    """DCASE convention: conv + linear MACs (fvcore) plus the number of BN parameters."""
    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *INPUT))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters())
    return int(by_op.get("conv", 0) + by_op.get("linear", 0) + bn)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_counting_reproduces_official_cp_mobile_figures() -> None:
    # The counting used below must give the DCASE 2024 baseline's official numbers.
    model = cp_mobile_dcase2024()
    assert n_params(model) == 61_148
    assert dcase_macs(model) == 29_419_156


def test_default_student_meets_dcase_limits() -> None:
    model = mobilenetv2_student()
    params, macs = n_params(model), dcase_macs(model)
    assert 60_000 <= params <= MAX_PARAMS, params
    assert 15_000_000 <= macs <= MAX_MACS, macs
    # The harness's own measurement agrees (it also counts the classifier's bias adds).
    report = measure_complexity(model, (1, *INPUT))
    assert report.params == params and report.within_dcase_limits
    assert 0 <= report.macs - macs <= model.num_classes


def test_width_scales_the_network() -> None:
    narrow, default = mobilenetv2_student(width=0.75), mobilenetv2_student()
    assert n_params(narrow) < n_params(default)
    assert dcase_macs(narrow) < dcase_macs(default)
    assert mobilenetv2_student(width=1.5).num_features > default.num_features


def test_forward_gives_class_logits_and_trains() -> None:
    torch.manual_seed(0)
    model = mobilenetv2_student(n_classes=10)
    x = torch.randn(4, *INPUT)
    logits = model(x)
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_taps_expose_front_and_stage_maps() -> None:
    model = mobilenetv2_student().eval()
    names = [model.front_tap, *model.stage_taps()]
    with torch.no_grad(), FeatureTaps(model, names) as taps:
        model(torch.zeros(2, *INPUT))
    shapes = [tuple(t.shape) for t in taps.take(names)]
    # Stem: 2x down-sampling in both axes; the last stages keep 9 time frames
    # because stage 3 strides in frequency only.
    assert shapes[0] == (2, 16, 128, 33)
    assert [s[2:] for s in shapes[1:]] == [(64, 17), (32, 9), (16, 9), (16, 9)]
    assert tap_channels(model, names, INPUT) == [s[1] for s in shapes]


def test_frequency_only_stage_must_stride() -> None:
    with pytest.raises(ValueError, match="stage 1 .* must stride 2"):
        MobileNetV2Student(frequency_only_stages=(1,))
    with pytest.raises(ValueError, match="stage 9 does not exist"):
        MobileNetV2Student(frequency_only_stages=(9,))


def test_square_strides_when_no_frequency_only_stage() -> None:
    model = mobilenetv2_student(frequency_only_stages=()).eval()
    with torch.no_grad(), FeatureTaps(model, ["blocks.4"]) as taps:
        model(torch.zeros(1, *INPUT))
    assert tuple(taps["blocks.4"].shape[2:]) == (16, 5)
