"""Template for a new ascbench system: copy me, rename me, make me yours.

    cp submissions/_template.py submissions/my_system.py

then edit the name in ``@register_system`` and the network below. ascbench discovers every
``.py`` file (or package) in ``submissions/`` whose name does not start with ``_`` — this file is
skipped until you copy it. Check it with ``ascbench systems`` and train it with
``ascbench run --models my-system --fraction 0.25``.

Rules the harness enforces:
- the factory returns the *deployable* ``nn.Module``: the thing whose parameters, MACs and int8
  size are measured. Training-only parts (teachers, projection heads) belong in a recipe.
- the model maps one clip of its frontend's features to ``[batch, 10]`` class scores; for the
  default frontend (the DCASE 2024 baseline log-mel) the input is ``[batch, 1, 256, 65]``.
- depend only on ``ascbench``'s public API (``from ascbench import ...``) and on torch/timm.
"""

from __future__ import annotations

from torch import nn

from ascbench import BaselineMel, register_system


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_system(
    "my-system",  # <- the name used on the command line and the leaderboard
    frontend=BaselineMel(),  # or KaldiFbank(), RawWaveform(16_000)
    description="A small depthwise-separable CNN (the submission template)",
    reference="your paper or technical report",
    # recipe=None -> the default supervised recipe (AdamW, cosine with warm-up, CE, FMS, ADIR)
)
def my_system() -> nn.Module:
    """Build the deployable network."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        _block(16, 32, 2),
        _block(32, 64, 2),
        _block(64, 64, 2),
        nn.Conv2d(64, 10, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
