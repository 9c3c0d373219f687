"""Turn a ``--data`` value into a data set directory: a path, or a name of the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

SYNTH_NAME = "synth-tau22"
DEFAULT_SYNTH_SIZE = "small"


def resolve_data(
    data: str | Path | None, home: Path | str | None = None, progress: bool = True, log: Callable[[str], None] | None = None
) -> Path:
    """``None``/``synth-tau22`` → the small synthetic set (generated on first use, said through
    ``log``); ``synth-tau22-<size>`` → that size; anything else must be a TAU22-layout directory."""
    from ascbench.data.synth import ensure_synth  # generating is the exception, not the rule

    name = SYNTH_NAME if data is None else str(data)
    if name == SYNTH_NAME:
        return ensure_synth(size=DEFAULT_SYNTH_SIZE, seed=0, home=home, progress=progress, log=log)
    if name.startswith(SYNTH_NAME + "-") and not Path(name).exists():
        size = name[len(SYNTH_NAME) + 1 :]
        return ensure_synth(size=size, seed=0, home=home, progress=progress, log=log)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"--data {name}: no such directory; give a TAU22-layout directory (with meta.csv) "
            f"or {SYNTH_NAME} / {SYNTH_NAME}-tiny|small|medium for the embedded synthetic set"
        )
    return path


def pending_synthetic(data: str | Path | None, home: Path | str | None = None) -> str | None:
    """The size of the embedded set ``data`` names when it is not generated yet (None otherwise):
    what ``run --dry-run`` plans for without generating it."""
    from ascbench.data.synth import SynthConfig, default_synth_dir, is_complete

    name = SYNTH_NAME if data is None else str(data)
    if name == SYNTH_NAME:
        size = DEFAULT_SYNTH_SIZE
    elif name.startswith(SYNTH_NAME + "-") and not Path(name).exists():
        size = name[len(SYNTH_NAME) + 1 :]
    else:
        return None
    config = SynthConfig.preset(size, 0)
    return None if is_complete(default_synth_dir(size, 0, home), config) else size


def recorded_data(value: str) -> tuple[str, str | None]:
    """``--data`` of a command that reads records: the name records carry and, for a directory,
    its content fingerprint.

    Why a directory is accepted: ``run --data DIR`` is how a user names the data, so the same
    value must find that run's records; records carry the data set's *name* (``tau22-layout-DIR``,
    ``synth-tau22-tiny``), which the user never typed. A directory stands for exactly its
    content (name and fingerprint), so another copy with other labels is not mixed in.
    ``synth-tau22`` is the small set, as for ``run``."""
    if value == SYNTH_NAME:
        return f"{SYNTH_NAME}-{DEFAULT_SYNTH_SIZE}", None
    path = Path(value).expanduser()
    if not path.is_dir():
        return value, None
    from ascbench.data.reader import load_dataset

    dataset = load_dataset(path)
    return dataset.name, dataset.fingerprint
