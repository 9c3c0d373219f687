"""``synth-tau22``: a deterministic synthetic data set in the exact TAU22 Mobile layout.

No TAU data can be downloaded here, so every command defaults to this stand-in. It is built to
have the structure that makes TAU hard (confusable classes, location and city variation,
parallel recordings, unseen devices), so that model rankings on it mean something; no number
measured on it is a TAU result.
"""

from ascbench.data.synth.config import GENERATOR, SIZES, VERSION, SynthConfig
from ascbench.data.synth.generate import default_synth_dir, ensure_synth, generate, is_complete

__all__ = ["GENERATOR", "SIZES", "VERSION", "SynthConfig", "default_synth_dir", "ensure_synth", "generate", "is_complete"]
