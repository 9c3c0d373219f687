"""BEATs (Chen et al., 2023, "BEATs: Audio Pre-Training with Acoustic Tokenizers") as a teacher.

An independent implementation that loads the official checkpoints (``{'cfg': dict, 'model':
state_dict}``, as released by microsoft/unilm) and reproduces their outputs: it is checked against
tiny checkpoints and outputs saved by the official code (``shared/fixtures/beats``). Module names
follow the official state-dict keys, so loading is a strict, key-by-key match.

The network, on Kaldi fbank features ``[B, frames, 128]`` (:class:`~ascbench.features.frontends.KaldiFbank`,
which applies BEATs' waveform scaling and normalisation):

1. 16 x 16 non-overlapping patches over (time, mel) by a strided ``Conv2d``; leftover frames are
   dropped and the patch grid is flattened time-major (1 s -> 98 frames -> 6 x 8 = 48 tokens);
2. ``LayerNorm`` over the patch embedding (width ``embed_dim``), then a linear projection to the
   encoder width when the two differ;
3. a transformer encoder: a grouped, weight-normalised convolutional positional embedding added
   to the input, then post-norm (or pre-norm) layers whose self-attention may carry a *gated
   relative position bias* (WavLM's: bucketed relative distances looked up in a table shared by
   all layers, scaled per token and head by a gate computed from the query), with DeepNorm's
   residual scaling;
4. for fine-tuned checkpoints, ``predictor``: a linear layer applied per token, averaged over
   tokens, then a sigmoid (multi-label AudioSet probabilities).

Padding masks are not supported: every clip of this benchmark has the same length.
"""

from __future__ import annotations

import math
import re
import warnings
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ascbench.features.frontends import KaldiFbank
from ascbench.distill.teachers.base import TeacherEncoder, TeacherOutput, brief

FBANK = KaldiFbank()
"""The frontend BEATs consumes: BEATs' official preprocessing (16 kHz, 128 bins, normalised)."""


@dataclass(frozen=True)
class BEATsConfig:
    """The official BEATs configuration; field names and defaults are those of the released code.

    One departure: ``input_patch_size`` defaults to 16 (the official default, -1, cannot build a
    model, and every released checkpoint uses 16).
    """

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "cfg") -> BEATsConfig:
        """Build from a checkpoint's ``cfg`` dict; keys this implementation does not know are
        reported (a warning naming them and ``source``) and ignored, as the official code would."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            warnings.warn(f"{source}: ignoring BEATs config keys this implementation does not use: {unknown}", stacklevel=2)
        config = cls(**{k: v for k, v in cfg.items() if k in known})
        config.validate(source)
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self, source: str = "cfg") -> None:
        """Fail early, naming the field, on a configuration that cannot build a model."""
        problems = []
        if self.input_patch_size <= 0:
            problems.append(f"input_patch_size={self.input_patch_size} (must be > 0; released models use 16)")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            problems.append(f"encoder_embed_dim={self.encoder_embed_dim} is not divisible by encoder_attention_heads={self.encoder_attention_heads}")
        if self.encoder_embed_dim % self.conv_pos_groups:
            problems.append(f"encoder_embed_dim={self.encoder_embed_dim} is not divisible by conv_pos_groups={self.conv_pos_groups}")
        if self.activation_fn not in _ACTIVATIONS:
            problems.append(f"activation_fn={self.activation_fn!r} (supported: {sorted(_ACTIVATIONS)})")
        if self.gru_rel_pos and (self.encoder_embed_dim // self.encoder_attention_heads) < 1:
            problems.append("gru_rel_pos needs a head dimension >= 1")
        if problems:
            raise ValueError(f"{source}: invalid BEATs config: " + "; ".join(problems))


BEATS_BASE = BEATsConfig()
"""The class defaults (12 layers, 768 wide, 90.3 M parameters), no relative position bias."""

BEATS_BASE_RELPOS = replace(
    BEATsConfig(),
    relative_position_embedding=True,
    num_buckets=320,
    max_distance=800,
    gru_rel_pos=True,
    deep_norm=True,
    layer_wise_gradient_decay_ratio=0.6,
)
"""The settings of the released BEATs checkpoints (gated relative position bias, DeepNorm)."""


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}


class GradMultiply(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` backward (BEATs' layer-wise gradient decay)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


class WeightNormConv1d(nn.Module):
    """A ``Conv1d`` whose weight is stored as ``weight_g * weight_v / ||weight_v||`` over dims 0-1.

    Kept as two plain parameters, named as in the released checkpoints (which were saved with the
    legacy ``nn.utils.weight_norm(dim=2)``), so that they load key for key.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        std = math.sqrt(4 / (kernel_size * channels))
        weight = torch.randn(channels, channels // groups, kernel_size) * std
        self.weight_v = nn.Parameter(weight)
        self.weight_g = nn.Parameter(weight.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 also under autocast: torch 2.9.1's bf16 CPU convolution returned wrong outputs for a
        # grouped conv with few channels per group and a long kernel, BEATs-small's 96 channels in
        # 16 groups at kernel 128 (errors as large as the outputs, on a Xeon with AMX;
        # tests/test_beats.py), and this conv is a small share of the encoder's work
        with torch.autocast(x.device.type, enabled=False):
            weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
            return F.conv1d(x.float(), weight, self.bias, padding=self.padding, groups=self.groups)


class PositionalConv(nn.Sequential):
    """Convolutional positional embedding: weight-normed grouped conv, trim to length, GELU."""

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__(WeightNormConv1d(channels, kernel_size, groups), _TrimEnd(1 if kernel_size % 2 == 0 else 0), nn.GELU())


class _TrimEnd(nn.Module):
    """Drops the extra output step an even kernel with ``padding=k//2`` produces."""

    def __init__(self, remove: int):
        super().__init__()
        self.remove = remove

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] - self.remove] if self.remove else x


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, length]`` bucket index of the distance ``key - query`` (T5/WavLM bucketing).

    Half the buckets per direction; within a half, distances below a quarter of the buckets are
    exact and larger ones are spaced logarithmically up to ``max_distance``.
    """
    position = torch.arange(length, device=device)
    relative = position[None, :] - position[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    max_exact = half // 2
    large = max_exact + (torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class MultiheadAttention(nn.Module):
    """Self-attention with WavLM/BEATs' optional gated relative position bias.

    The gate scales the shared bias per query token and head: with ``(a, b)`` two sigmoids of a
    linear map of the (unscaled) query, the bias is multiplied by ``a * (b * grep_a - 1) + 2``.
    """

    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.num_heads = heads
        self.head_dim = dim // heads
        self.dropout = cfg.attention_dropout
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        """``x`` [B, T, D]; ``position_bias`` [H, T, T] (ungated) or None."""
        batch, length, _ = x.shape
        q, k, v = (proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        bias = None
        if position_bias is not None:
            bias = position_bias.unsqueeze(0)
            if self.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            bias = bias.to(q.dtype)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(attn.transpose(1, 2).reshape(batch, length, -1))


class TransformerLayer(nn.Module):
    """One encoder layer: post-norm (default) with DeepNorm residual scaling, or pre-norm."""

    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = MultiheadAttention(cfg, has_relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = _ACTIVATIONS[cfg.activation_fn]()
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.activation_dropout)
        self.dropout3 = nn.Dropout(cfg.dropout)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1.0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout3(self.fc2(self.dropout2(self.activation(self.fc1(x)))))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout1(self.self_attn(self.self_attn_layer_norm(x), position_bias))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x * self.alpha + self.dropout1(self.self_attn(x, position_bias)))
        return self.final_layer_norm(x * self.alpha + self._ffn(x))


class TransformerEncoder(nn.Module):
    """Positional conv + layers; the relative-bias table lives in layer 0 and is shared by all."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.cfg = cfg
        self.pos_conv = PositionalConv(dim, cfg.conv_pos, cfg.conv_pos_groups)
        self.layers = nn.ModuleList(TransformerLayer(cfg, cfg.relative_position_embedding) for _ in range(cfg.encoder_layers))
        if cfg.relative_position_embedding:
            for layer in self.layers[1:]:  # one table, visible under every layer's key like the official model
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor | None:
        """``[heads, T, T]`` relative position bias (before gating), or None when disabled."""
        if not self.cfg.relative_position_embedding:
            return None
        buckets = relative_position_buckets(length, self.cfg.num_buckets, self.cfg.max_distance, device)
        return self.layers[0].self_attn.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` [B, T, D] -> (output [B, T, D], every layer's output)."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        bias = self.position_bias(x.shape[1], x.device)
        hidden = []
        for layer in self.layers:
            if self.cfg.layer_wise_gradient_decay_ratio != 1.0:
                x = GradMultiply.apply(x, self.cfg.layer_wise_gradient_decay_ratio)
            if not (self.training and self.cfg.encoder_layerdrop > 0) or torch.rand(()).item() >= self.cfg.encoder_layerdrop:
                x = layer(x, bias)
            hidden.append(x)
        if self.cfg.layer_norm_first:
            x = self.layer_norm(x)
            hidden[-1] = x
        return x, hidden


@dataclass
class BEATsOutput:
    """One forward pass: what the official model returns, plus the intermediates teachers need."""

    features: torch.Tensor
    """``[B, T, D]`` the encoder output (the official ``extract_features`` result)."""
    hidden_states: list[torch.Tensor]
    """One ``[B, T, D]`` per layer (the last equals ``features``)."""
    patch_embeddings: torch.Tensor
    """``[B, T, C]`` patch embeddings after ``layer_norm``, before the projection."""
    logits: torch.Tensor | None = None
    """``[B, classes]`` token-averaged predictor logits (fine-tuned models only)."""

    @property
    def probs(self) -> torch.Tensor | None:
        """Sigmoid of ``logits``: the official fine-tuned model's output."""
        return None if self.logits is None else torch.sigmoid(self.logits)


class BEATs(nn.Module):
    """The BEATs network on normalised fbank ``[B, frames, mel]``; see the module docstring."""

    def __init__(self, cfg: BEATsConfig | None = None):
        super().__init__()
        cfg = cfg or BEATsConfig()
        cfg.validate()
        self.cfg = cfg
        p = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=p, stride=p, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = TransformerEncoder(cfg)
        if cfg.finetuned_model:
            self.predictor_dropout = nn.Dropout(cfg.predictor_dropout)
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
        else:
            self.predictor = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT initialisation (normal 0.02, zero biases), with DeepNorm's scaled Xavier init."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if self.cfg.deep_norm:
            beta = math.pow(8 * self.cfg.encoder_layers, -1 / 4)
            for layer in self.encoder.layers:
                attn = layer.self_attn
                for linear, gain in ((attn.k_proj, 1.0), (attn.q_proj, 1.0), (attn.v_proj, beta), (attn.out_proj, beta), (layer.fc1, beta), (layer.fc2, beta)):
                    nn.init.xavier_normal_(linear.weight, gain=gain)

    def embed(self, fbank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``fbank`` [B, frames, mel] -> (patch embeddings [B, T, C] after ``layer_norm``,
        encoder input tokens [B, T, D]). Patches are flattened time-major."""
        if fbank.dim() != 3:
            raise ValueError(f"BEATs expects fbank [batch, frames, mel bins], got shape {tuple(fbank.shape)}")
        patches = self.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        patches = self.layer_norm(patches)
        tokens = self.post_extract_proj(patches) if self.post_extract_proj is not None else patches
        return patches, tokens

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder input tokens [B, T, D] -> (features [B, T, D], every layer's output)."""
        return self.encoder(self.dropout_input(tokens))

    def forward(self, fbank: torch.Tensor) -> BEATsOutput:
        patches, tokens = self.embed(fbank)
        features, hidden = self.encode(tokens)
        logits = None
        if self.predictor is not None:
            logits = self.predictor(self.predictor_dropout(features)).mean(dim=1)
        return BEATsOutput(features=features, hidden_states=hidden, patch_embeddings=patches, logits=logits)

    def extract_features(self, waveform: torch.Tensor, sample_rate: int = 16_000) -> BEATsOutput:
        """Waveform [B, samples] -> the official preprocessing (:data:`FBANK`) -> :meth:`forward`."""
        return self(FBANK.compute(waveform, sample_rate).to(self.patch_embedding.weight.device))

    def checkpoint(self, **extra: object) -> dict:
        """The official checkpoint format: ``{'cfg': dict, 'model': state_dict, **extra}``."""
        return {"cfg": self.cfg.to_dict(), "model": self.state_dict(), **extra}


# -- checkpoints ---------------------------------------------------------------------------------


def load_state_dict_strict(model: BEATs, state: dict[str, torch.Tensor], source: str) -> None:
    """Load an official state dict key for key; fail naming every missing, unexpected or
    mis-shaped key. The copies of the shared relative-bias table (``encoder.layers.i``, i > 0)
    must be present like in official checkpoints; only layer 0's is used, as officially."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{source}: the state dict does not match the BEATs model built from its cfg"]
        if missing:
            lines.append(f"missing keys ({len(missing)}): {brief(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {brief(unexpected)}")
        if shapes:
            lines.append(f"shape mismatches ({len(shapes)}): {brief(shapes)}")
        raise ValueError("\n".join(lines))
    shared = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    state = {k: v for k, v in state.items() if not (k.endswith("self_attn.relative_attention_bias.weight") and k != shared)}
    model.load_state_dict(state, strict=False)


def _load_failure(path: Path, error: Exception) -> str:
    """The reason inside torch's ``weights_only`` refusal, without its advice to load unsafely:
    official BEATs checkpoints hold only tensors and plain containers, and load safely. A file
    torch.save never wrote (neither its zip format nor a pickle) is said to be one: torch's own
    error for it is a bare ``KeyError`` of the first byte."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(error), flags=re.DOTALL)
    if found:
        return f"not a file of tensors and plain containers only: {found.group(1).strip().splitlines()[0]}"
    with open(path, "rb") as file:
        head = file.read(1)
    if not zipfile.is_zipfile(path) and head != b"\x80":  # pickle protocol 2+ starts with PROTO
        return "not a file torch.save wrote: neither its zip format nor a pickle"
    return f"{type(error).__name__}: {error}"


def load_beats_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> tuple[BEATs, BEATsConfig]:
    """Load an official-format BEATs checkpoint file (``{'cfg': dict, 'model': state_dict}``).

    Returns the model in eval mode and its config; a fine-tuned checkpoint (``finetuned_model``)
    comes with its ``predictor``. Raises ``ValueError`` naming the file for anything else.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"BEATs checkpoint {path} is a folder; an official BEATs checkpoint is one .pt file")
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle / zip errors have many types
        raise ValueError(f"{path}: not a loadable torch checkpoint ({_load_failure(path, error)})") from error
    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        found = f"a dict with keys {brief(sorted(map(str, checkpoint)))}" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: expected an official BEATs checkpoint, a dict with 'cfg' and 'model'; found {found}")
    cfg = BEATsConfig.from_dict(checkpoint["cfg"], source=str(path))
    model = BEATs(cfg)
    load_state_dict_strict(model, checkpoint["model"], source=str(path))
    return model.eval(), cfg


# -- teacher -------------------------------------------------------------------------------------


class BEATsTeacher(TeacherEncoder):
    """A BEATs backbone as a distillation teacher on cached :class:`KaldiFbank` features.

    ``cnn_features`` are the patch embeddings after ``layer_norm``, averaged over the patches of
    each time step (``[B, frames / patch, embed_dim]``): front-end alignment (eq. 15) compares
    frames in time, and the encoder's token sequence interleaves frequency patches.
    ``hidden_states`` are every layer's output, ``pooled`` the time mean of the last. A fine-tuned
    model's AudioSet ``predictor`` is not used (the :class:`~ascbench.distill.teachers.base.TeacherClassifier`
    brings its own heads) and is dropped.
    """

    def __init__(self, model: BEATs):
        super().__init__()
        if model.predictor is not None:
            model.predictor = None
            del model.predictor_dropout
            model.cfg = replace(model.cfg, finetuned_model=False)
        self.model = model
        self.frontend = FBANK
        self.num_layers = model.cfg.encoder_layers
        self.hidden_size = model.cfg.encoder_embed_dim
        self.cnn_dim = model.cfg.embed_dim

    @classmethod
    def from_config(cls, cfg: BEATsConfig) -> BEATsTeacher:
        return cls(BEATs(replace(cfg, finetuned_model=False)))

    @classmethod
    def from_checkpoint(cls, path: Path | str) -> BEATsTeacher:
        """A teacher from an official-format checkpoint (pre-trained or fine-tuned)."""
        return cls(load_beats_checkpoint(path)[0])

    def forward(self, x: torch.Tensor) -> TeacherOutput:
        out = self.model(x)
        per_time_step = x.shape[-1] // self.model.cfg.input_patch_size  # patches are flattened time-major
        frames = out.patch_embeddings.unflatten(1, (-1, per_time_step)).mean(dim=2)
        return TeacherOutput(cnn_features=frames, hidden_states=out.hidden_states, pooled=out.features.mean(dim=1))


# -- complexity ----------------------------------------------------------------------------------


def beats_macs(cfg: BEATsConfig, frames: int = 98, mel_bins: int = 128) -> int:
    """Multiply-accumulates of one forward pass over ``frames`` x ``mel_bins`` fbank (1 s = 98).

    Counts convolutions, linear layers and the two attention matmuls (scores and weighted sum);
    norms, activations, softmax and additions are left out (the DCASE convention).
    """
    p = cfg.input_patch_size
    tokens = (frames // p) * (mel_bins // p)
    d, c, h = cfg.encoder_embed_dim, cfg.embed_dim, cfg.encoder_attention_heads
    macs = tokens * c * p * p  # patch embedding
    if c != d:
        macs += tokens * c * d
    conv_steps = tokens + 2 * (cfg.conv_pos // 2) - cfg.conv_pos + 1  # computed, incl. the step trimmed off
    macs += conv_steps * d * (d // cfg.conv_pos_groups) * cfg.conv_pos
    layer = 4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * cfg.encoder_ffn_embed_dim
    if cfg.gru_rel_pos:
        layer += tokens * h * (d // h) * 8
    macs += cfg.encoder_layers * layer
    if cfg.finetuned_model:
        macs += tokens * d * cfg.predictor_class
    return macs


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (the shared relative-bias table counted once, as the official count)."""
    return sum(p.numel() for p in model.parameters())
