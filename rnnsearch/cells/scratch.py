"""Scratch memory the native code reuses from call to call.

Fresh memory of a loop's sizes (hundreds of KiB) costs page faults on every call, since
glibc hands freed blocks of that size back to the system; at a small cell's sizes that
cost more than the loop itself. What never leaves the native code (its scratch, packed
weights, the values a forward keeps for its backward) comes from here instead.
"""

from __future__ import annotations

import torch


class Scratch:
    """Float32 CPU buffers by size: ``take`` one (its contents are garbage), ``give`` it
    back when done. At most ``spare`` of each size wait (the member-batched loop keeps one
    per member at once)."""

    def __init__(self, spare: int = 64):
        self.spare = spare
        self._free: dict[int, list[torch.Tensor]] = {}

    def take(self, numel: int) -> torch.Tensor:
        free = self._free.get(numel)
        if free:
            try:
                return free.pop()
            except IndexError:  # another thread took the last one
                pass
        return torch.empty(numel, dtype=torch.float32)

    def give(self, *tensors: torch.Tensor | None) -> None:
        for t in tensors:
            if t is not None:
                free = self._free.setdefault(t.numel(), [])
                if len(free) < self.spare:
                    free.append(t)
