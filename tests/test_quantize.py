"""The int8 artifact: PT2E quantization, a real saved file, agreement, QAT (ascbench.evaluation.quantize)."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from ascbench.evaluation.quantize import (
    Int8Artifact,
    QuantizationError,
    convert_qat,
    int8_agreement,
    int8_weights,
    load_int8,
    measure_int8,
    prepare_qat,
    quantize_int8,
    save_int8,
    set_qat_mode,
    structured_dataset,
)
from ascbench.systems import discover

SHAPE = (1, 256, 65)


@pytest.fixture(scope="module")
def cp_mobile_trained():
    """CP-Mobile with batch-norm statistics from structured inputs and a head trained on them.

    Untrained networks give near-tied logits (agreement would be noise); this gives real decision
    margins in a few seconds: one pass sets the BN statistics, the head is fitted on frozen features.
    """
    torch.manual_seed(0)
    model = discover().get("cp-mobile").build_model()
    x, y = structured_dataset(SHAPE, 96, seed=1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
    model.train()
    with torch.no_grad():
        model(x[:48])
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x[:64])
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        loss = nn.functional.cross_entropy(model.head(features), y[:64])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < 0.8 * losses[0]
    return model, x, y


@pytest.fixture(scope="module")
def cp_mobile_int8(cp_mobile_trained, tmp_path_factory):
    model, x, _ = cp_mobile_trained
    out = tmp_path_factory.mktemp("int8") / "cp-mobile.pt2"
    return quantize_int8(model, x[:64], out)  # calibrated on the training clips, as runs do


def test_cp_mobile_int8_file_is_real_and_small(cp_mobile_trained, cp_mobile_int8: Int8Artifact):
    model, _, _ = cp_mobile_trained
    artifact = cp_mobile_int8
    assert artifact.path.is_file()
    assert artifact.bytes == artifact.path.stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    # every conv weight is stored as int8; BN is folded into the convs (its scale/shift become biases)
    assert artifact.int8_params == n_params - bn_params == 58_440
    # tensors: int8 weights + per-channel scales/zero points + biases, far below float32's 4 B each
    assert artifact.int8_params <= artifact.tensor_bytes < 1.5 * n_params
    assert artifact.tensor_bytes < artifact.bytes < 4 * n_params + 200_000
    assert not list(artifact.path.parent.glob("*sample_inputs*"))


def test_cp_mobile_int8_reloads_runs_and_agrees(cp_mobile_trained, cp_mobile_int8: Int8Artifact):
    model, x, _ = cp_mobile_trained
    held_out = x[64:]
    reloaded = load_int8(cp_mobile_int8.path)
    with torch.no_grad():
        out = reloaded(held_out[:5])
        assert out.shape == (5, 10)
        torch.testing.assert_close(out, cp_mobile_int8.model(held_out[:5]))
        assert reloaded(held_out[:1]).shape == (1, 10)  # any batch size
        float_classes = model(held_out).argmax(1)
    assert len(float_classes.unique()) >= 3  # agreement below is not a constant prediction
    agreement = int8_agreement(model, reloaded, held_out)
    assert agreement > 0.8
    assert not model.training


def test_weights_on_the_int8_grid_are_stored_without_a_second_rounding(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    with torch.no_grad():  # put every weight on its channel's symmetric grid, as QAT does
        for layer in (model[0], model[4]):
            w = layer.weight
            scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / 127
            w.copy_(torch.round(w / scale) * scale)
    x = torch.randn(16, 1, 12, 12)
    artifact = quantize_int8(model, x, tmp_path)  # a folder: the file gets the default name
    assert artifact.path.parent == tmp_path and artifact.path.suffix == ".pt2"
    stored = sorted(int8_weights(artifact.path), key=lambda w: w.dim())
    torch.testing.assert_close(stored[0], model[4].weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(stored[1], model[0].weight, rtol=0, atol=1e-6)


def test_generic_timm_conv_net(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv2_035", pretrained=False, in_chans=1, num_classes=10).eval()
    x = torch.randn(8, 1, 32, 32)
    result = measure_int8(model, x, x, tmp_path / "mnv2.pt2")
    assert result.error is None
    assert result.artifact is not None and result.artifact.path.stat().st_size == result.artifact.bytes
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert result.artifact.int8_params == weights
    assert 0.0 <= result.agreement <= 1.0 and result.n_inputs == 8


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on values: torch.export cannot capture it
            return self.fc(x)
        return -self.fc(x)


def test_a_model_that_cannot_be_quantized_gives_a_reason(tmp_path):
    result = measure_int8(_DataDependent(), torch.randn(4, 4), torch.randn(4, 4), tmp_path / "x.pt2")
    assert result.artifact is None and result.agreement is None
    assert "torch.export could not capture _DataDependent" in result.error
    no_layers = nn.Sequential(nn.AdaptiveAvgPool1d(10), nn.Flatten())
    with pytest.raises(QuantizationError, match="no layer was quantized"):
        quantize_int8(no_layers, torch.randn(4, 1, 20), tmp_path / "y.pt2")


class _SmallNet(nn.Module):
    """Conv-BN-ReLU stem, a residual conv-BN, and a conv-BN head feeding pooling (CP-Mobile's head)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(torch.relu(x + self.res(x)))


def test_qat_trains_converts_and_saves(tmp_path):
    torch.manual_seed(0)
    x, y = structured_dataset((1, 16, 12), 48, seed=2, n_prototypes=4)
    model = _SmallNet()
    qat = prepare_qat(model, x[:2])
    assert model.training and not any(isinstance(m, torch.ao.quantization.FakeQuantizeBase) for m in model.modules())
    opt = torch.optim.Adam(qat.parameters(), lr=0.02)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(qat(x[:32]), y[:32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    set_qat_mode(qat, training=False)
    with torch.no_grad():
        fake_quant_classes = qat(x[32:]).argmax(1)
    int8_model = convert_qat(qat)
    artifact = save_int8(int8_model, x[:2], tmp_path / "qat.pt2")
    assert artifact.int8_params == sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        agreement = (load_int8(artifact.path)(x[32:]).argmax(1) == fake_quant_classes).float().mean().item()
    assert agreement >= 0.8


def test_a_grid_of_runs_in_one_process_keeps_quantizing(tmp_path) -> None:
    """Nine models of one class, as a grid of runs of a plugin's ``nn.Sequential`` makes: strict
    export's dynamo cache used to fill at the eighth and fail every capture after it."""
    x = torch.randn(8, 1, 32, 33)
    for i in range(9):
        torch.manual_seed(i)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)).eval()
        artifact = quantize_int8(model, x, tmp_path / f"run{i}")
        assert artifact.int8_params > 0 and artifact.path.is_file()
