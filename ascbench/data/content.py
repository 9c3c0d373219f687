"""The digest of a data set's audio bytes: what the data set fingerprint cannot see.

:func:`ascbench.data.fingerprint.content_fingerprint` hashes the audio files' names and sizes
only, and every TAU (and synthetic) clip has the same size, so audio rewritten in place under the
same name and format (a processing script writing back into ``audio/``, a regenerated set) keeps
the fingerprint, and every cache computed from the old audio would be trusted. The fingerprint
stays as it is, because records and committed leaderboards carry it; caches check this digest
as well.

Hashing the real 230,350 clips (about 30 GB) takes minutes, so it is done once: an index in the
ascbench home keeps every file's (size, mtime, ctime, sha256), and a later call stats every file
(one ``scandir`` per directory) and re-hashes only those whose stat changed or that are new.
ctime is kept too because a tool can restore a rewritten file's mtime but not its ctime. The
index is keyed by the data root's path, so a moved or copied root is hashed once more and gets
the same digest: the digest depends on file names and bytes, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ascbench.data.dataset import Dataset
from ascbench.data.layout import META_FILE
from ascbench.paths import resolve_home
from ascbench.progress import progress_bar

DIGEST_CHARS = 16
INDEX_DIR = "index"
INDEX_VERSION = 1
PROGRESS_MIN_FILES = 300
"""Fewer files to hash than this finish in about a second: no progress bar for them."""
RACY_NS = 2_000_000_000
"""A file whose mtime or ctime is this close to the moment it was stat'ed is hashed again next
time: file times are coarse (one clock tick, up to 2 s on some file systems), so a second
same-size write within the same tick would leave its stat unchanged."""

_Stat = tuple[int, int, int]
"""(size, mtime_ns, ctime_ns) of one file."""

_memo: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, str]] = {}
_memo_lock = threading.Lock()


def audio_digest(dataset: Dataset, home: Path | str | None = None, progress: bool = False) -> str:
    """16 hex chars over every clip of ``dataset`` in order: sha256 of (file name, sha256 of its bytes).

    Raises ``FileNotFoundError`` naming the first missing clip file. ``home`` holds the index
    that makes repeated calls cheap; ``progress`` shows a bar on stderr when many files need
    hashing.
    """
    return files_digest(dataset.root, [clip.filename for clip in dataset.clips], home=home, progress=progress)


def files_digest(
    root: Path | str, filenames: Iterable[str], home: Path | str | None = None, progress: bool = False
) -> str:
    """:func:`audio_digest` for ``filenames`` (relative to ``root``), for callers without a
    :class:`Dataset` (the validator of a data set that may not load)."""
    root = Path(root).expanduser().resolve()
    names = tuple(filenames)
    started = time.time_ns()
    stats, listed = _stat_files(root, names)
    signature = np.array([stats[name] for name in names], dtype=np.int64).reshape(-1, 3)
    memo_key = (str(root), names)
    with _memo_lock:
        known = _memo.get(memo_key)
    if known is not None and np.array_equal(known[0], signature):
        return known[1]

    index_path = _index_path(root, home)
    index = _read_index(index_path, root)
    hashes: dict[str, str] = {}
    stale: list[str] = []
    for name, stat in stats.items():
        entry = index.get(name)
        if entry is not None and tuple(entry[:3]) == stat:
            hashes[name] = entry[3]
        else:
            stale.append(name)
    hashes.update(_hash_files(root, stale, progress))

    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\t{hashes[name]}\n".encode())
    result = digest.hexdigest()[:DIGEST_CHARS]

    racy = {name for name, (_, mtime, ctime) in stats.items() if max(mtime, ctime) >= started - RACY_NS}
    # entries of other files stay for later calls over other clips, unless their file is gone
    updated = {name: entry for name, entry in index.items() if name not in stats and _listed(name, listed)}
    updated.update((name, [*stats[name], hashes[name]]) for name in stats if name not in racy)
    if updated != index:
        _write_index(index_path, root, updated)
    if not racy:
        with _memo_lock:
            _memo[memo_key] = (signature, result)
    return result


def _stat_files(root: Path, names: Sequence[str]) -> tuple[dict[str, _Stat], dict[str, set[str]]]:
    """(size, mtime_ns, ctime_ns) of each of ``names``, from one ``scandir`` per directory, and
    every entry name of the directories read.

    A missing file is an error naming it: a digest that skipped it would describe other data.
    """
    by_directory: dict[str, list[str]] = {}
    for name in names:
        parent, _, _ = name.rpartition("/")
        by_directory.setdefault(parent, []).append(name)
    stats: dict[str, _Stat] = {}
    listed: dict[str, set[str]] = {}
    missing: list[str] = []
    for parent, members in by_directory.items():
        directory = root / parent if parent else root
        try:
            with os.scandir(directory) as entries:
                found = {entry.name: entry for entry in entries}
        except FileNotFoundError:
            found = {}
        listed[parent] = set(found)
        for name in members:
            entry = found.get(name.rpartition("/")[2])
            if entry is None or not entry.is_file():
                missing.append(name)
                continue
            stat = entry.stat()
            stats[name] = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{root / missing[0]}: audio file listed in {META_FILE} does not exist{more}")
    return stats, listed


def _listed(name: str, listed: dict[str, set[str]]) -> bool:
    """False only when ``name``'s directory was read and does not hold it."""
    parent, _, base = name.rpartition("/")
    return parent not in listed or base in listed[parent]


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _hash_files(root: Path, names: list[str], progress: bool) -> dict[str, str]:
    """sha256 of each file; threads, because hashlib and file reads release the GIL."""
    if not names:
        return {}
    workers = min(8, 2 * (os.cpu_count() or 1))
    shown = progress and len(names) >= PROGRESS_MIN_FILES
    hashes: dict[str, str] = {}
    with progress_bar(shown, f"hashing the audio of {root.name}", len(names)) as bar:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ascbench-hash") as pool:
            for name, value in zip(names, pool.map(lambda name: _file_sha256(root / name), names)):
                hashes[name] = value
                bar.advance(status="files")
    return hashes


# -- the index ---------------------------------------------------------------------------------


def _index_path(root: Path, home: Path | str | None) -> Path:
    key = hashlib.sha256(str(root).encode()).hexdigest()[:DIGEST_CHARS]
    return resolve_home(home) / INDEX_DIR / f"audio-{key}.json"


def _read_index(path: Path, root: Path) -> dict[str, list]:
    """The index's entries, or {} when it is missing, unreadable or for another root: it only
    saves work, so anything doubtful is hashed again."""
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or index.get("root") != str(root):
        return {}
    files = index.get("files")
    if not isinstance(files, dict):
        return {}
    return {
        name: entry
        for name, entry in files.items()
        if isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], str)
    }


def _write_index(path: Path, root: Path, files: dict[str, list]) -> None:
    """Replace the index atomically: a reader sees the old or the new one, never half of one.

    A home that cannot be written to costs speed (everything is hashed again next time), not
    correctness, so a failure is a warning.
    """
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"version": INDEX_VERSION, "root": str(root), "files": files}))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        warnings.warn(f"could not save the audio hash index {path} ({error}); the audio is hashed again next time", stacklevel=3)
