"""Keep freed tensor memory in the process while training on the CPU (glibc ``mallopt``).

PyTorch's CPU allocator is plain ``posix_memalign``/``free``. glibc serves every allocation
above its mmap threshold (128 KiB, rising to at most 32 MiB as big blocks are freed) with a
fresh ``mmap`` and gives it back with ``munmap`` on free. A training step allocates and frees
the same activations every time -- for CP-Mobile at batch 256 dozens of tensors of 20-80 MB --
so the kernel faults in and zero-fills every 4-KiB page of them on every step. On the
project's two-core machine that was about half of a step's wall time (millions of minor page
faults per minute, system time equal to user time).

:func:`reuse_freed_memory` switches mmap off (``M_MMAP_MAX = 0``: big blocks come from the
heap) and trimming off (``M_TRIM_THRESHOLD`` 2 GiB: freed heap memory stays), so from the second
step on the allocator hands back memory that is already mapped. The price is a higher peak
resident memory, since freed blocks of one size do not always fit the next request (CP-Mobile
at batch 256: 4.1-4.7 GB instead of 2.9-3.2 GB); ``malloc_trim`` gives the free pages back to
the system on exit, when glibc's defaults are restored. Nothing numeric changes: the same
kernels run on the same values, only at other addresses.

glibc offers no way to read the current settings, so "restore" means its documented defaults
(mmap threshold 128 KiB fixed from then on, trim threshold 128 KiB, 65,536 mmaps). A no-op
anywhere but Linux with glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from functools import lru_cache

# mallopt parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}
_KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1}
"""No mmap; trim the heap only when more than 2 GiB (mallopt takes an ``int``) is free at its top."""

_depth = 0
"""Active :func:`reuse_freed_memory` blocks (nested or in other threads): the last one restores."""
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def available() -> bool:
    """Whether this process's C library is glibc, so that :func:`reuse_freed_memory` acts."""
    return _glibc() is not None


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory mapped in the process for the block; yields whether it is in effect."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    global _depth
    with _lock:
        if _depth == 0:
            for param, value in _KEEP.items():
                libc.mallopt(param, value)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for param, value in GLIBC_DEFAULTS.items():
                    libc.mallopt(param, value)
                libc.malloc_trim(0)
