"""Scratch memory the native code reuses from call to call, and the process's malloc.

Fresh memory of a loop's sizes (hundreds of KiB) costs page faults on every call, since
glibc hands freed blocks of that size back to the system; at a small cell's sizes that
cost more than the loop itself. What never leaves the native code (its scratch, packed
weights, the values a forward keeps for its backward) comes from here instead.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections import OrderedDict

import torch


class Scratch:
    """Float32 CPU buffers by size: ``take`` one (its contents are garbage), ``give`` it
    back when done. At most ``spare`` of each size wait (the member-batched loop keeps one
    per member at once), and buffers of at most ``sizes`` sizes: where sequence lengths
    vary (arithmetic), the sizes given back least recently are let go."""

    def __init__(self, spare: int = 64, sizes: int = 16):
        self.spare, self.sizes = spare, sizes
        self._free: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, numel: int) -> torch.Tensor:
        with self._lock:
            free = self._free.get(numel)
            if free:
                return free.pop()
        return torch.empty(numel, dtype=torch.float32)

    def give(self, *tensors: torch.Tensor | None) -> None:
        with self._lock:
            for t in tensors:
                if t is None:
                    continue
                free = self._free.setdefault(t.numel(), [])
                self._free.move_to_end(t.numel())
                if len(free) < self.spare:
                    free.append(t)
            while len(self._free) > self.sizes:
                self._free.popitem(last=False)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks of up to 32 MiB for reuse (and trim the heap only past
    128 MiB of free memory), once per process. Native training frees and allocates blocks
    of hundreds of KiB to a few MiB every step (autograd's outputs and gradients); with
    glibc's default thresholds many are handed back to the system and faulted in again
    on the next step, hundreds of page faults a step. Left alone where the process set its
    own (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``) and off glibc. Returns
    whether it is in force."""
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 128 << 20))
