"""Freed tensor memory is kept in the process while training on the CPU (glibc), and released after."""

from __future__ import annotations

import ctypes
import resource

import pytest
import torch

from ascbench.training import allocator
from ascbench.training.allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(not allocator.available(), reason="needs glibc")

MB = 1 << 20


class Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def mallinfo() -> Mallinfo2:
    libc = allocator._glibc()
    assert libc is not None
    libc.mallinfo2.restype = Mallinfo2
    return libc.mallinfo2()


def mapped_afresh() -> bool:
    """Whether a block bigger than all the heap's free memory gets its own mmap (glibc's default)
    rather than a bigger heap (what reuse asks for).

    Measured with a block no free chunk can serve, so that it does not depend on what earlier
    code in this process left free in the heap (a training run leaves gigabytes).
    """
    before = mallinfo()
    size = before.fordblks + 64 * MB
    block = torch.empty(size // 4)  # never written: costs address space, not memory
    grown = mallinfo().hblkhd - before.hblkhd
    del block
    return grown >= size


def faults_of_fresh_tensors(n: int = 3, size: int = 64 * MB) -> int:
    """Minor page faults while allocating, writing and freeing ``n`` tensors of ``size`` bytes, one at a time."""
    torch.empty(size // 4).fill_(1.0)  # the first one may fault anywhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        torch.empty(size // 4).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_memory_is_reused_inside_and_big_blocks_mapped_afresh_outside() -> None:
    pages = 3 * 64 * MB // resource.getpagesize()
    assert mapped_afresh()
    with reuse_freed_memory() as active:
        assert active
        assert not mapped_afresh()
        assert faults_of_fresh_tensors() < pages // 2  # at most one block mapped afresh (heap growth), not all three
    assert mapped_afresh()  # glibc's defaults are back


def test_nested_blocks_restore_only_at_the_outermost_exit() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert not mapped_afresh()
    assert mapped_afresh()


def test_disabled_is_a_no_op() -> None:
    with reuse_freed_memory(enabled=False) as active:
        assert not active
        assert mapped_afresh()
