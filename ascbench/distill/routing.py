"""Cross-layer routing for hierarchical distillation (seed paper §3.3.2 (1)).

The paper: "compute the attention similarity between student layer j and every teacher layer i,
and take the Top-3 teacher layers as supervision sources". It does not define the similarity.
Our reading: **linear CKA** (Kornblith et al., 2019) between clip-level representations on a
batch of training clips -- student stage maps average-pooled to [N, C_j], teacher hidden states
mean-pooled over frames to [N, D_i]. CKA compares representations of different widths, is
invariant to rotation and isotropic scaling (so the teacher's 768-d and a student's 40-d spaces
are comparable), and needs no training, so the routing is fixed before distillation starts.

Routing is deterministic: CKA in float64, ties broken towards the lower teacher layer index.
The KD target of a student stage is the average of its routed teacher layers' softened
layer-logit distributions (teacher per-layer logits come from linear heads trained with the
teacher, [N, L, n_classes]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between representations x [N, D1] and y [N, D2] of the same N clips.

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), Xc, Yc column-centred.
    1 for representations equal up to rotation and scale, near 0 for unrelated ones.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka: expected [N, D1] and [N, D2] with the same N, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"linear_cka: need at least 2 clips, got {x.shape[0]}")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norms) if norms > 0 else 0.0


def similarity_matrix(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """CKA of every student stage (list of [N, C_j]) with every teacher layer ([N, L, D] or list of [N, D_i]).

    Returns [S, L] in float64.
    """
    layers = list(teacher.unbind(1)) if isinstance(teacher, torch.Tensor) else list(teacher)
    return torch.tensor([[linear_cka(s, t) for t in layers] for s in student], dtype=torch.float64)


@dataclass(frozen=True)
class Routing:
    """Which teacher layers supervise each routed student stage."""

    similarity: tuple[tuple[float, ...], ...]
    """[S][L] similarity of student stage j with teacher layer i."""
    layers: tuple[tuple[int, ...], ...]
    """[S][k] routed teacher layer indices per student stage, most similar first."""

    @property
    def n_stages(self) -> int:
        return len(self.layers)

    def teacher_distributions(self, layer_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Softened distributions of the routed teacher layers: [B, L, C] logits -> [B, S, k, C] probabilities."""
        n_layers = len(self.similarity[0])
        if layer_logits.dim() != 3 or layer_logits.shape[1] != n_layers:
            raise ValueError(
                f"Routing: expected teacher layer logits [B, {n_layers}, C], got shape {tuple(layer_logits.shape)}"
            )
        index = torch.tensor(self.layers, device=layer_logits.device)  # [S, k]
        routed = layer_logits[:, index]  # [B, S, k, C]
        return torch.softmax(routed / temperature, dim=-1)

    def targets(self, layer_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """KD target per stage: mean of the routed layers' softened distributions, [B, S, C]."""
        return self.teacher_distributions(layer_logits, temperature).mean(dim=2)

    def to_dict(self) -> dict[str, list]:
        return {"similarity": [list(row) for row in self.similarity], "layers": [list(row) for row in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> Routing:
        return cls(
            similarity=tuple(tuple(float(v) for v in row) for row in data["similarity"]),
            layers=tuple(tuple(int(v) for v in row) for row in data["layers"]),
        )


def route(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor] | torch.Tensor, k: int = 3
) -> Routing:
    """Route each student stage to its ``k`` most CKA-similar teacher layers.

    ``student``: pooled stage representations, one [N, C_j] per routed stage; ``teacher``: pooled
    layer representations [N, L, D] (or a list of [N, D_i]), on the same N training clips.
    """
    sim = similarity_matrix(student, teacher)
    n_layers = sim.shape[1]
    if not 1 <= k <= n_layers:
        raise ValueError(f"route: k={k} must be between 1 and the number of teacher layers ({n_layers})")
    # Stable sort on the negated similarity: equal similarities keep the lower layer first.
    order = torch.sort(-sim, dim=1, stable=True).indices[:, :k]
    return Routing(
        similarity=tuple(tuple(float(v) for v in row) for row in sim),
        layers=tuple(tuple(int(i) for i in row) for row in order),
    )
