"""A cheap content fingerprint of a TAU22-layout directory.

Feature caches and run records are keyed by it, so it must change whenever the data a model
sees could have changed, yet stay cheap on the real 230,350-clip set: hashing every audio byte
would take minutes on every command. It therefore hashes the csv files byte for byte and only
the names and sizes of the audio files (a re-encoded or truncated clip changes its size; an
edited label changes a csv).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

AUDIO_DIR = "audio"
FINGERPRINT_CHARS = 16


def content_fingerprint(root: Path, csv_files: Iterable[str]) -> str:
    """Hash ``csv_files`` (paths relative to ``root``; missing ones are skipped) and the audio listing.

    The caller decides which csv files belong to the data set (see
    :func:`ascbench.data.reader.fingerprint`), so this module knows how to hash, not where the
    TAU22 layout keeps its files.
    """
    digest = hashlib.sha256()
    for relative in csv_files:
        path = root / relative
        if not path.is_file():
            continue
        digest.update(f"csv\t{relative}\n".encode())
        digest.update(path.read_bytes())
        digest.update(b"\n")
    for name, size in audio_listing(root):
        digest.update(f"audio\t{name}\t{size}\n".encode())
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def audio_listing(root: Path) -> list[tuple[str, int]]:
    """Sorted (file name, size in bytes) of the entries of ``root/audio`` (empty if it is missing).

    ``os.scandir`` keeps this to one directory read plus one ``stat`` per file, which matters
    for 230k files.
    """
    directory = root / AUDIO_DIR
    if not directory.is_dir():
        return []
    with os.scandir(directory) as entries:
        listing = [(entry.name, entry.stat().st_size if entry.is_file() else -1) for entry in entries]
    listing.sort()
    return listing
