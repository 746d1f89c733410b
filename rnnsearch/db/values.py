"""Plain frozen values that the store hands out (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SearchInfo:
    id: int
    name: str
    config: dict[str, Any]
    seed: int
    status: str
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None
    steps: int = 0
    duplicates: int = 0
    lease_host: str | None = None  # the launch that runs it (rnnsearch.search.lease)
    lease_pid: int | None = None
    lease_since: datetime | None = None
    functional_duplicates: int = 0
    lease_token: str | None = None  # what a takeover compares and swaps, read with the rest


@dataclass(frozen=True)
class ArchitectureInfo:
    id: int
    hash: str
    graph_json: str
    formula: str
    name: str | None
    origin: str
    parent_id: int | None
    mutation_ops: tuple
    stage: str
    states: int
    params_per_unit2: int
    params_per_unit: int
    first_search_id: int | None
    created_at: datetime
    fingerprint: tuple[float, ...] | None = None  # outputs on fixed inputs (functional dedup)
    duplicate_of: int | None = None  # the architecture it computes the same function as

    @property
    def display_name(self) -> str:
        """The zoo name of a seed, or of a mutant that is a zoo cell (named when stored), else ``#id``."""
        if self.name:
            return self.name
        return self.origin[4:] if self.origin.startswith("zoo:") else f"#{self.id}"

    def param_count(self, n: int) -> int:
        """Parameters of one layer of the cell at width n."""
        return self.params_per_unit2 * n * n + self.params_per_unit * n

    def graph(self):
        from rnnsearch.cells import CellGraph

        return CellGraph.from_json(self.graph_json)


@dataclass(frozen=True)
class EvaluationInfo:
    id: int
    request_id: str
    architecture_id: int
    search_id: int | None
    task: str
    stage: str
    hparams: dict[str, Any]
    seed: int
    budget: dict[str, Any]
    task_options: tuple
    status: str
    val_accuracy: float | None
    test_accuracy: float | None
    val_loss: float | None
    val_perplexity: float | None
    test_perplexity: float | None
    steps: int | None
    tokens_per_s: float | None
    wall_s: float | None
    hidden_size: int | None
    param_count: int | None
    device: str | None
    worker: str | None
    error: str | None
    extras: dict[str, float]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    curve: tuple[tuple[int, float], ...] = ()  # (step, val_accuracy) pairs


@dataclass(frozen=True)
class TaskScore:
    """An architecture's best validation accuracy on a task (and the test accuracy of that
    same evaluation), with its evaluation counts."""

    architecture_id: int
    task: str
    best_val_accuracy: float | None
    test_accuracy: float | None
    evaluations_ok: int
    evaluations: int


@dataclass(frozen=True)
class NewEvaluation:
    """What the search asks the store to create: one (architecture, task, hparams, seed)."""

    architecture_id: int
    task: str
    hparams: dict[str, Any]
    seed: int
    budget: dict[str, Any]
    task_options: tuple = ()
    stage: str = ""
