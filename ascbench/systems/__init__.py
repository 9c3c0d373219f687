"""Systems: the registry plugins register into, and the spec each registration produces."""

from ascbench.systems.registry import (
    PluginProblem,
    Registry,
    SystemLoadError,
    discover,
    model_input_shape,
    register_system,
    validate_system,
)
from ascbench.systems.spec import SystemSpec

__all__ = [
    "PluginProblem",
    "Registry",
    "SystemLoadError",
    "SystemSpec",
    "discover",
    "model_input_shape",
    "register_system",
    "validate_system",
]
