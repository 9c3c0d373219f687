"""Distillation building blocks: each loss against hand-computed values, routing on planted data,
and a few real training steps of the MobileNetV2 student under the full objective."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ascbench.distill import (
    DistillConfig,
    DistillObjective,
    FeatureTaps,
    FrontAlignment,
    HierarchicalKD,
    adaptive_temperature,
    cosine_alignment_loss,
    kd_loss,
    linear_cka,
    logit_kd_loss,
    pooled_taps,
    route,
    tap_channels,
    total_loss,
)
from ascbench.distill.losses import resample_frames
from ascbench.distill.qat import attach_fake_quant, detach_fake_quant, fake_quantize, has_fake_quant
from ascbench.distill.routing import Routing
from ascbench.distill.recipe import split_stages
from ascbench.training import get_profile
from baselines.mobilenetv2_student import mobilenetv2_student

pytestmark = pytest.mark.usefixtures("one_thread")


# --- eq. 16: adaptive temperature -------------------------------------------------------------


def test_temperature_schedule_values() -> None:
    assert adaptive_temperature(0) == pytest.approx(10.0)  # Tmax + Tmin, as the formula reads
    assert adaptive_temperature(100) == pytest.approx(8 * math.exp(-1) + 2)  # 4.943
    assert adaptive_temperature(0, form="interpolate") == pytest.approx(8.0)
    assert adaptive_temperature(100, form="interpolate") == pytest.approx(6 * math.exp(-1) + 2)
    assert adaptive_temperature(1e6) == pytest.approx(2.0)


def test_temperature_clock_can_follow_a_longer_schedule() -> None:
    config = DistillConfig(temperature_epochs=150)
    # Epoch 5 of 10 stands for epoch 75 of the 150-epoch recipe.
    assert config.temperature(5, total_epochs=10) == pytest.approx(adaptive_temperature(75))
    assert DistillConfig().temperature(5) == pytest.approx(adaptive_temperature(5))
    with pytest.raises(ValueError, match="total_epochs"):
        config.temperature(5)


# --- eq. 2-3: logit KD ----------------------------------------------------------------------


def test_kd_is_zero_when_student_equals_teacher() -> None:
    z = 5 * torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    assert logit_kd_loss(z, z.clone(), temperature=4.0).item() == pytest.approx(0.0, abs=1e-5)
    assert logit_kd_loss(z, z.flip(0), temperature=4.0).item() > 0.1


def test_kd_matches_hand_computed_kl() -> None:
    teacher = torch.tensor([[0.7, 0.2, 0.1]])
    student = torch.tensor([[1.0, 0.0, -1.0]])
    t = 2.0
    q = [math.exp(v / t) for v in (1.0, 0.0, -1.0)]
    q = [v / sum(q) for v in q]
    kl = sum(p * math.log(p / qi) for p, qi in zip((0.7, 0.2, 0.1), q))
    assert kd_loss(student, teacher, t).item() == pytest.approx(t**2 * kl, rel=1e-5)


def test_logit_kd_softens_teacher_with_same_temperature() -> None:
    teacher_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    student = torch.tensor([[0.5, 0.5], [1.0, -1.0]])
    t = 3.0
    expected = kd_loss(student, torch.softmax(teacher_logits / t, dim=-1), t)
    assert logit_kd_loss(student, teacher_logits, t).item() == pytest.approx(expected.item())
    assert logit_kd_loss(student, teacher_logits, t).item() > 0


# --- eq. 14-15: front-end alignment -----------------------------------------------------------


def test_cosine_loss_hand_values() -> None:
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])  # [B=1, T=3, C=2]
    student = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]]])
    # Per frame: aligned (0), 45 degrees (1 - 1/sqrt 2), opposite (2).
    expected = (0.0 + (1 - 1 / math.sqrt(2)) + 2.0) / 3
    assert cosine_alignment_loss(teacher, student).item() == pytest.approx(expected, rel=1e-6)
    assert cosine_alignment_loss(teacher, 5 * teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_resample_frames_interpolates_in_time() -> None:
    ramp = torch.linspace(0, 1, 49).reshape(1, 49, 1).repeat(1, 1, 3)
    out = resample_frames(ramp, 33)
    assert out.shape == (1, 33, 3)
    assert torch.all(out[0, 1:, 0] > out[0, :-1, 0])  # still increasing
    assert out[0, 16, 0].item() == pytest.approx(0.5, abs=1e-6)  # centre stays the centre


def test_front_alignment_learns_projection_to_student_frames() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(8, 49, 12)  # [B, T_t, D_t] teacher CNN frames
    mix = torch.randn(12, 6)
    # Student front map [B, C=6, F=4, T=33] whose frequency mean is reachable by eq. 14
    # (W_p = mix, unit LayerNorm) followed by the time interpolation.
    frames = resample_frames(nn.functional.layer_norm(teacher @ mix, (6,)), 33)  # [B, 33, 6]
    student = frames.transpose(1, 2).unsqueeze(2).repeat(1, 1, 4, 1)
    align = FrontAlignment(teacher_dim=12, student_channels=6)
    opt = torch.optim.Adam(align.parameters(), lr=0.05)
    start = align(teacher, student).item()
    for _ in range(100):
        loss = align(teacher, student)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert start > 0.3
    assert loss.item() < 0.01  # W_p (+ LayerNorm) found the alignment


def test_front_alignment_rejects_wrong_shapes() -> None:
    align = FrontAlignment(teacher_dim=12, student_channels=6)
    with pytest.raises(ValueError, match=r"teacher features \[B, T, 12\]"):
        align(torch.randn(2, 10, 8), torch.randn(2, 6, 4, 5))
    with pytest.raises(ValueError, match="student front has 5 channels"):
        align(torch.randn(2, 10, 12), torch.randn(2, 5, 4, 5))


# --- routing ----------------------------------------------------------------------------------


def _orthonormal_rows(d_in: int, d_out: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d_out, d_in, generator=gen))
    return q.T  # [d_in, d_out], orthonormal rows: preserves the Gram matrix


def test_linear_cka_properties() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen)
    y = 3.0 * x @ _orthonormal_rows(8, 20, gen)
    assert linear_cka(x, y) == pytest.approx(1.0, abs=1e-9)
    z = torch.randn(64, 8, generator=gen)
    assert 0.0 <= linear_cka(x, z) < 0.5
    assert linear_cka(x, z) == pytest.approx(linear_cka(z, x))


def test_routing_picks_planted_layers_in_order() -> None:
    gen = torch.Generator().manual_seed(1)
    n, d_teacher = 96, 12
    bases = [torch.randn(n, 8, generator=gen) for _ in range(2)]
    planted = {0: (5, 1, 3), 1: (0, 6, 2)}  # most similar first
    noise = (0.1, 0.6, 1.2)
    layers = [torch.randn(n, d_teacher, generator=gen) for _ in range(8)]  # layers 4, 7 unrelated
    for stage, picks in planted.items():
        for layer, sigma in zip(picks, noise):
            layers[layer] = bases[stage] @ _orthonormal_rows(8, d_teacher, gen) + sigma * torch.randn(n, d_teacher, generator=gen)
    teacher = torch.stack(layers, dim=1)  # [N, L, D]
    student = [2.0 * bases[0] @ _orthonormal_rows(8, 16, gen), bases[1] @ _orthonormal_rows(8, 24, gen)]
    routing = route(student, teacher, k=3)
    assert routing.layers == ((5, 1, 3), (0, 6, 2))
    assert route(student, teacher, k=3) == routing  # deterministic
    assert Routing.from_dict(json.loads(json.dumps(routing.to_dict()))) == routing


def test_routing_breaks_ties_towards_lower_layer() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(32, 6, generator=gen)
    teacher = [torch.randn(32, 6, generator=gen), x.clone(), torch.randn(32, 6, generator=gen), x.clone()]
    assert route([x], teacher, k=2).layers == ((1, 3),)
    with pytest.raises(ValueError, match="k=5"):
        route([x], teacher, k=5)


def test_routing_targets_average_routed_softened_layers() -> None:
    routing = Routing(similarity=((0.9, 0.1, 0.5),), layers=((0, 2),))
    layer_logits = torch.tensor([[[2.0, 0.0], [9.0, -9.0], [0.0, 2.0]]])  # [B=1, L=3, C=2]
    t = 2.0
    p0 = torch.softmax(torch.tensor([2.0, 0.0]) / t, dim=0)
    p2 = torch.softmax(torch.tensor([0.0, 2.0]) / t, dim=0)
    target = routing.targets(layer_logits, t)
    assert target.shape == (1, 1, 2)
    torch.testing.assert_close(target[0, 0], (p0 + p2) / 2)  # layer 1 (unrouted) ignored
    with pytest.raises(ValueError, match=r"\[B, 3, C\]"):
        routing.targets(torch.zeros(1, 4, 2), t)


# --- eq. 17: hierarchical KD ------------------------------------------------------------------


def _head_emitting(hier: HierarchicalKD, stage: int, logits: torch.Tensor) -> None:
    linear = hier.heads[stage][-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(logits)


def test_hierarchical_kd_zero_at_routed_mean_and_sum_mode_adds_terms() -> None:
    t = 4.0
    probs = torch.tensor([[[[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]]])  # [B=1, S=1, k=3, C=3]
    features = [torch.randn(1, 5, 2, 2)]
    hier = HierarchicalKD([5], n_classes=3, target="mean")
    # A head whose softened output is exactly the mean of the routed distributions: no loss.
    _head_emitting(hier, 0, t * probs[0, 0].mean(0).log())
    assert hier(features, probs, t).item() == pytest.approx(0.0, abs=1e-6)
    summed = HierarchicalKD([5], n_classes=3, target="sum")
    summed.load_state_dict(hier.state_dict())
    logits = hier.stage_logits(features)[0]
    expected = sum(kd_loss(logits, probs[:, 0, k], t) for k in range(3))
    assert summed(features, probs, t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() > 0


# --- eq. 19 and the config --------------------------------------------------------------------


def test_total_loss_weights_terms() -> None:
    config = DistillConfig(alpha_front=0.5, alpha_kd=2.0, alpha_ce=0.25)
    ce, kd, front = torch.tensor(1.0), torch.tensor(3.0), torch.tensor(4.0)
    assert total_loss(config, ce, kd, front).item() == pytest.approx(0.5 * 4 + 2 * 3 + 0.25 * 1)
    assert total_loss(config, ce).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="front is off"):
        total_loss(config.ablated(["front"]), ce, kd, front)


def test_config_ablation_and_qat_schedule() -> None:
    config = DistillConfig().ablated(["front", "adir", "unknown-thing"])
    assert not config.front and not config.adir and config.hier and config.qat and config.fms
    assert [DistillConfig(qat_start=0.8).qat_active(e, 10) for e in range(10)] == [False] * 8 + [True] * 2
    assert not DistillConfig(qat=False).qat_active(9, 10)
    with pytest.raises(ValueError, match="hier_target"):
        DistillConfig(hier_target="max")
    with pytest.raises(ValueError, match="t_min"):
        DistillConfig(t_min=0)


def test_two_stages_share_one_step_floor() -> None:
    quick = get_profile("quick").replace(min_steps=250)
    first, second = split_stages(quick, 170, 0.3)  # 3 steps per epoch: 84 epochs in all
    assert (first.epochs, second.epochs) == (25, 59)
    assert first.min_steps is None and second.min_steps is None  # neither stage sizes itself again
    assert split_stages(quick, 170, 0.0) == (None, quick.sized_for(170))
    first, second = split_stages(quick, 800, 0.3)  # 20 epochs already meet the floor
    assert (first.epochs, second.epochs) == (6, 14)


def test_students_profile_changes_leave_the_teachers_step_floor() -> None:
    """A profile whose students' step floor is switched off (in PROFILES) leaves the teachers'
    fine-tuning floor, a constant of its own, so their cached stages stay the plain runs'."""
    from ascbench.distill.recipe import teacher_profiles
    from ascbench.training import config as training_config
    from baselines.hubert_mobilenetv2 import hubert_teacher

    saved = training_config.PROFILES["quick"]
    try:
        training_config.PROFILES["quick"] = saved.replace(min_steps=None)
        teachers = teacher_profiles(hubert_teacher, smoke_pretrain={"max_steps": 2})
    finally:
        training_config.PROFILES["quick"] = saved
    assert teachers["quick"].finetune.min_steps == saved.min_steps


# --- the student under the full objective -----------------------------------------------------


def test_feature_taps_unknown_name_and_cleanup() -> None:
    model = mobilenetv2_student()
    with pytest.raises(KeyError, match="close names"):
        FeatureTaps(model, ["blocks.9"])
    with FeatureTaps(model, ["bn1"]):
        assert len(model.bn1._forward_hooks) == 1
    assert len(model.bn1._forward_hooks) == 0


def test_student_training_steps_lower_total_distillation_loss() -> None:
    torch.manual_seed(0)
    n, n_classes, shape = 20, 10, (1, 32, 24)  # small maps keep the CPU test fast
    labels = torch.arange(n) % n_classes
    prototypes = torch.randn(n_classes, *shape)
    x = prototypes[labels] + 0.5 * torch.randn(n, *shape)
    # Cached teacher outputs that carry the labels: final logits, 6 layer logits, CNN frames.
    teacher_logits = 4.0 * nn.functional.one_hot(labels, n_classes).float()
    teacher_layers = teacher_logits[:, None] * torch.linspace(0.2, 1.0, 6)[None, :, None] + torch.randn(n, 6, n_classes)
    teacher_front = torch.randn(n, 25, 12)

    model = mobilenetv2_student(n_classes=n_classes)
    front_tap, stages = model.front_tap, list(model.stage_taps())[-2:]
    channels = tap_channels(model, [front_tap, *stages], shape)
    student_repr = pooled_taps(model, stages, x, batch_size=8)
    assert [tuple(r.shape) for r in student_repr] == [(n, c) for c in channels[1:]]
    routing = route(student_repr, teacher_layers + 0.1 * torch.randn(n, 6, n_classes), k=3)
    objective = DistillObjective(
        DistillConfig(), n_classes, teacher_front_dim=12, student_front_channels=channels[0],
        stage_channels=channels[1:], routing=routing,
    )
    opt = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=3e-3)
    model.train()

    def step() -> float:
        with FeatureTaps(model, [front_tap, *stages]) as taps:
            logits = model(x)
        terms = objective(
            logits, labels, temperature=DistillConfig().temperature(0), teacher_logits=teacher_logits,
            teacher_layer_logits=teacher_layers, stage_features=taps.take(stages),
            teacher_front=teacher_front, student_front=taps[front_tap],
        )
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        assert set(terms.floats()) == {"total", "ce", "kd", "front"}
        return terms.total.item()

    losses = [step() for _ in range(8)]
    assert losses[-1] < 0.7 * losses[0], losses
    assert objective.front is not None and objective.front.proj.weight.grad is not None
    assert all(h[-1].weight.grad is not None for h in objective.hier.heads)


def test_objective_without_components_needs_no_teacher_inputs() -> None:
    config = DistillConfig().ablated(["front", "hier", "kd"])  # --ablate front,hier,kd: no teacher signal left
    assert not config.final_kd and config.fms and config.adir and config.qat
    objective = DistillObjective(config)
    assert list(objective.parameters()) == []
    logits, labels = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    terms = objective(logits, labels, temperature=2.0)
    assert terms.kd is None and terms.front is None
    assert terms.total.item() == pytest.approx(nn.functional.cross_entropy(logits, labels).item())
    with pytest.raises(ValueError, match="teacher_logits"):
        DistillObjective(DistillConfig(front=False, hier=False))(logits, labels, temperature=2.0)


def test_unlabeled_clips_learn_from_the_teacher_alone() -> None:
    """Pool clips (label < 0, ``--pool-kd``) add no cross-entropy, only the teacher terms; a batch
    of pool clips alone has CE 0 and still a KD gradient."""
    torch.manual_seed(0)
    logits = torch.randn(6, 10, requires_grad=True)
    labels = torch.tensor([3, -1, 7, -1, -1, 0])
    teacher = torch.randn(6, 10)
    with pytest.raises(IndexError, match="out of bounds"):  # without the pool flag a negative label is a bug
        DistillObjective(DistillConfig(front=False, hier=False))(logits, labels, temperature=2.0, teacher_logits=teacher)
    objective = DistillObjective(DistillConfig(front=False, hier=False), unlabeled=True)
    terms = objective(logits, labels, temperature=2.0, teacher_logits=teacher)
    labelled = labels >= 0
    assert terms.ce.item() == pytest.approx(nn.functional.cross_entropy(logits[labelled], labels[labelled]).item())
    assert terms.kd.item() == pytest.approx(logit_kd_loss(logits, teacher, 2.0).item())  # over every clip

    pool_only = objective(logits, torch.full((6,), -1), temperature=2.0, teacher_logits=teacher)
    assert pool_only.ce.item() == 0.0 and math.isfinite(pool_only.total.item())
    pool_only.total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    labelled_only = objective(logits, labels.clamp(min=0), temperature=2.0, teacher_logits=teacher)
    assert labelled_only.ce.item() == pytest.approx(nn.functional.cross_entropy(logits, labels.clamp(min=0)).item())


@pytest.mark.parametrize("unlabeled", [False, True])
def test_distillation_cross_entropy_is_smoothed_as_the_run_asks(unlabeled: bool) -> None:
    """``TrainConfig.label_smoothing`` reaches L_CE of eq. 19 as it reaches a student without a teacher."""
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 10), torch.tensor([3, 1, 7, 2, 9, 0])
    config = DistillConfig(front=False, hier=False, final_kd=False)
    smoothed = DistillObjective(config, unlabeled=unlabeled, label_smoothing=0.2)(logits, labels, temperature=2.0)
    expected = nn.functional.cross_entropy(logits, labels, label_smoothing=0.2).item()
    assert smoothed.ce.item() == pytest.approx(expected)
    assert expected != pytest.approx(nn.functional.cross_entropy(logits, labels).item())


# --- eq. 18: quantization-aware training ------------------------------------------------------


@pytest.mark.parametrize("mode", ["symmetric", "mean_std"])
def test_fake_quantized_weights_have_at_most_256_values_per_channel(mode: str) -> None:
    model = mobilenetv2_student()
    names = attach_fake_quant(model, mode=mode)
    assert "conv_stem" in names and "classifier" in names and has_fake_quant(model)
    for name in names:
        weight = model.get_submodule(name).weight  # what the forward sees
        per_channel = weight.detach().reshape(weight.shape[0], -1)
        assert max(len(torch.unique(row)) for row in per_channel) <= 256, name
    # Coarse enough to matter: the projection of stage 3 has more distinct float weights than int8 codes.
    original = model.blocks[3][0].conv_pwl.parametrizations.weight.original
    assert len(torch.unique(original[0])) > len(torch.unique(model.blocks[3][0].conv_pwl.weight[0]))


def test_mean_std_reading_keeps_weights_below_the_mean() -> None:
    w = torch.randn(4, 200, generator=torch.Generator().manual_seed(0))
    q = fake_quantize(w, mode="mean_std")
    mu, sigma = w.mean(1, keepdim=True), w.std(1, unbiased=False, keepdim=True)
    assert torch.all(q.min(1).values < mu.squeeze(1) - sigma.squeeze(1))  # not clipped at the mean
    inside = (w - mu).abs() <= 2 * sigma
    assert torch.all((q - w).abs()[inside] <= (4 * sigma / 255 / 2).expand_as(w)[inside] + 1e-6)


def test_straight_through_gradient() -> None:
    conv = nn.Conv2d(3, 4, 3)
    attach_fake_quant(conv)
    upstream = torch.randn_like(conv.weight)
    (conv.weight * upstream).sum().backward()
    torch.testing.assert_close(conv.parametrizations.weight.original.grad, upstream)


def test_attaching_mid_training_keeps_the_optimizer_parameters() -> None:
    # Recipes switch QAT on in late epochs, with an optimizer built before.
    conv = nn.Conv2d(2, 3, 3)
    weight = conv.weight
    opt = torch.optim.AdamW(conv.parameters(), lr=0.1)
    attach_fake_quant(conv)
    assert conv.parametrizations.weight.original is weight
    before = weight.detach().clone()
    conv(torch.randn(2, 2, 5, 5)).square().sum().backward()
    opt.step()
    assert not torch.equal(before, weight.detach())
    detach_fake_quant(conv)
    assert conv.weight is weight
    torch.testing.assert_close(weight.detach(), fake_quantize(weight.detach()))


def test_symmetric_grid_survives_bn_folding() -> None:
    w = fake_quantize(torch.randn(8, 16, 3, 3, generator=torch.Generator().manual_seed(3)))
    bn_factor = torch.linspace(-2.0, 3.0, 8).reshape(8, 1, 1, 1)  # gamma / sqrt(var + eps), one per channel
    folded = w * bn_factor
    torch.testing.assert_close(fake_quantize(folded), folded, rtol=1e-5, atol=1e-7)


def test_qat_steps_then_baked_model_matches_fake_quant_model() -> None:
    torch.manual_seed(0)
    shape, labels = (1, 32, 24), torch.arange(16) % 10
    x = torch.randn(10, *shape)[labels] + 0.3 * torch.randn(16, *shape)
    model = mobilenetv2_student()
    attach_fake_quant(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        fake_quant_logits = model(x)
    detach_fake_quant(model)
    assert not has_fake_quant(model)
    assert "conv_stem.weight" in model.state_dict()  # plain keys again, loadable by the float factory
    mobilenetv2_student().load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), fake_quant_logits)
    # Baked weights are already on the int8 grid: quantizing again changes nothing.
    torch.testing.assert_close(fake_quantize(model.blocks[2][1].conv_pw.weight), model.blocks[2][1].conv_pw.weight)


def test_qat_student_converts_to_int8_that_agrees_with_fake_quant_model(tmp_path, monkeypatch) -> None:
    # End to end: fake-quant training (features and hooks keep working), bake, then the harness's
    # int8 conversion. ascbench's PT2E prepare_qat graph exposes no intermediate features, so
    # distillation uses this path; BN folding keeps the baked per-channel grids (see above).
    from ascbench.evaluation.quantize import quantize_int8

    monkeypatch.setenv("ASCBENCH_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    labels = torch.arange(48) % 10
    x = 2 * torch.randn(10, 1, 256, 65)[labels] + torch.randn(48, 1, 256, 65)
    model = mobilenetv2_student()
    attach_fake_quant(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x[:24]), labels[:24])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        fake_quant_pred = model(x).argmax(1)
    detach_fake_quant(model)
    artifact = quantize_int8(model, x[:32], tmp_path / "student-int8.pt2")
    assert artifact.path.is_file() and artifact.int8_params > 100_000  # weights really are int8
    with torch.no_grad():
        int8_pred = artifact.model(x).argmax(1)
    assert (int8_pred == fake_quant_pred).float().mean().item() >= 0.9


def test_distillation_loss_names_its_teacher_so_checkpoints_never_resume_across_teachers() -> None:
    """The engine's resume fingerprint includes the loss hook's qualified name."""
    from ascbench.distill.recipe import _loss_fn
    from ascbench.training.config import get_profile

    a, b = (_loss_fn(None, DistillConfig(), get_profile("smoke"), 10, None, (), stage) for stage in ("stage-a", "stage-b"))
    assert "stage-a" in a.__qualname__ and a.__qualname__ != b.__qualname__


def test_pool_kd_is_refused_when_the_recipe_leaves_no_teacher_term() -> None:
    """beats-mobilenetv2's recipe has no front alignment and no hierarchical KD: with ``--ablate kd``
    nothing of its teacher is left, so the unlabeled pool clips (no labels) would teach nothing,
    though ``kd`` alone is not every teacher term by name."""
    from ascbench.distill.recipe import DistillOptions, with_unlabeled_pool
    from ascbench.runner.execute import system_recipe
    from ascbench.systems.registry import discover

    recipe = system_recipe(discover(None).get("beats-mobilenetv2"))
    distill = recipe.config_for("smoke", DistillOptions(ablate=("kd",))).distill
    assert not (distill.front or distill.hier or distill.final_kd)
    with pytest.raises(ValueError, match="would teach nothing"):
        with_unlabeled_pool(None, None, 1.0, distill)  # type: ignore[arg-type]  # refused before either is read


def test_a_distillation_checkpoint_is_not_resumed_under_other_loss_weights() -> None:
    """The engine resumes an epoch checkpoint only when its loss function's name matches: the name
    of the distillation loss must change with eq. 19's α's (and every other DistillConfig field)."""
    from ascbench.distill.recipe import _loss_fn

    config = get_profile("smoke")
    names = {
        _loss_fn(None, distill, config, 100, None, (), "hubert-small-finetune-x").__qualname__  # type: ignore[arg-type]
        for distill in (DistillConfig(), DistillConfig(alpha_kd=2.0), DistillConfig(t_max=4.0))
    }
    assert len(names) == 3


def test_front_alignment_rolls_the_teachers_frames_with_the_students_input() -> None:
    """Eq. 15 compares the student's frame i with the teacher's frame i. The profile's time roll is
    applied by the loss, not the engine, with one shift per clip for the input the student sees and
    for the teacher's frames (brought to the input's frame rate)."""
    from ascbench.distill.recipe import AlignedRoll, StudentWithObjective, TeacherTargets, _loss_fn
    from ascbench.training.augment import roll_by

    torch.manual_seed(0)
    student = mobilenetv2_student()
    batch, frames, teacher_steps, width = 4, 65, 25, 12
    distill = DistillConfig(hier=False, final_kd=False)
    objective = DistillObjective(distill, teacher_front_dim=width, student_front_channels=tap_channels(student, [student.front_tap], (1, 256, frames))[0])
    teacher = np.random.default_rng(0).standard_normal((batch, teacher_steps, width)).astype(np.float16)
    targets = TeacherTargets(logits=torch.zeros(batch, 10), layer_logits=torch.zeros(batch, 1, 10), cnn_features=teacher)
    roll = AlignedRoll(max_shift=6, time_dim=3)
    loss = _loss_fn(targets, distill, get_profile("smoke"), batch, student.front_tap, (), "teacher-x", roll)

    seen: dict[str, torch.Tensor] = {}
    student.register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0]))
    original = objective.forward

    def recording(*args, **kwargs):
        seen["teacher_front"] = kwargs["teacher_front"]
        return original(*args, **kwargs)

    objective.forward = recording  # type: ignore[method-assign]
    inputs, rows = torch.randn(batch, 1, 256, frames), torch.arange(batch)
    torch.manual_seed(7)
    loss(StudentWithObjective(student, objective), inputs, torch.zeros(batch, dtype=torch.long), rows, 0)
    torch.manual_seed(7)
    shifts = torch.randint(-6, 7, (batch,))
    assert len(set(shifts.tolist())) > 1
    assert torch.equal(seen["input"], roll_by(inputs, shifts, 3))
    upsampled = resample_frames(torch.from_numpy(teacher.astype(np.float32)), frames)
    assert torch.equal(seen["teacher_front"], roll_by(upsampled, shifts, 1))
    assert "roll=6" in loss.__qualname__


def test_only_front_alignment_takes_the_roll_from_the_engine() -> None:
    """H_M (front alignment) keeps the profile's roll at every profile, applied by its loss; the
    logit-KD-only beats-mobilenetv2 leaves it to the engine."""
    from ascbench.runner.execute import system_recipe
    from ascbench.systems.registry import discover

    registry = discover(None)
    hubert, beats = (system_recipe(registry.get(name)) for name in ("hubert-mobilenetv2", "beats-mobilenetv2"))
    for profile in ("smoke", "quick", "dcase"):
        assert hubert.config_for(profile).distill.front and not beats.config_for(profile).distill.front
        assert hubert.config_for(profile).train.roll_s == beats.config_for(profile).train.roll_s == get_profile(profile).roll_s > 0
