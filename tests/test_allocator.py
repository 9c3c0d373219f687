"""Freed tensor memory is kept in the process while training on the CPU (glibc), and released after."""

from __future__ import annotations

import resource

import pytest
import torch

from ascbench.training import allocator
from ascbench.training.allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(not allocator.available(), reason="needs glibc")

MB = 1 << 20


def faults_of_fresh_tensors(n: int = 3, size: int = 64 * MB) -> int:
    """Minor page faults while allocating, writing and freeing ``n`` tensors of ``size`` bytes, one at a time."""
    torch.empty(size // 4).fill_(1.0)  # the first one may fault anywhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        torch.empty(size // 4).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_memory_is_reused_inside_and_returned_outside() -> None:
    pages = 3 * 64 * MB // resource.getpagesize()
    # glibc mmaps a fresh 64 MB block per tensor and zero-fills it page by page
    assert faults_of_fresh_tensors() > pages // 2
    with reuse_freed_memory() as active:
        assert active
        assert faults_of_fresh_tensors() < pages // 2  # at most one block mapped afresh (heap growth), not all three
    # defaults restored: big blocks are mapped afresh again (and the heap was trimmed)
    assert faults_of_fresh_tensors() > pages // 2


def test_nested_blocks_restore_only_at_the_outermost_exit() -> None:
    pages = 3 * 64 * MB // resource.getpagesize()
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert faults_of_fresh_tensors() < pages // 2  # at most one block mapped afresh (heap growth), not all three
    assert faults_of_fresh_tensors() > pages // 2


def test_disabled_is_a_no_op() -> None:
    with reuse_freed_memory(enabled=False) as active:
        assert not active
        assert faults_of_fresh_tensors() > 3 * 64 * MB // resource.getpagesize() // 2
