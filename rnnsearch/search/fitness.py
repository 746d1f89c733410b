"""Fitness: min over tasks of (best accuracy / the GRU's best accuracy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def fitness(best: Mapping[str, float], baseline: Mapping[str, float], tasks: Sequence[str]) -> float | None:
    """None until the architecture and the GRU both have a score on every task."""
    ratios = []
    for t in tasks:
        b, g = best.get(t), baseline.get(t)
        if b is None or not g:
            return None
        ratios.append(b / g)
    return min(ratios) if ratios else None
