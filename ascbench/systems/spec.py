"""What a system is: a named deployable model, its frontend, and how it is trained.

Plugins describe themselves with :func:`ascbench.register_system` on a model factory, in the
style of timm's ``@register_model``: the factory builds the *deployable* ``nn.Module`` (the thing
whose parameters, MACs and int8 size are measured); everything used only in training (teachers,
projections, auxiliary heads) belongs to the recipe, so it is never counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from torch import nn

from ascbench.features.frontends import BaselineMel, Frontend

if TYPE_CHECKING:  # recipes live above systems in the data flow; only their type is named here
    from ascbench.recipes.base import Recipe

Family = Literal["baseline", "submission", "teacher"]
"""``teacher``: a larger network trained on the split to teach students (``--teacher runs:SYS``);
``--models all`` leaves it out (name it to run it, or let an ensemble train it)."""


@dataclass(frozen=True)
class SystemSpec:
    """A registered system. ``origin`` names the plugin that registered it, for error messages."""

    name: str
    build_model: Callable[[], nn.Module]
    frontend: Frontend = field(default_factory=BaselineMel)
    family: Family = "submission"
    description: str = ""
    reference: str = ""
    paper_label: str = ""
    """The label the seed paper uses (BASE_I, BASE_II, BASE_III, H_M), if any."""
    recipe: "Recipe | None" = None
    """How to train it; None means the default supervised recipe."""
    load: Callable[[Path], nn.Module] | None = None
    """Builds a trained model from a checkpoint; None means ``build_model`` + a state dict."""
    n_classes: int = 10
    origin: str = ""

    def summary(self) -> dict[str, Any]:
        """The metadata that travels into every record."""
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "reference": self.reference,
            "paper_label": self.paper_label,
            "frontend": self.frontend.name,
            "frontend_key": self.frontend.key(),
            "origin": self.origin,
        }
