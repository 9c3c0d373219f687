"""A recipe's run options: one frozen dataclass per recipe, parsed generically, recorded whole.

Why one typed object: an option (a teacher, a pinned teacher seed, pool KD, ablated components)
used to be threaded by hand through the CLI, the request, the grid, the run config, an untyped
dict of the recipe context and the record, and the run's identity was a name string that other
modules parsed back. Now a recipe names its options type, validates an instance before anything
trains (``recipe.validate(options, profile)``), and reads it from the context; the CLI fills it
from ``--set key=value`` (its shorthand flags are ``--set`` spelled out), the record keeps it
whole, and the name people read (``hubert-mobilenetv2~no-fms@teacher-seed0``) is derived from it
and never read back. Adding an option is a field here (or in a recipe's own subclass) and the
code that uses it.

The derived name keeps the spelling records have carried all along, so a record written before
options existed names the same run as one written now (:func:`legacy_options` reads its options
from its stored config).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ascbench.ablation import ABLATABLE
from ascbench.results.provenance import UNSET_LEAVES_IDENTITY

if TYPE_CHECKING:
    from ascbench.distill.sources import TeacherSource

ABLATION_SEPARATOR = "~no-"
SOURCE_SEPARATOR = "@"


def _ablate_label(value: tuple[str, ...]) -> str:
    return ABLATION_SEPARATOR + "+".join(sorted(value))


def _teacher_label(value: str | None) -> str:
    from ascbench.distill.sources import parse_teacher

    return SOURCE_SEPARATOR + "teacher-" + (parse_teacher(value).label() if value is not None else "none")


@dataclass(frozen=True)
class RunOptions:
    """What every recipe accepts: the teacher it learns from (if any) and components switched off
    (the supervised recipe's options; distillation adds its own, see ``DistillOptions``).

    A field's ``metadata["label"]`` spells it in the run's name; a field without one is spelled
    ``@name=value`` whenever it differs from its default.
    """

    teacher: str | None = field(default=None, metadata={"label": _teacher_label, "help": (
        "Teacher source: self-supervised | checkpoint:PATH | logits:FILE | runs:SYS[,SYS...]; none: no teacher")})
    ablate: tuple[str, ...] = field(default=(), metadata={"label": _ablate_label, "help": (
        f"Components switched off, from {', '.join(ABLATABLE)}")})
    epochs: int | None = field(default=None, metadata={"label": lambda value: f"{SOURCE_SEPARATOR}epochs{value}", "help": (
        "Train exactly this many epochs (the profile's step floor and cap off): equal-step controls; none: the profile's")})
    warmup_steps: int | None = field(default=None, metadata={"label": lambda value: f"{SOURCE_SEPARATOR}warmup{value}", UNSET_LEAVES_IDENTITY: True, "help": (
        "Linear warm-up steps of the schedule; none: the profile's (dcase: 2,000, about 10 % of TAU split25's steps, far more on a small split)")})
    amp: str | None = field(default=None, metadata={"label": lambda value: f"{SOURCE_SEPARATOR}amp-{value}", UNSET_LEAVES_IDENTITY: True, "help": (
        "Mixed precision of training: off (fp32), bf16, fp16 or auto (autocast on CUDA); none: the profile's (dcase: fp32, as the official code)")})
    roll: str | None = field(default=None, metadata={"label": lambda value: f"{SOURCE_SEPARATOR}roll-{value}", UNSET_LEAVES_IDENTITY: True, "help": (
        "Time roll: waveform (whole samples of the cached 32 kHz waveform, mel recomputed, as the official code) or frames (the cached "
        "log-mel by whole frames, faster); none: the profile's (dcase: waveform)")})

    def __post_init__(self) -> None:
        ablate = tuple(sorted(set(self.ablate)))
        unknown = [name for name in ablate if name not in ABLATABLE]
        if unknown:
            raise ValueError(f"ablate={','.join(unknown)}: unknown component; choose from {', '.join(ABLATABLE)}")
        object.__setattr__(self, "ablate", ablate)
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: expected a positive number of epochs")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps}: expected 0 or more steps")
        if self.roll not in (None, "frames", "waveform"):
            raise ValueError(f"roll={self.roll}: expected frames or waveform")
        if self.amp is not None:
            from ascbench.training.config import AmpMode

            if self.amp not in typing.get_args(AmpMode):
                raise ValueError(f"amp={self.amp}: expected one of {', '.join(typing.get_args(AmpMode))}")
        if self.teacher is not None:
            from ascbench.distill.sources import parse_teacher

            object.__setattr__(self, "teacher", parse_teacher(self.teacher).spec)  # one spelling per source

    @property
    def ablated(self) -> frozenset[str]:
        return frozenset(self.ablate)

    @property
    def source(self) -> "TeacherSource | None":
        """The parsed teacher source; None without a teacher."""
        from ascbench.distill.sources import parse_teacher

        return parse_teacher(self.teacher) if self.teacher else None

    def label(self) -> str:
        """The run's name suffix for people (``~no-fms+qat@teacher-seed0``), from the fields that
        differ from their defaults: the ablations first, then the fields in declaration order."""
        defaults = type(self)()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            spell = f.metadata.get("label")
            parts.append(spell(value) if spell else f"{SOURCE_SEPARATOR}{f.name}={_text(value)}")
        ablation = [p for p in parts if p.startswith(ABLATION_SEPARATOR)]
        return "".join(ablation + [p for p in parts if not p.startswith(ABLATION_SEPARATOR)])

    def to_dict(self) -> dict[str, Any]:
        """Every field, but the later ones still at their defaults: a record made today then reads
        as one made before they existed."""
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not (f.metadata.get(UNSET_LEAVES_IDENTITY) and getattr(self, f.name) == f.default)
        }

    def digest(self) -> str:
        """16 hex digits of the options type and every field: what, with the system's name, a
        run's record is keyed by."""
        text = json.dumps([type(self).__qualname__, self.to_dict()], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def option_names(options_type: type[RunOptions]) -> list[str]:
    return [f.name for f in dataclasses.fields(options_type)]


def option_help(options_type: type[RunOptions]) -> dict[str, str]:
    """Each field's one-line help (``ascbench systems --options``)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(options_type)}


def parse_settings(pairs: Iterable[str]) -> dict[str, str]:
    """``["teacher=runs:cp-mobile", "pool_kd=1"]`` -> a dict; a later key overrides an earlier one,
    as a later flag does."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not separator or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set teacher=runs:cp-mobile")
        settings[key] = value.strip()
    return settings


def with_settings(options: RunOptions, settings: Mapping[str, str], who: str = "") -> RunOptions:
    """``options`` with each ``key=value`` of ``settings`` converted to its field's type.

    Every key must be a field of the options type: a misspelt one is an error naming the fields,
    never a silently ignored option."""
    hints = typing.get_type_hints(type(options))
    names = option_names(type(options))
    changes: dict[str, object] = {}
    for key, text in settings.items():
        if key not in names:
            raise ValueError(f"{who + ': ' if who else ''}no option {key!r}; its recipe's options are {', '.join(names)}")
        try:
            changes[key] = convert(text, hints[key])
        except ValueError as error:
            raise ValueError(f"--set {key}={text}: {error}") from None
    try:
        return dataclasses.replace(options, **changes)
    except ValueError as error:
        raise ValueError(f"{who + ': ' if who else ''}{error}") from None


def convert(text: str, hint: object) -> object:
    """A ``--set`` value as the field's type: ``none`` for an optional field, comma-separated for
    a tuple, ``true``/``false`` for a bool."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", ""):
            if type(None) in args:
                return None
        return convert(text, next(a for a in args if a is not type(None)))
    if origin is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    return text


def legacy_options(config: Mapping[str, Any], options_type: type[RunOptions] = RunOptions) -> RunOptions:
    """The options of a record written before records kept them, read from its stored run config
    (``ablate``, ``teacher_checkpoint``, ``pool_kd``), never from its name. Such a config holds the
    teacher seed a run used but not whether it was pinned, so ``teacher_seed`` stays unset: what it
    decided is in the record's key, which keeps its old name."""
    names = set(option_names(options_type))
    values: dict[str, object] = {}
    if config.get("ablate"):
        values["ablate"] = tuple(config["ablate"])
    if config.get("teacher_checkpoint"):
        values["teacher"] = f"checkpoint:{config['teacher_checkpoint']}"
    if "pool_kd" in names and float(config.get("pool_kd") or 0.0) > 0:
        values["pool_kd"] = float(config["pool_kd"])
    return options_type(**{k: v for k, v in values.items() if k in names})
