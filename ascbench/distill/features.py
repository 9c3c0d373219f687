"""Student feature taps: capture named intermediate outputs without changing the forward pass.

Distillation needs the student's front-end map and stage outputs, but the deployable model must
stay exactly what is measured and quantized, so features are taken with forward hooks on named
submodules (any student works, not only the MobileNetV2 one) rather than by a second forward.
The pooling helpers turn maps into what the losses and the router compare.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from types import TracebackType

import torch
from torch import nn


class FeatureTaps:
    """Context manager recording the outputs of named submodules during forward passes.

    >>> with FeatureTaps(model, ["bn1", "blocks.2"]) as taps:
    ...     logits = model(x)
    >>> taps["blocks.2"].shape  # [B, C, F, T]

    Outputs keep their autograd graph (losses on them train the student). Each forward
    overwrites the previous outputs; hooks are removed on exit.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        for name in names:
            if name not in modules:
                near = difflib.get_close_matches(name, modules, n=3)
                raise KeyError(f"FeatureTaps: {type(model).__name__} has no submodule {name!r}; close names: {near}")
        self.names = tuple(names)
        self._modules = [modules[name] for name in self.names]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.outputs: dict[str, torch.Tensor] = {}

    def __enter__(self) -> FeatureTaps:
        for name, module in zip(self.names, self._modules):
            self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _recorder(self, name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return hook

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.outputs:
            raise KeyError(f"FeatureTaps: no output recorded for {name!r} (run a forward pass inside the `with`)")
        return self.outputs[name]

    def take(self, names: Sequence[str]) -> list[torch.Tensor]:
        return [self[name] for name in names]


def _check_map(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{what}: expected a student feature map [B, C, F, T], got shape {tuple(x.shape)}")


def frame_sequence(x: torch.Tensor) -> torch.Tensor:
    """Student map [B, C, F, T] -> frame sequence [B, T, C] (mean over frequency)."""
    _check_map(x, "frame_sequence")
    return x.mean(dim=2).transpose(1, 2)


def pool_student(x: torch.Tensor) -> torch.Tensor:
    """Student map [B, C, F, T] -> clip vector [B, C] (global average)."""
    _check_map(x, "pool_student")
    return x.mean(dim=(2, 3))


def pool_teacher(h: torch.Tensor) -> torch.Tensor:
    """Teacher hidden states [B, T, D] -> clip vector [B, D] (mean over frames)."""
    if h.dim() != 3:
        raise ValueError(f"pool_teacher: expected teacher hidden states [B, T, D], got shape {tuple(h.shape)}")
    return h.mean(dim=1)


def tap_channels(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> list[int]:
    """Channel count of each tapped output, found by one forward pass on zeros (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FeatureTaps(model, names) as taps:
            model(torch.zeros(1, *input_shape))
        return [int(t.shape[1]) for t in taps.take(names)]
    finally:
        model.train(was_training)


def pooled_taps(model: nn.Module, names: Sequence[str], x: torch.Tensor, batch_size: int = 64) -> list[torch.Tensor]:
    """Clip vectors [N, C] of each tapped map over the inputs ``x`` [N, ...] (eval mode, no grad).

    What the router (:func:`ascbench.distill.routing.route`) compares with teacher layers.
    """
    was_training = model.training
    model.eval()
    chunks: list[list[torch.Tensor]] = [[] for _ in names]
    try:
        with torch.no_grad(), FeatureTaps(model, names) as taps:
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size])
                for chunk, out in zip(chunks, taps.take(names)):
                    chunk.append(pool_student(out))
    finally:
        model.train(was_training)
    return [torch.cat(chunk) for chunk in chunks]
