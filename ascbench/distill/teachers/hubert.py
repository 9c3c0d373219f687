"""HuBERT (Hsu et al., 2021) as an ascbench teacher: model sizes, loading, and the encoder wrapper.

The model is ``transformers``' :class:`~transformers.HubertModel` on 16 kHz waveforms, so any
HF-format HuBERT directory (``facebook/hubert-base-ls960`` saved locally, or a teacher this
project pre-trained) loads with :func:`load_hubert`. Two sizes are built from scratch:

- ``small`` (the CPU default): 7-layer conv feature encoder with 64 channels (the paper's kernel
  and stride layout, 320-sample total stride -> 49 frames of 20 ms per 1-s clip), 4 transformer
  layers of width 192 with 4 heads and FFN 768: 2.0 M parameters, 136 M MACs per 1-s clip
  (fvcore: conv encoder 41 M, transformer 95 M). It pre-trains on a few thousand 1-s clips in
  minutes on two CPU cores.
- ``base``: HuBERT-Base (512-channel conv encoder, 12 layers of 768, 12 heads, FFN 3072), 94.4 M
  parameters, for GPU users.

Both use ``layerdrop = 0``: the hierarchical KD reads every layer's hidden state, which a
skipped layer would not produce.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import HubertConfig, HubertModel
from transformers.utils import logging as hf_logging

from ascbench.features.frontends import RawWaveform
from ascbench.distill.teachers.base import TeacherEncoder, TeacherOutput, brief

HUBERT_SAMPLE_RATE = 16_000

HUBERT_SIZES: dict[str, dict] = {
    "small": dict(
        hidden_size=192,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=768,
        conv_dim=(64,) * 7,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=8,
        activation_dropout=0.0,
    ),
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
}
"""Architectures by name; the conv kernels/strides are HF's defaults (10,3,3,3,3,2,2 / 5,2,...,2)."""

_COMMON = dict(layerdrop=0.0, mask_time_min_masks=1)
"""Every layer always runs (KD reads them all); fine-tuning SpecAugment masks >= 1 span of 10
frames per clip (HF's default of 2 would hide 40 % of a 1-s clip)."""


def hubert_config(size: str = "small", **overrides) -> HubertConfig:
    """The :class:`HubertConfig` of a named size, with ``overrides`` applied (tests use tiny ones)."""
    if size not in HUBERT_SIZES:
        raise ValueError(f"unknown HuBERT size {size!r}; expected one of {sorted(HUBERT_SIZES)}")
    return HubertConfig(**{**HUBERT_SIZES[size], **_COMMON, **overrides})


def build_hubert(config: HubertConfig | str = "small", seed: int | None = None) -> HubertModel:
    """A randomly initialised HubertModel (``seed`` makes the initialisation reproducible)."""
    if isinstance(config, str):
        config = hubert_config(config)
    if seed is not None:
        torch.manual_seed(seed)
    return HubertModel(config)


OPTIONAL_WEIGHTS = frozenset({"masked_spec_embed"})
"""Weights a HuBERT checkpoint may lack: the mask embedding is a pre-training parameter (saved
only when the config enables masking), and fine-tuning with SpecAugment starts it afresh."""


def load_hubert(directory: Path | str) -> HubertModel:
    """Load a local HF-format HuBERT directory (``config.json`` + weights); never downloads.

    Strict where ``from_pretrained`` is lenient: a weight the folder lacks, or one of another
    shape, is refused naming the folder and the keys, rather than left at its random
    initialisation (a partly random teacher trains, and its students are recorded as if it were
    the checkpoint). Task heads (``lm_head`` of a ``HubertForCTC``, a classifier) are ignored.
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} is not a HuBERT checkpoint directory: it has no config.json")
    with _quiet_transformers():  # a wav2vec2 config.json makes transformers warn before we refuse it
        try:
            config = HubertConfig.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ValueError(f"{directory}/config.json: not a readable HF config ({error})") from error
    if config.model_type != "hubert":
        raise ValueError(f"{directory}/config.json describes a {config.model_type!r} model, expected 'hubert'")
    with _quiet_transformers():
        try:
            model, info = HubertModel.from_pretrained(
                directory, config=config, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True
            )
        except (OSError, SafetensorError) as error:  # no weights file; a truncated or corrupt safetensors
            raise ValueError(f"{directory}: no loadable HuBERT weights ({type(error).__name__}: {error})") from error
    problems = []
    missing = sorted(set(info["missing_keys"]) - OPTIONAL_WEIGHTS)
    if missing:
        problems.append(f"missing weights ({len(missing)}): {brief(missing)}")
    mismatched = sorted(str(entry[0] if isinstance(entry, tuple) else entry) for entry in info["mismatched_keys"])
    if mismatched:
        problems.append(f"weights of another shape than config.json says ({len(mismatched)}): {brief(mismatched)}")
    if problems:
        raise ValueError(f"{directory}: the weights do not match its config.json: " + "; ".join(problems))
    return model


def hubert_normalizes_input(directory: Path | str) -> bool:
    """Whether the checkpoint's feature extractor normalises each waveform to zero mean, unit
    variance (``do_normalize`` in ``preprocessor_config.json``; large HuBERTs were trained so).
    A folder without that file is taken as unnormalised, as this project's own teachers are."""
    directory = Path(directory)
    if not (directory / "preprocessor_config.json").is_file():
        return False
    from transformers import Wav2Vec2FeatureExtractor

    try:
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{directory}/preprocessor_config.json: not a readable feature-extractor config ({error})") from error
    return bool(extractor.do_normalize)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No transformers progress bar or load report inside our own progress output."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def save_hubert(model: HubertModel, directory: Path | str) -> Path:
    """Save ``model`` in HF format (``config.json`` + safetensors), loadable by :func:`load_hubert`."""
    with _quiet_transformers():
        model.save_pretrained(directory)
    return Path(directory)


class HubertTeacher(TeacherEncoder):
    """A :class:`HubertModel` exposed through the teacher interface.

    ``cnn_features`` are the conv feature encoder's output ``[B, 49, conv_dim[-1]]`` (the
    paper's Z_T of eq. 14, before HuBERT's own projection); ``hidden_states`` the outputs of the
    transformer layers (HF's ``hidden_states[1:]``; entry 0 is the encoder input).
    """

    def __init__(self, model: HubertModel, normalize_input: bool = False):
        super().__init__()
        self.normalize_input = normalize_input
        model.config.layerdrop = 0.0  # every layer must run: layer-wise heads read all of them
        self.model = model
        self.frontend = RawWaveform(HUBERT_SAMPLE_RATE)
        self.num_layers = model.config.num_hidden_layers
        self.hidden_size = model.config.hidden_size
        self.cnn_dim = model.config.conv_dim[-1]

    def forward(self, x: torch.Tensor, mask_time_indices: torch.Tensor | None = None) -> TeacherOutput:
        """``x`` waveforms ``[B, samples]`` at 16 kHz; ``mask_time_indices`` ``[B, frames]`` (bool)
        replaces those frames by HuBERT's learned mask embedding (masked prediction pre-training)."""
        if self.normalize_input:  # as Wav2Vec2FeatureExtractor(do_normalize=True), per clip
            x = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + 1e-7)
        captured: list[torch.Tensor] = []
        hook = self.model.feature_extractor.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            out = self.model(x, mask_time_indices=mask_time_indices, output_hidden_states=True)
        finally:
            hook.remove()
        hidden = list(out.hidden_states[1:])
        if len(hidden) != self.num_layers:
            raise RuntimeError(f"HuBERT returned {len(hidden)} layer outputs, expected {self.num_layers}")
        return TeacherOutput(cnn_features=captured[0].transpose(1, 2), hidden_states=hidden, pooled=hidden[-1].mean(dim=1))
