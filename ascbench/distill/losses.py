"""Distillation losses of the seed paper (§1.2 and §3.3), as pure, separately testable pieces.

Equation numbers are the paper's. Where the paper is vague the reading we chose is stated in
the docstring and, where a different reading is plausible, made switchable in
:class:`DistillConfig`:

- eq. 16, T(t) = Tmax·e^(−βt) + Tmin: t counts **epochs** (0-based; β = 0.01 per step would
  reach Tmin within a few hundred steps, per epoch it decays over the 150-epoch DCASE recipe).
  The text calls Tmax = 8 the *initial* temperature, which the formula contradicts
  (T(0) = Tmax + Tmin = 10); ``temperature_form="paper"`` keeps the formula,
  ``"interpolate"`` uses (Tmax − Tmin)·e^(−βt) + Tmin so that T(0) = 8.
- eq. 17, L_KD = Σ_k T_k²/N_k Σ_i KL(P_T^(k) ‖ P_S^(k)): k runs over the 3 teacher layers routed
  to a student stage, every T_k is the current T(t). ``hier_target="mean"`` (default) distils
  the stage's auxiliary head towards the *average* of the three softened teacher layer
  distributions; ``"sum"`` is the literal sum of three KL terms. Stage losses are averaged over
  the routed stages. With ``final_kd`` the deployable logits are also distilled from the
  teacher's final logits (the classic KD of eq. 2–3), so L_KD = L_final + L_hier.
- eq. 15: the mean runs over every frame of every clip (N = B·T_s), after the projected teacher
  sequence is linearly interpolated in time to the student's frame count.
- eq. 19: α1, α2, α3 are not given in the paper; the defaults weight the three terms equally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ascbench.ablation import ABLATABLE, TEACHER_TERMS
from ascbench.distill.features import frame_sequence
from ascbench.distill.routing import Routing

_ABLATED_FIELD = {"kd": "final_kd"}


@dataclass(frozen=True)
class DistillConfig:
    """Switches and weights of the distillation objective (eq. 19) and its schedule."""

    front: bool = True
    """Front-end feature alignment, eq. 14–15 (needs teacher CNN features)."""
    hier: bool = True
    """Hierarchical KD of routed student stages, eq. 17 (needs teacher per-layer logits)."""
    qat: bool = True
    """Quantization-aware training in the late epochs, eq. 18."""
    fms: bool = True
    """Freq-MixStyle augmentation (applied by the recipe; eq. 13)."""
    adir: bool = True
    """Device impulse response augmentation (applied by the recipe; eq. 4, 13)."""
    final_kd: bool = True
    """Distil the deployable logits from the teacher's final logits (part of L_KD)."""
    alpha_front: float = 1.0
    """α1 in eq. 19."""
    alpha_kd: float = 1.0
    """α2 in eq. 19."""
    alpha_ce: float = 1.0
    """α3 in eq. 19."""
    t_max: float = 8.0
    t_min: float = 2.0
    beta: float = 0.01
    temperature_form: Literal["paper", "interpolate"] = "paper"
    temperature_epochs: float | None = None
    """If set, t = epoch / total_epochs · temperature_epochs, so a short run sweeps the same
    temperature range as a ``temperature_epochs``-long one; None: t = epoch."""
    top_k: int = 3
    hier_target: Literal["mean", "sum"] = "mean"
    qat_start: float = 0.8
    """Fraction of the epochs after which QAT starts (the paper: "late in distillation")."""

    def __post_init__(self) -> None:
        for name in ("alpha_front", "alpha_kd", "alpha_ce", "t_max", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.t_min <= 0:
            raise ValueError(f"DistillConfig.t_min must be > 0 (logits are divided by T), got {self.t_min}")
        if self.temperature_form not in ("paper", "interpolate"):
            raise ValueError(f"DistillConfig.temperature_form must be 'paper' or 'interpolate', got {self.temperature_form!r}")
        if self.hier_target not in ("mean", "sum"):
            raise ValueError(f"DistillConfig.hier_target must be 'mean' or 'sum', got {self.hier_target!r}")
        if not 0.0 <= self.qat_start <= 1.0:
            raise ValueError(f"DistillConfig.qat_start must be a fraction in [0, 1], got {self.qat_start}")
        if self.top_k < 1:
            raise ValueError(f"DistillConfig.top_k must be >= 1, got {self.top_k}")

    @property
    def teacher_signal(self) -> bool:
        """Whether any term reads the teacher: without one the recipe needs no teacher at all (and
        its run has learnt nothing from the audio the teacher was pre-trained on)."""
        return any(getattr(self, term) for term in TEACHER_TERMS)

    def ablated(self, names: Iterable[str]) -> DistillConfig:
        """This config with the named components switched off; names outside ABLATABLE are ignored."""
        return replace(self, **{_ABLATED_FIELD.get(name, name): False for name in names if name in ABLATABLE})

    def temperature(self, epoch: float, total_epochs: int | None = None) -> float:
        """T(t) of eq. 16 at this epoch (see ``temperature_epochs`` for the clock)."""
        t = float(epoch)
        if self.temperature_epochs is not None:
            if not total_epochs:
                raise ValueError("DistillConfig.temperature: temperature_epochs is set, so total_epochs is needed")
            t = t / total_epochs * self.temperature_epochs
        return adaptive_temperature(t, self.t_max, self.t_min, self.beta, self.temperature_form)

    def qat_active(self, epoch: int, total_epochs: int) -> bool:
        """Whether fake quantization is on in this (0-based) epoch."""
        return self.qat and epoch >= math.floor(self.qat_start * total_epochs)


def adaptive_temperature(
    t: float,
    t_max: float = 8.0,
    t_min: float = 2.0,
    beta: float = 0.01,
    form: Literal["paper", "interpolate"] = "paper",
) -> float:
    """Eq. 16: T(t) = Tmax·e^(−βt) + Tmin (``form="paper"``; T(0) = 10 at the defaults).

    ``form="interpolate"``: T(t) = (Tmax − Tmin)·e^(−βt) + Tmin, which starts at Tmax.
    """
    scale = t_max if form == "paper" else t_max - t_min
    return scale * math.exp(-beta * t) + t_min


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 2–3 with the usual T² gradient scale: T² · 1/N Σ_i KL(P_T(i) ‖ softmax(z_S(i)/T)).

    ``teacher_probs`` [B, C] are already-softened teacher distributions (a routed average is one).
    """
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"kd_loss: student {tuple(student_logits.shape)} and teacher {tuple(teacher_probs.shape)} differ")
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(log_q, teacher_probs, reduction="batchmean") * temperature**2


def logit_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Classic logit KD: T² · KL(softmax(z_T/T) ‖ softmax(z_S/T)), batch mean (BASE_III's L_KD)."""
    return kd_loss(student_logits, torch.softmax(teacher_logits.float() / temperature, dim=-1), temperature)


def cosine_alignment_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Eq. 15: L_front = 1/N Σ_i (1 − <Z'_T(i), Z_S(i)> / (‖Z'_T(i)‖ ‖Z_S(i)‖)) over frames [B, T, C]."""
    if teacher.shape != student.shape:
        raise ValueError(f"cosine_alignment_loss: teacher {tuple(teacher.shape)} and student {tuple(student.shape)} differ")
    return (1.0 - F.cosine_similarity(teacher, student, dim=-1, eps=1e-8)).mean()


def resample_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Linearly interpolate a frame sequence [B, T, C] to [B, frames, C]."""
    if x.shape[1] == frames:
        return x
    return F.interpolate(x.transpose(1, 2), size=frames, mode="linear", align_corners=False).transpose(1, 2)


class FrontAlignment(nn.Module):
    """Front-end feature alignment (eq. 14–15); training-only, never part of the deployable model.

    Eq. 14: Z'_T = LayerNorm(W_p Z_T + b_p) projects the teacher's CNN features [B, T_t, D_t] to
    the student's front-end channel count. The student's map [B, C_s, F, T_s] is averaged over
    frequency to [B, T_s, C_s]; Z'_T is interpolated in time to T_s; eq. 15 is the loss.
    """

    def __init__(self, teacher_dim: int, student_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(teacher_dim, student_channels)  # W_p, b_p
        self.norm = nn.LayerNorm(student_channels)

    def project(self, teacher_features: torch.Tensor) -> torch.Tensor:
        """Eq. 14: [B, T_t, D_t] -> [B, T_t, C_s]."""
        if teacher_features.dim() != 3 or teacher_features.shape[-1] != self.proj.in_features:
            raise ValueError(
                f"FrontAlignment: expected teacher features [B, T, {self.proj.in_features}], got {tuple(teacher_features.shape)}"
            )
        return self.norm(self.proj(teacher_features.float()))

    def forward(self, teacher_features: torch.Tensor, student_front: torch.Tensor) -> torch.Tensor:
        student = frame_sequence(student_front)
        if student.shape[-1] != self.proj.out_features:
            raise ValueError(
                f"FrontAlignment: student front has {student.shape[-1]} channels, projection expects {self.proj.out_features}"
            )
        teacher = resample_frames(self.project(teacher_features), student.shape[1])
        return cosine_alignment_loss(teacher, student)


class HierarchicalKD(nn.Module):
    """Hierarchical semantic KD (eq. 17) through training-only auxiliary heads on student stages.

    Each routed stage gets a head (global average pool + linear -> n_classes logits); the head's
    softened distribution is pulled towards its routed teacher layers' distributions at T(t).
    """

    def __init__(self, stage_channels: Sequence[int], n_classes: int = 10, target: Literal["mean", "sum"] = "mean") -> None:
        super().__init__()
        if target not in ("mean", "sum"):
            raise ValueError(f"HierarchicalKD: target must be 'mean' or 'sum', got {target!r}")
        self.target = target
        self.heads = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, n_classes)) for c in stage_channels
        )

    def stage_logits(self, stage_features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(stage_features) != len(self.heads):
            raise ValueError(f"HierarchicalKD: {len(stage_features)} stage maps for {len(self.heads)} heads")
        return [head(x) for head, x in zip(self.heads, stage_features)]

    def forward(
        self, stage_features: Sequence[torch.Tensor], teacher_probs: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """``teacher_probs`` [B, S, k, C]: the routed layers' softened distributions (Routing.teacher_distributions)."""
        logits = self.stage_logits(stage_features)
        if teacher_probs.dim() != 4 or teacher_probs.shape[1] != len(logits):
            raise ValueError(f"HierarchicalKD: expected teacher_probs [B, {len(logits)}, k, C], got {tuple(teacher_probs.shape)}")
        per_stage = []
        for j, z in enumerate(logits):
            if self.target == "mean":
                per_stage.append(kd_loss(z, teacher_probs[:, j].mean(dim=1), temperature))
            else:
                per_stage.append(sum(kd_loss(z, p, temperature) for p in teacher_probs[:, j].unbind(1)))
        return torch.stack(per_stage).mean()


def labelled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean CE over the batch's labelled clips; unlabeled pool clips (label < 0) learn from the
    teacher terms alone. A batch without any labelled clip gives 0 (not the NaN of an empty mean).

    A masked mean rather than a branch on the mask: deciding on a GPU tensor's value would stop
    the host for every batch."""
    labelled = labels >= 0
    per_clip = F.cross_entropy(logits, labels.clamp(min=0), reduction="none", label_smoothing=label_smoothing)
    return (per_clip * labelled).sum() / labelled.sum().clamp(min=1)


def total_loss(
    config: DistillConfig,
    ce: torch.Tensor,
    kd: torch.Tensor | None = None,
    front: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 19: L_total = α1·L_front + α2·L_KD + α3·L_CE; a term that is None contributes nothing.

    ``front`` given while ``config.front`` is off is an error (a wiring bug, not an ablation).
    """
    if front is not None and not config.front:
        raise ValueError("total_loss: got a front-alignment loss but DistillConfig.front is off")
    loss = config.alpha_ce * ce
    if kd is not None:
        loss = loss + config.alpha_kd * kd
    if front is not None:
        loss = loss + config.alpha_front * front
    return loss


@dataclass
class LossTerms:
    """One batch's loss terms (for logging) and their eq. 19 combination."""

    total: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor | None = None
    front: torch.Tensor | None = None

    def floats(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in vars(self).items() if v is not None}


class DistillObjective(nn.Module):
    """The whole training objective of one student: its training-only modules and eq. 19.

    Holds W_p (:class:`FrontAlignment`) and the auxiliary heads (:class:`HierarchicalKD`) --
    both must go into the optimizer, neither into the deployable model -- and the routing.
    Components switched off in ``config`` are not built and their inputs are not needed.
    """

    def __init__(
        self,
        config: DistillConfig,
        n_classes: int = 10,
        teacher_front_dim: int | None = None,
        student_front_channels: int | None = None,
        stage_channels: Sequence[int] = (),
        routing: Routing | None = None,
        unlabeled: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = config
        self.label_smoothing = label_smoothing
        """``TrainConfig.label_smoothing`` of the run: L_CE is the students' cross-entropy, smoothed alike."""
        self.unlabeled = unlabeled
        """Batches may hold unlabeled pool clips (label < 0, ``--pool-kd``): cross-entropy is then
        their masked mean (:func:`labelled_cross_entropy`); otherwise plain cross-entropy, which
        rejects a negative label."""
        self.front: FrontAlignment | None = None
        self.hier: HierarchicalKD | None = None
        self.routing = routing
        if config.front:
            if teacher_front_dim is None or student_front_channels is None:
                raise ValueError("DistillObjective: front alignment needs teacher_front_dim and student_front_channels")
            self.front = FrontAlignment(teacher_front_dim, student_front_channels)
        if config.hier:
            if routing is None or len(stage_channels) != routing.n_stages:
                raise ValueError(
                    f"DistillObjective: hierarchical KD needs a routing over the {len(stage_channels)} stages given"
                )
            self.hier = HierarchicalKD(stage_channels, n_classes, config.hier_target)

    def forward(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        temperature: float,
        teacher_logits: torch.Tensor | None = None,
        teacher_layer_logits: torch.Tensor | None = None,
        stage_features: Sequence[torch.Tensor] = (),
        teacher_front: torch.Tensor | None = None,
        student_front: torch.Tensor | None = None,
    ) -> LossTerms:
        """Loss terms for one batch; teacher tensors are the cached per-clip teacher outputs."""
        if self.unlabeled:
            ce = labelled_cross_entropy(logits, labels, self.label_smoothing)
        else:
            ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        kd_terms = []
        if self.config.final_kd:
            if teacher_logits is None:
                raise ValueError("DistillObjective: final_kd is on but no teacher_logits were given")
            kd_terms.append(logit_kd_loss(logits, teacher_logits, temperature))
        if self.hier is not None:
            if teacher_layer_logits is None:
                raise ValueError("DistillObjective: hierarchical KD is on but no teacher_layer_logits were given")
            probs = self.routing.teacher_distributions(teacher_layer_logits.float(), temperature)
            kd_terms.append(self.hier(stage_features, probs, temperature))
        kd = torch.stack(kd_terms).sum() if kd_terms else None
        front = None
        if self.front is not None:
            if teacher_front is None or student_front is None:
                raise ValueError("DistillObjective: front alignment is on but teacher_front/student_front are missing")
            front = self.front(teacher_front, student_front)
        return LossTerms(total=total_loss(self.config, ce, kd, front), ce=ce, kd=kd, front=front)
