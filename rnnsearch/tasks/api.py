"""The values that cross the boundary between search, workers and training."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from rnnsearch.states import Status

OK, DIVERGED, FAILED, STOPPED = Status.OK, Status.DIVERGED, Status.FAILED, Status.STOPPED
STATUSES = (OK, DIVERGED, FAILED, STOPPED)


@dataclass(frozen=True)
class HParams:
    """One hyperparameter setting (Jozefowicz et al.'s grids; see ``hparams.sample``).

    ``init_scale`` s gives weights U(-s/sqrt(n), s/sqrt(n)); ``learning_rate`` is for plain
    SGD on the loss summed over time steps and averaged over the batch (Zaremba et al.'s
    convention, which the paper's rates assume); ``param_budget`` fixes the width n of
    each cell so that candidates are compared at equal size.
    """

    init_scale: float = 1.0
    learning_rate: float = 1.0
    max_grad_norm: float = 5.0
    layers: int = 1
    param_budget: int = 50_000
    batch_size: int = 20
    unroll: int = 35

    def __post_init__(self) -> None:
        for name in ("init_scale", "learning_rate", "max_grad_norm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v < 1e6):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name, lo, hi in (
            ("layers", 1, 16),
            ("param_budget", 10, 10**10),
            ("batch_size", 1, 65536),
            ("unroll", 1, 100_000),
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")


@dataclass(frozen=True)
class Budget:
    """How long one evaluation trains, and the paper's schedule around it.

    Training stops at ``max_steps`` or ``max_seconds``, or when the schedule ends: after
    ``patience`` evaluations without improvement the rate halves at every evaluation,
    ``decays`` times, then training stops. An evaluation runs every ``eval_every`` steps
    on at most ``eval_batches`` validation batches (0: the whole split). With ``stop_at``,
    training stops once the validation accuracy reaches it (a filter's verdict is known).
    ``trail`` holds ``(step, bar)`` pairs (``rnnsearch.search.early_stop.trail``): at an
    evaluation at one of those steps, a best validation accuracy so far below its bar
    stops training, and the result is ``stopped`` (it trails the reference curve).
    """

    max_steps: int = 1000
    max_seconds: float = 600.0
    eval_every: int = 100
    eval_batches: int = 0
    patience: int = 3
    decays: int = 4
    stop_at: float = 0.0  # 0: never
    trail: tuple[tuple[int, float], ...] = ()  # (step, bar): stopped below the bar at that step

    def __post_init__(self) -> None:
        # lists from JSON or the database become (int, float) tuples: equal and hashable
        object.__setattr__(self, "trail", tuple((int(s), float(b)) for s, b in self.trail))


@dataclass(frozen=True)
class EvalRequest:
    """Train ``graph_json`` on ``task`` with ``hparams`` from ``seed`` within ``budget``."""

    graph_json: str
    task: str
    hparams: HParams
    seed: int
    budget: Budget
    task_options: tuple[tuple[str, Any], ...] = ()
    request_id: str = ""
    device: str = "auto"
    threads: int | None = None
    keep_weights: bool = False

    def options(self) -> dict[str, Any]:
        return dict(self.task_options)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EvalRequest:
        d = json.loads(text)
        d["hparams"] = HParams(**d["hparams"])
        d["budget"] = Budget(**d["budget"])
        d["task_options"] = tuple(tuple(kv) for kv in d["task_options"])
        return cls(**d)


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation produced. ``status`` is ``ok``, ``diverged``, ``failed`` or
    ``stopped``. ``curve`` is ``(step, validation accuracy)`` at each evaluation."""

    request_id: str
    status: str
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    val_perplexity: float | None = None
    test_perplexity: float | None = None
    steps: int = 0
    tokens_per_s: float = 0.0
    wall_s: float = 0.0
    param_count: int = 0
    hidden_size: int = 0
    device: str = ""
    worker: str = ""
    error: str = ""
    extras: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    curve: tuple[tuple[int, float], ...] = ()
    weights: bytes | None = field(default=None, repr=False)

    def extra(self, key: str, default: float | None = None) -> float | None:
        return dict(self.extras).get(key, default)
