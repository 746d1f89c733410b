"""A running search as its displays see it: a frozen snapshot, taken every tick."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    architecture_id: int
    name: str
    fitness: float
    formula: str


@dataclass(frozen=True)
class SearchView:
    """A snapshot for a live display and for the final summary."""

    search: str
    elapsed_s: float
    finished: dict[str, int]
    in_flight: int
    architectures: int
    by_stage: dict[str, int]
    duplicates: int
    top: tuple[Member, ...]
    evaluations_per_hour: float
    busy_fraction: float
    baseline: dict[str, float]
    stopping: str = ""
    finished_now: int = 0  # of ``finished``, those this launch ran
    kind: str = "search"  # or "study", "calibration": what the display calls it
    functional_duplicates: int = 0  # candidates not trained: they compute what another computes
    strategy: str = "paper"
