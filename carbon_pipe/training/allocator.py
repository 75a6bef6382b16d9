"""A steady heap for training: glibc malloc keeps freed activation memory instead of handing it back every step.

By default glibc returns large freed blocks to the kernel (munmap, or trimming the top of the heap) under thresholds
it adjusts as the process goes, so whether a step's activations are page-faulted in afresh every step depends on
the process's allocation history. On the 2-core development machine the baseline (batch 64) took 73-126 minor
page faults per training sample in one process and another, and ran up to 35 % slower than with them gone, while
micro-batches of 16 never faulted: that, not the configuration, moved the paired ratio between processes
(README: Profiling). Pinning the thresholds makes every process behave alike: blocks up to 32 MB come from the
heap, and the heap is never trimmed, so a step reuses the pages of the one before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest allowed mmap threshold on 64-bit
STEADY = "glibc malloc pinned: blocks up to 32 MB from the heap, heap never trimmed (train.steady_allocator)"
DEFAULT = "the C library's default allocator settings"

_applied: str | None = None


def steady_allocator(enabled: bool) -> str:
    """Pin glibc's malloc thresholds for the rest of the process, if `enabled` and the C library is glibc; return
    what the process runs with, in words. Once pinned, a process stays pinned."""
    global _applied
    if _applied == STEADY or not enabled:
        return _applied or DEFAULT
    if not sys.platform.startswith("linux"):
        return f"{DEFAULT} (train.steady_allocator applies to glibc on Linux only)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        pinned = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pinned = False
    _applied = STEADY if pinned else f"{DEFAULT} (mallopt refused: not glibc?)"
    return _applied
