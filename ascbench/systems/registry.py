"""The system registry: ``@register_system`` and plugin discovery.

Systems come from three places, all discovered, none imported by name: the ``baselines``
package and third-party packages declared in the ``ascbench.systems`` entry-point group, and
``.py`` files or packages dropped into a ``submissions/`` folder. A plugin that fails to import,
registers a name twice, or builds a model with the wrong output is reported with its origin and
skipped; every other system stays usable, because one broken submission must not take a whole
benchmark down. "Fails" includes exiting: a submission that parses its own command line at import
(``argparse``'s ``parse_args()`` exits with status 2 on ascbench's arguments) or calls
``sys.exit()`` is a plugin problem like any exception (:data:`PLUGIN_ERRORS`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ascbench.features.frontends import BaselineMel, Frontend
from ascbench.systems.spec import SystemSpec

ENTRY_POINT_GROUP = "ascbench.systems"
SUBMISSIONS_ENV = "ASCBENCH_SUBMISSIONS"


class SystemLoadError(Exception):
    """A system cannot be used (unknown, or broken); the message names the plugin."""


PLUGIN_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit)
"""What plugin code may raise that costs only that plugin (or that run): any error, and an exit.
An exit is there because plugins are scripts first: ``argparse``'s ``parse_args()`` at import
exits on ascbench's own command line, and a ``sys.exit()`` in a factory would otherwise end the
whole command with the plugin's status. ``KeyboardInterrupt`` is not a plugin's: it is the user
stopping the command, and must still stop it."""


def describe_error(error: BaseException) -> str:
    """``Type: message at file:line`` of the innermost frame of ``error``'s traceback.

    When that frame is library code (the standard library, site-packages: argparse's ``exit``,
    torch's ``Module.__getattr__``), the innermost frame outside it follows as ``(from
    file:line)``: that is the plugin's line the author has to look at. The location goes on the
    message's first line, which is the line summaries keep.
    """
    message = str(error)
    first, _, rest = message.partition("\n")
    text = f"{type(error).__name__}: {first}" if message else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    if frames:
        innermost = frames[-1]
        text += f" at {innermost.filename}:{innermost.lineno}"
        if _is_library(innermost.filename):
            own = next((f for f in reversed(frames) if not _is_library(f.filename)), None)
            if own is not None:
                text += f" (from {own.filename}:{own.lineno})"
    return f"{text}\n{rest}" if rest else text


SITE_FOLDERS = ("site-packages", "dist-packages")
"""Names of the folders packages are installed in (``dist-packages``: Debian's Python)."""


def _library_prefixes() -> tuple[str, ...]:
    """The standard library and the folders packages are installed in: this interpreter's own
    (sysconfig), and every site folder on ``sys.path`` besides. torch may be in one of those
    others: the user site, Debian's ``dist-packages`` (also under a venv made with
    ``--system-site-packages``), or another environment's site-packages that a ``.pth`` adds."""
    paths = sysconfig.get_paths()
    folders = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    folders.update(p for p in sys.path if p and os.path.basename(os.path.normpath(p)) in SITE_FOLDERS)
    return tuple(os.path.join(os.path.normcase(os.path.abspath(f)), "") for f in folders)


def _is_library(filename: str) -> bool:
    """Frozen import machinery, the standard library and installed packages: not a plugin's code."""
    if filename.startswith("<"):
        return True
    return os.path.normcase(os.path.abspath(filename)).startswith(_library_prefixes())


@dataclass(frozen=True)
class PluginProblem:
    origin: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"


@dataclass
class Registry:
    """Registered systems by name, plus the problems met while discovering them."""

    systems: dict[str, SystemSpec] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    _origin: str = "<direct>"

    def add(self, spec: SystemSpec) -> None:
        existing = self.systems.get(spec.name)
        if existing is not None:
            self.problems.append(
                PluginProblem(
                    spec.origin,
                    f"system {spec.name!r} is already registered by {existing.origin}; this second "
                    "registration is ignored (rename one of them)",
                )
            )
            return
        self.systems[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self.systems)

    def get(self, name: str) -> SystemSpec:
        try:
            return self.systems[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            broken = [p for p in self.problems if name in p.message or name in p.origin]
            hint = f" (plugin problem: {broken[0]})" if broken else ""
            raise SystemLoadError(f"unknown system {name!r}{hint}; registered systems: {known}") from None

    def select(self, models: str) -> list[SystemSpec]:
        """``all`` or a comma-separated list of names -> specs, in the order given (a name given
        twice is one system: it would otherwise run twice into the same record).

        ``all`` is every system but the ``teacher`` family: teachers are not candidates for the
        board's limits, and a ``runs:`` ensemble trains the ones it needs."""
        if models.strip() == "all":
            return [self.systems[n] for n in self.names() if self.systems[n].family != "teacher"]
        names = list(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
        if not names:
            raise SystemLoadError("no system named: give --models all or a comma-separated list")
        return [self.get(n) for n in names]


_ACTIVE: list[Registry] = [Registry()]
_BY_MODULE: dict[str, list[SystemSpec]] = {}
"""Specs each imported module registered: Python imports a module once per process, so a later
:func:`discover` replays them instead of finding an already-imported plugin empty."""


def register_system(
    name: str,
    *,
    frontend: Frontend | None = None,
    family: str = "submission",
    description: str = "",
    reference: str = "",
    paper_label: str = "",
    recipe: Any = None,
    load: Callable[[Path], nn.Module] | None = None,
    n_classes: int = 10,
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Register a model factory as a system (the factory is returned unchanged, as in timm).

    ``frontend`` defaults to the DCASE 2024 baseline log-mel; ``recipe`` to the supervised recipe.
    A ``frontend`` that is not a :class:`Frontend` instance raises ``TypeError`` here, at import
    (the loader reports it as a plugin problem), not later in whichever command first uses it.
    """
    if frontend is not None and not isinstance(frontend, Frontend):
        raise TypeError(
            f"register_system({name!r}): frontend must be a Frontend instance such as BaselineMel() or "
            f"KaldiFbank() from ascbench.features.frontends, got {type(frontend).__name__} {frontend!r}"
        )

    def decorator(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        registry = _ACTIVE[-1]
        origin = registry._origin if registry._origin != "<direct>" else getattr(factory, "__module__", "<direct>")
        spec = SystemSpec(
                name=name,
                build_model=factory,
                frontend=frontend if frontend is not None else BaselineMel(),
                family=family,  # type: ignore[arg-type]
                description=description or (factory.__doc__ or "").strip().split("\n")[0],
                reference=reference,
                paper_label=paper_label,
                recipe=recipe,
                load=load,
                n_classes=n_classes,
                origin=origin,
            )
        _BY_MODULE.setdefault(getattr(factory, "__module__", "<direct>"), []).append(spec)
        registry.add(spec)
        return factory

    return decorator


def discover(submissions: Path | str | None = None, *, entry_points: bool = True) -> Registry:
    """Build a fresh registry from the entry-point plugins and a submissions folder.

    ``submissions`` defaults to ``$ASCBENCH_SUBMISSIONS``, else ``./submissions`` and the
    ``submissions/`` folder of the ascbench checkout (when installed from one).
    """
    registry = Registry()
    _ACTIVE.append(registry)
    try:
        if entry_points:
            for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                _load_plugin(registry, f"entry point {ep.name!r} ({ep.value})", lambda ep=ep: ep.load())
        for folder in submission_folders(submissions):
            for path in sorted(folder.iterdir()):
                if path.name.startswith(("_", ".")):
                    continue
                if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
                    _load_plugin(registry, f"submission {path}", lambda path=path: _import_path(path))
    finally:
        _ACTIVE.pop()
    return registry


def submission_folders(submissions: Path | str | None = None) -> list[Path]:
    """The folders searched for dropped-in submissions, without repeats.

    ``submissions`` (``--submissions``) replaces the defaults; so does ``$ASCBENCH_SUBMISSIONS``
    (folders separated by :data:`os.pathsep`). A folder named either way must exist: a typo would
    otherwise drop the user's systems without a word, and the run would fail later as "unknown
    system" or, worse, benchmark only the baselines. The defaults (``./submissions`` and the
    checkout's ``submissions/``) are used when they exist.
    """
    if submissions is not None:
        candidates, named = [Path(submissions)], "--submissions"
    elif os.environ.get(SUBMISSIONS_ENV):
        candidates, named = [Path(p) for p in os.environ[SUBMISSIONS_ENV].split(os.pathsep) if p], f"${SUBMISSIONS_ENV}"
    else:
        candidates, named = [Path.cwd() / "submissions", Path(__file__).resolve().parents[2] / "submissions"], None
    seen: list[Path] = []
    for c in candidates:
        c = c.expanduser().resolve()
        if named is not None and not c.is_dir():
            what = "is not a directory" if c.exists() else "no such directory"
            raise SystemLoadError(f"{named} {c}: {what}; expected a folder of submission plugins (.py files or packages)")
        if c.is_dir() and c not in seen:
            seen.append(c)
    return seen


def _load_plugin(registry: Registry, origin: str, load: Callable[[], Any]) -> None:
    before = dict(registry.systems)
    problems_before = len(registry.problems)
    previous, registry._origin = registry._origin, origin
    try:
        fresh = {name for name in _BY_MODULE}
        loaded = load()
        if isinstance(loaded, ModuleType):
            _replay(registry, loaded.__name__, fresh)
        if isinstance(loaded, ModuleType) and hasattr(loaded, "__path__"):
            for info in pkgutil.iter_modules(loaded.__path__, loaded.__name__ + "."):
                already = info.name in sys.modules
                importlib.import_module(info.name)
                if already:
                    _replay(registry, info.name, fresh)
        elif callable(loaded) and not isinstance(loaded, ModuleType):
            loaded()  # an entry point may name a function that registers systems
        if registry.systems.keys() == before.keys() and len(registry.problems) == problems_before:
            # a forgotten @register_system (or a helper module) would otherwise vanish silently
            registry.problems.append(
                PluginProblem(origin, "registers no system (decorate a model factory with @register_system; "
                              "name helper modules with a leading '_' so that they are skipped)")
            )
    except PLUGIN_ERRORS as exc:  # a broken (or exiting) plugin must not break the others
        registry.systems = before
        registry.problems.append(PluginProblem(origin, f"failed to import: {describe_error(exc)}"))
    finally:
        registry._origin = previous


def _replay(registry: Registry, module: str, before: set[str]) -> None:
    """Re-add the specs of a module imported by an earlier discovery (not by this one)."""
    if module not in before:
        return
    for spec in _BY_MODULE.get(module, []):
        if registry.systems.get(spec.name) is not spec:
            registry.add(replace(spec, origin=registry._origin))


def _import_path(path: Path) -> ModuleType:
    module_name = f"ascbench_submissions.{path.stem.replace('-', '_')}"
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    _BY_MODULE.pop(module_name, None)  # executed afresh: its old registrations are stale
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def validate_system(spec: SystemSpec) -> nn.Module:
    """Build the deployable model and check one clip gives ``[1, n_classes]`` scores.

    Returns the built model; raises :class:`SystemLoadError` naming the plugin otherwise, so a bad
    submission fails before any training time is spent on it (an exit in its factory or forward
    included: :data:`PLUGIN_ERRORS`).
    """
    try:
        model = spec.build_model()
    except PLUGIN_ERRORS as exc:
        raise SystemLoadError(f"{spec.name} ({spec.origin}): build_model() failed: {describe_error(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise SystemLoadError(f"{spec.name} ({spec.origin}): build_model() returned {type(model).__name__}, expected an nn.Module")
    shape = model_input_shape(spec)
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except PLUGIN_ERRORS as exc:
        raise SystemLoadError(
            f"{spec.name} ({spec.origin}): forward pass on a {list(shape)} input failed: {describe_error(exc)}"
        ) from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, spec.n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SystemLoadError(
            f"{spec.name} ({spec.origin}): model output has shape {got} for one clip; expected (1, {spec.n_classes})"
        )
    return model


def model_input_shape(spec: SystemSpec, batch: int = 1) -> tuple[int, ...]:
    """Input shape of the deployable model: [B, 1, F, T] for spectrograms, [B, samples] for waveforms."""
    feat = spec.frontend.output_shape()
    return (batch, *feat) if len(feat) == 1 else (batch, 1, *feat)


def iter_specs(registry: Registry) -> Iterator[SystemSpec]:
    yield from (registry.systems[n] for n in registry.names())
