"""Parameter and MAC counts under the DCASE convention (ascbench.evaluation.complexity)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from ascbench.evaluation.complexity import (
    DCASE_MAX_MACS,
    measure_complexity,
    param_memory_kb,
)
from ascbench.systems import discover, model_input_shape

DCASE2024_PARAMS = 61_148
DCASE2024_MACS = 29_419_156


# --- an independent re-implementation of the DCASE 2024 Task 1 baseline ----------------------
# Written after cpjku/dcase2024_task1_baseline (models/baseline.py), with torchvision's
# Conv2dNormActivation and the baseline's own naming, not from baselines/cp_mobile.py, so that
# the counter is checked against the official network rather than against our copy of it.


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, expansion_rate: float, stride: tuple[int, int]) -> None:
        super().__init__()
        exp = _make_divisible(in_channels * expansion_rate)
        self.block = nn.Sequential(
            Conv2dNormActivation(in_channels, exp, kernel_size=1, activation_layer=nn.ReLU, inplace=False),
            Conv2dNormActivation(exp, exp, kernel_size=3, stride=stride, padding=1, groups=exp, activation_layer=nn.ReLU, inplace=False),
            Conv2dNormActivation(exp, out_channels, kernel_size=1, activation_layer=None),
        )
        self.use_shortcut = in_channels == out_channels
        self.shortcut = nn.AvgPool2d(3, stride=stride, padding=1) if self.use_shortcut and stride != (1, 1) else nn.Sequential()
        self.after_block_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.after_block_activation(y)


class _Dcase2024Baseline(nn.Module):
    def __init__(self, n_classes: int = 10, base: int = 32, mult: float = 1.8, expansion: float = 2.1, n_blocks=(3, 2, 1)) -> None:
        super().__init__()
        strides = {"b2": (1, 1), "b3": (1, 2), "b4": (2, 1)}
        base = _make_divisible(base)
        channels = [base] + [_make_divisible(base * mult**i) for i in range(len(n_blocks))]
        self.in_c = nn.Sequential(
            Conv2dNormActivation(1, channels[0] // 4, kernel_size=3, stride=2, activation_layer=nn.ReLU, inplace=False),
            Conv2dNormActivation(channels[0] // 4, channels[0], kernel_size=3, stride=2, activation_layer=nn.ReLU, inplace=False),
        )
        self.stages = nn.Sequential()
        block_id = 0
        for stage, depth in enumerate(n_blocks):
            s = nn.Sequential()
            c_in = channels[stage]
            for _ in range(depth):
                block_id += 1
                s.add_module(f"b{block_id}", _Block(c_in, channels[stage + 1], expansion, strides.get(f"b{block_id}", (1, 1))))
                c_in = channels[stage + 1]
            self.stages.add_module(f"s{stage + 1}", s)
        self.feed_forward = nn.Sequential(
            nn.Conv2d(channels[-1], n_classes, kernel_size=1, bias=False), nn.BatchNorm2d(n_classes), nn.AdaptiveAvgPool2d((1, 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.stages(self.in_c(x))).squeeze(2).squeeze(2)


def test_independent_dcase2024_baseline_gives_the_official_figures():
    model = _Dcase2024Baseline()
    report = measure_complexity(model, (1, 1, 256, 65))
    assert report.params == DCASE2024_PARAMS
    assert report.macs == DCASE2024_MACS
    # the official total is convolutions plus the batch-norm parameter count, not fvcore's BN cost
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert report.by_operator == {"conv": DCASE2024_MACS - bn_params, "batch_norm": bn_params}
    assert report.uncounted_ops == {}
    assert {"aten::adaptive_avg_pool2d", "aten::avg_pool2d", "aten::add", "aten::relu"} <= set(report.zero_ops)


def test_cp_mobile_system_gives_the_official_figures_and_record():
    spec = discover().get("cp-mobile")
    shape = model_input_shape(spec)
    assert shape == (1, 1, 256, 65)
    report = measure_complexity(spec.build_model(), shape)
    assert (report.params, report.macs) == (DCASE2024_PARAMS, DCASE2024_MACS)
    record = report.to_record()
    assert record.params == DCASE2024_PARAMS and record.macs == DCASE2024_MACS
    assert record.input_shape == [1, 1, 256, 65]
    assert record.param_memory_kb_int8 == pytest.approx(61.148)
    assert record.param_memory_kb_fp16 == pytest.approx(122.296)
    assert record.within_dcase_limits is True
    assert record.uncounted_ops == []
    assert record.int8_artifact_bytes is None  # no int8 step was run


def test_breakdown_rows_sum_to_the_totals():
    report = measure_complexity(discover().get("cp-mobile").build_model(), (1, 1, 256, 65))
    top = report.breakdown(depth=1)
    assert [row.name for row in top] == ["stem", "stages", "head"]
    for depth in (1, 2, 4):
        rows = report.breakdown(depth)
        assert sum(r.macs for r in rows) == report.macs
        assert sum(r.params for r in rows) == report.params


class _Tiny(nn.Module):
    """Conv with bias, BN, pooling, a linear classifier with bias: every term countable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))


def test_bias_and_norm_follow_torchinfo():
    report = measure_complexity(_Tiny(), (1, 1, 8, 8))
    positions = 6 * 6
    conv = 4 * 9 * positions + 4 * positions  # weights per output position, plus the bias add
    bn = 4 + 4
    fc = 4 * 10 + 10
    assert report.by_operator == {"conv": conv, "batch_norm": bn, "linear": fc}
    assert report.macs == conv + bn + fc
    assert report.params == 4 * 9 + 4 + 8 + 50


class _Attention(nn.Module):
    """A transformer-style block: token-wise linears, attention, an einsum and a matmul."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mix = nn.Parameter(torch.randn(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        a = torch.einsum("btd,ed->bte", a, self.mix)
        gram = torch.matmul(a, a.transpose(1, 2))  # [B, T, T]
        return self.out(self.norm(gram @ a).mean(1))


def test_transformer_ops_are_counted_per_token():
    t, d, heads = 5, 8, 2
    report = measure_complexity(_Attention(d, heads), (1, t, d))
    expected = {
        "linear": t * d * 3 * d + t * 3 * d + d * 10,  # every token, plus the bias add; head without bias
        "scaled_dot_product_attention": heads * t * t * (d // heads) * 2,
        "einsum": t * d * d,
        "matmul": t * t * d + t * d * t,
        "layer_norm": 2 * d,
    }
    assert report.by_operator == expected
    assert report.macs == sum(expected.values())
    assert report.uncounted_ops == {}


def test_torch_multihead_attention_is_counted_completely():
    """nn.MultiheadAttention reshapes with ``unflatten``, which moves no data through a multiplier:
    it must not turn a fully counted model's verdict into "lower bound"."""
    t, d = 5, 8
    report = measure_complexity(_SelfAttention(d), (1, t, d))
    assert report.uncounted_ops == {}
    assert report.macs_complete
    assert report.by_operator["linear"] == t * d * 3 * d + t * 3 * d + t * d * d + t * d  # in- and out-projection, with biases


class _SelfAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(d, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


class _ConvGru(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, bias=False)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.fc = nn.Linear(8, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.conv(x).transpose(1, 2))
        return self.fc(h[:, -1])


def test_an_operator_fvcore_cannot_count_is_listed_not_zeroed():
    report = measure_complexity(_ConvGru(), (1, 4, 20))
    assert report.uncounted_ops == {"aten::gru": 1}
    assert not report.macs_complete
    assert report.macs == 8 * 4 * 3 * 18 + 8 * 10  # the counted part only: a lower bound
    assert report.within_dcase_limits is None  # a lower bound under the limit proves nothing
    assert report.to_record().uncounted_ops == ["aten::gru"]


def test_limits_and_memory():
    assert param_memory_kb(61_148, 8) == pytest.approx(61.148)
    assert param_memory_kb(61_148, 16) == pytest.approx(122.296)
    big = nn.Sequential(nn.Flatten(), nn.Linear(256, 500))  # 128,500 params: 128.5 kB at int8
    report = measure_complexity(big, (1, 256))
    assert report.macs < DCASE_MAX_MACS
    assert not report.memory_within_limit(8)
    assert report.within_dcase_limits is False


def test_input_shape_must_be_one_clip():
    with pytest.raises(ValueError, match="batch of 1"):
        measure_complexity(_Tiny(), (2, 1, 8, 8))
