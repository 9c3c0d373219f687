"""The on-disk feature cache: one memory-mapped array per (data set, frontend), shared by all.

Features are computed once for every clip of ``meta.csv``, so every split, system and seed that
declares the same frontend reads the same bytes, and a training run touches no audio. A cache
lives in ``features_dir(home) / <dataset fingerprint> / <frontend.key()> /`` and holds

- ``features.npy``: float32 ``[clips, *frontend.output_shape()]``, rows in ``meta.csv`` order;
- ``manifest.json``: what the array is (shape, dtype, frontend config, data set fingerprint,
  digest of the row filenames, digest of the audio bytes, ascbench / torch versions) and the
  CRC-32 of ``features.npy``.

**Audio content.** The data set fingerprint sees audio names and sizes only, so audio rewritten
in place keeps it; the manifest therefore also records :func:`ascbench.data.content.audio_digest`,
and a cache computed from other audio is reported and rebuilt. The same digest makes
:attr:`CachedFeatures.key`, the cache's identity by content: a home copied or mounted elsewhere
keeps it, where the cache's path does not.

**Disk space.** Writes into a memory-mapped file that the file system cannot back kill the
process with SIGBUS (no exception, no clean-up, a half-written temporary file left behind). The
array's size is known before the build, so the free space is checked first and the file's
blocks are reserved (``posix_fallocate``) before it is mapped: a full disk, or another writer
taking the space meanwhile, is a :class:`NotEnoughSpaceError` and the temporary files go.

**Storage dtype.** float32 for every frontend, waveforms included. float16 would halve the
waveform caches, but it is not sound for *device* robustness, which is what this benchmark
measures: its rounding noise sits about 66 dB below the sample, so it fills a device's stop band.
Measured on white noise brick-wall low-passed at 8 kHz (a phone-like band limit) and peaking at
-10 dBFS, the baseline log-mel of the float16-rounded waveform differs by up to 0.8 (mean 0.06)
in the bins above 8 kHz, which the float32 waveform leaves at the log floor: the cue that
tells devices apart would change with the storage format. float32 holds 24-bit PCM exactly.

**Crash safety.** A cache is built in a private temporary directory beside its final place and
published by one atomic ``rename``; a crash leaves only a temporary directory, which the next
build removes. Builds hold an exclusive lock (``<key>.lock``, ``flock``) so that two processes
asking for the same cache do not compute it twice: the second waits, then finds the winner's
complete cache and uses it. Nothing is fsync'ed: a power cut that leaves a published directory
with torn contents is caught by the checksum on the next open, which costs one rebuild, whereas
flushing every build to disk would cost every user time on every build.

**Verification on every open.** A cache whose manifest is missing, unreadable, incomplete, of
another format, for other filenames or another frontend, whose file size differs or whose
CRC-32 does not match is reported (a :class:`FeatureCacheWarning` naming the cache and the
reason) and rebuilt, never silently used. CRC-32 rather than a cryptographic hash because the
threat is accidental damage (a crash, a truncated copy, bit rot), which CRC-32 detects (every
single flipped byte and every burst up to 32 bits), and it is the cheapest check in the standard
library: hashing 400 MB, the baseline-mel cache of a few thousand clips, from the page cache
took 0.13 s with zlib.crc32 against 0.30 s for sha256 and 0.53 s for blake2b on this project's
two-core machine; it is re-read in full on every open, so a corrupt cache cannot go unnoticed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import shutil
import time
import uuid
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torchaudio
from rich.console import Console

import ascbench
from ascbench.data.content import audio_digest
from ascbench.data.dataset import Dataset
from ascbench.data.layout import CLIP_SAMPLES, SAMPLE_RATE
from ascbench.features.audio import iter_batches
from ascbench.features.frontends import Frontend
from ascbench.locking import exclusive
from ascbench.paths import features_dir
from ascbench.progress import live_console, progress_bar

FORMAT_VERSION = 1
"""Bumped when the cache layout changes; caches of another format are rebuilt."""

DATA_FILE = "features.npy"
MANIFEST_FILE = "manifest.json"
STORAGE_DTYPE = np.dtype(np.float32)
_CHUNK_BYTES = 1 << 22


class FeatureCacheWarning(UserWarning):
    """A feature cache on disk was unusable (corrupt, partial, stale) and is being rebuilt."""


class NotEnoughSpaceError(OSError):
    """The file system cannot hold the cache about to be built (``errno`` is ``ENOSPC``).

    An ``OSError`` so that callers treating I/O failures as "this run failed" treat it so too.
    """

    def __init__(self, path: Path, needed: int, free: int):
        self.path = path
        self.needed = needed
        self.free = free
        super().__init__(
            f"not enough free space for the feature cache {path}: it needs {needed:,} bytes and "
            f"{free:,} bytes are free on that file system; free some space or point --home / "
            "$ASCBENCH_HOME at a larger disk"
        )
        self.errno = errno.ENOSPC


@dataclass(frozen=True)
class CachedFeatures:
    """A frontend's features for every clip of a data set, memory-mapped read-only."""

    frontend: Frontend
    path: Path
    """The cache directory (holding ``features.npy`` and ``manifest.json``)."""
    array: np.memmap
    """``[clips, *frontend.output_shape()]``, read-only; row ``i`` is ``filenames[i]``."""
    filenames: tuple[str, ...]
    built: bool = False
    """True when this call computed the cache, False when it reused a verified one."""
    dataset_fingerprint: str | None = None
    """The data set's fingerprint; set by :func:`load_features`."""
    audio_digest: str | None = None
    """:func:`ascbench.data.content.audio_digest` of the audio the cache was computed from; set by
    :func:`load_features`."""
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def key(self) -> str:
        """The cache's identity by content, never by path, for checkpoints that must resume on
        the same features wherever the home is mounted.

        ``<dataset fingerprint>/<frontend key>/<audio digest>`` for a cache from
        :func:`load_features` (the digest covers the row filenames in order). Features built in
        memory have neither, so their key hashes the array itself.
        """
        if self.dataset_fingerprint is not None and self.audio_digest is not None:
            return f"{self.dataset_fingerprint}/{self.frontend.key()}/{self.audio_digest}"
        if "key" not in self._memo:
            digest = hashlib.sha256("\n".join(self.filenames).encode())
            array = np.ascontiguousarray(self.array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
            self._memo["key"] = f"array/{self.frontend.key()}/{digest.hexdigest()[:16]}"
        return self._memo["key"]

    def rows(self, filenames: Sequence[str]) -> np.ndarray:
        """Row indices (int64) of ``filenames`` (``audio/...wav``, as in the csv files)."""
        if not self._index:
            self._index.update((name, row) for row, name in enumerate(self.filenames))
        try:
            return np.fromiter((self._index[name] for name in filenames), dtype=np.int64, count=len(filenames))
        except KeyError as error:
            raise KeyError(f"{error.args[0]!r} is not a clip of the data set cached in {self.path}") from None

    def batch(self, rows: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Features of ``rows`` (in the given order) as a new float32 tensor the caller may modify."""
        index = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=np.int64)
        return torch.from_numpy(np.array(self.array[index], dtype=np.float32))

    def __len__(self) -> int:
        return len(self.filenames)


def cache_dir(dataset: Dataset, frontend: Frontend, home: Path | str | None = None) -> Path:
    """Where the cache of ``frontend`` over ``dataset`` lives (whether or not it exists yet)."""
    return features_dir(home) / dataset.fingerprint / frontend.key()


def load_features(
    dataset: Dataset,
    frontend: Frontend,
    home: Path | str | None = None,
    progress: bool = True,
    batch_size: int = 64,
) -> CachedFeatures:
    """Open the verified cache of ``frontend`` over every clip of ``dataset``, building it if needed.

    A damaged or stale cache (audio rewritten since it was built included) is reported with a
    :class:`FeatureCacheWarning` and rebuilt. ``progress`` shows a progress bar while hashing
    new audio and while building; ``batch_size`` clips are decoded and transformed at a time.
    Raises :class:`NotEnoughSpaceError` when the cache does not fit on the home's file system,
    ``FileNotFoundError`` naming a missing clip file.
    """
    filenames = tuple(clip.filename for clip in dataset.clips)
    if not filenames:
        raise ValueError(f"data set {dataset.name!r} at {dataset.root} has no clips to compute features for")
    directory = cache_dir(dataset, frontend, home)
    lock = directory.parent / f"{directory.name}.lock"
    try:
        content = audio_digest(dataset, home, progress=progress)
    except FileNotFoundError:
        with _exclusive(lock, directory):  # nothing can be built; still clear what dead builds left
            _remove_leftovers(directory)
        raise
    expected = _expected_manifest(dataset, frontend, filenames, content)
    if _problem(directory, expected) is None:
        return _open(directory, frontend, filenames, False, dataset.fingerprint, content)
    with _exclusive(lock, directory):
        problem = _problem(directory, expected)  # another process may have built it meanwhile
        if problem is None:
            return _open(directory, frontend, filenames, False, dataset.fingerprint, content)
        if problem != _MISSING:
            warnings.warn(f"feature cache {directory}: {problem}; rebuilding it", FeatureCacheWarning, stacklevel=2)
        _remove_leftovers(directory)
        built = _build(dataset, frontend, filenames, expected, directory, progress, batch_size)
        _publish(built, directory)
    return _open(directory, frontend, filenames, True, dataset.fingerprint, content)


# -- manifest ----------------------------------------------------------------------------------


def _expected_manifest(dataset: Dataset, frontend: Frontend, filenames: tuple[str, ...], content: str) -> dict:
    """The manifest fields a valid cache must carry, before the build adds sizes and checksum.

    ``content`` is the audio digest: the fingerprint alone misses audio rewritten in place.
    """
    fields = {
        "format_version": FORMAT_VERSION,
        "shape": [len(filenames), *frontend.output_shape(CLIP_SAMPLES, SAMPLE_RATE)],
        "dtype": STORAGE_DTYPE.str,
        "filenames_digest": _filenames_digest(filenames),
        "frontend": {"key": frontend.key(), "class": type(frontend).__name__, "config": asdict(frontend)},
        "dataset_fingerprint": dataset.fingerprint,
        "audio_digest": content,
        # the frontends are torch(audio) code: features of another release are recomputed, not trusted
        "torch_version": torch.__version__,
        "torchaudio_version": torchaudio.__version__,
    }
    return json.loads(json.dumps(fields))  # as it reads back from disk (tuples -> lists, ...)


def _filenames_digest(filenames: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(filenames).encode()).hexdigest()


_MISSING = "missing"


def _problem(directory: Path, expected: dict) -> str | None:
    """Why the cache in ``directory`` cannot be used, or None when it is complete and intact."""
    manifest_path = directory / MANIFEST_FILE
    data_path = directory / DATA_FILE
    if not directory.exists():
        return _MISSING
    if not manifest_path.is_file():
        return "no manifest (a build that did not finish)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"unreadable manifest ({error})"
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        return "manifest not marked complete"
    for name, value in expected.items():
        if manifest.get(name) == value:
            continue
        if name == "audio_digest":
            if manifest.get(name) is None:
                return "no audio digest (a cache from before the audio content was checked)"
            return f"audio content changed (the cache was computed from audio digest {manifest[name]!r}, the audio now is {value!r})"
        return f"manifest {name} is {manifest.get(name)!r}, expected {value!r}"
    if not data_path.is_file():
        return f"{DATA_FILE} is missing"
    size = data_path.stat().st_size
    if size != manifest.get("file_bytes"):
        return f"{DATA_FILE} has {size} bytes, the manifest says {manifest.get('file_bytes')}"
    checksum = _file_checksum(data_path)
    if checksum != manifest.get("checksum"):
        return f"{DATA_FILE} is corrupt (checksum {checksum['value']}, manifest {manifest.get('checksum')})"
    return None


def _file_checksum(path: Path) -> dict:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
    return {"algorithm": "crc32", "value": f"{crc:08x}"}


# -- building ----------------------------------------------------------------------------------


def _build(
    dataset: Dataset,
    frontend: Frontend,
    filenames: tuple[str, ...],
    expected: dict,
    directory: Path,
    progress: bool,
    batch_size: int,
) -> Path:
    """Compute the cache into a fresh temporary directory beside ``directory``; return it."""
    shape = tuple(expected["shape"])
    header, needed = _npy_layout(shape)
    _check_space(directory, needed)
    temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir(parents=True)
    try:
        started = time.perf_counter()
        data_path = temporary / DATA_FILE
        _allocate(data_path, header, needed, directory)
        array = np.lib.format.open_memmap(data_path, mode="r+")
        assert array.shape == shape and array.dtype == STORAGE_DTYPE, (array.shape, array.dtype)
        paths = [dataset.root / name for name in filenames]
        with progress_bar(progress, f"{frontend.name} features of {dataset.name}", len(paths)) as bar:
            with torch.inference_mode():
                for start, waveforms in iter_batches(paths, batch_size, CLIP_SAMPLES, SAMPLE_RATE):
                    features = frontend.compute(waveforms, SAMPLE_RATE)
                    array[start : start + len(waveforms)] = features.numpy()
                    bar.advance(len(waveforms))
        array.flush()
        del array
        manifest = {
            **expected,
            "complete": True,
            "dataset_name": dataset.name,
            "file": DATA_FILE,
            "file_bytes": data_path.stat().st_size,
            "checksum": _file_checksum(data_path),
            "ascbench_version": ascbench.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        manifest_path = temporary / MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return temporary


def _npy_layout(shape: tuple[int, ...]) -> tuple[bytes, int]:
    """The ``.npy`` header of a ``STORAGE_DTYPE`` array of ``shape`` and the whole file's size."""
    buffer = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(STORAGE_DTYPE), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, fields)
    header = buffer.getvalue()
    return header, len(header) + math.prod(shape) * STORAGE_DTYPE.itemsize


def _check_space(directory: Path, needed: int) -> None:
    """Refuse a build its file system cannot hold, before anything is written."""
    free = shutil.disk_usage(directory.parent).free
    if free < needed:
        raise NotEnoughSpaceError(directory, needed, free)


def _allocate(path: Path, header: bytes, size: int, directory: Path) -> None:
    """Write the ``.npy`` header and reserve the file's blocks, so that filling the memory map
    cannot run out of space (SIGBUS) when another writer took the free space after the check."""
    with open(path, "wb") as handle:
        handle.write(header)
        handle.flush()
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
            return
        except AttributeError:  # no posix_fallocate on this platform
            pass
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise NotEnoughSpaceError(directory, size, shutil.disk_usage(directory.parent).free) from None
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        handle.truncate(size)  # sparse: the space check above is all that guards this file system


def _publish(built: Path, directory: Path) -> None:
    """Atomically put ``built`` in ``directory``'s place (moving a rejected cache aside first)."""
    if directory.exists():
        rejected = directory.parent / f".{directory.name}.rejected-{uuid.uuid4().hex[:8]}"
        os.rename(directory, rejected)
        os.rename(built, directory)
        shutil.rmtree(rejected, ignore_errors=True)
    else:
        os.rename(built, directory)


def _remove_leftovers(directory: Path) -> None:
    """Delete temporary directories of builds that died (only called while holding the lock)."""
    for leftover in directory.parent.glob(f".{directory.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _exclusive(lock_path: Path, directory: Path):
    """The build lock of one cache (:func:`ascbench.locking.exclusive`), saying when it waits."""
    return exclusive(lock_path, on_wait=lambda: (live_console() or Console(stderr=True)).print(
        f"waiting for another process building {directory} ...", highlight=False))


def _open(
    directory: Path, frontend: Frontend, filenames: tuple[str, ...], built: bool, fingerprint: str, content: str
) -> CachedFeatures:
    array = np.load(directory / DATA_FILE, mmap_mode="r")
    return CachedFeatures(
        frontend=frontend,
        path=directory,
        array=array,
        filenames=filenames,
        built=built,
        dataset_fingerprint=fingerprint,
        audio_digest=content,
    )
