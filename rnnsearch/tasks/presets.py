"""Sizes and budgets per task: ``smoke`` (seconds, for tests), ``laptop`` (minutes on 2
cores), ``paper`` (Jozefowicz et al.'s scale)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rnnsearch.errors import UserError
from rnnsearch.tasks.api import Budget


@dataclass(frozen=True)
class TaskPreset:
    param_budget: int
    budget: Budget
    options: tuple[tuple[str, Any], ...] = ()
    batch_size: int = 20
    unroll: int = 35
    max_layers: int = 4


@dataclass(frozen=True)
class Preset:
    name: str
    tasks: dict[str, TaskPreset] = field(default_factory=dict)

    def task(self, name: str) -> TaskPreset:
        if name not in self.tasks:
            raise UserError(f"unknown task {name!r} (known: {', '.join(self.tasks)})")
        return self.tasks[name]


SMOKE = Preset(
    "smoke",
    {
        "memorize": TaskPreset(
            3_000, Budget(max_steps=30, max_seconds=60, eval_every=15, eval_batches=2), max_layers=1
        ),
        "arithmetic": TaskPreset(
            4_000,
            Budget(max_steps=30, max_seconds=60, eval_every=15, eval_batches=2),
            (("max_digits", 3),),
            max_layers=1,
        ),
        "xml": TaskPreset(
            3_000,
            Budget(max_steps=30, max_seconds=60, eval_every=15, eval_batches=2),
            (("train_chars", 20_000), ("eval_chars", 4_000)),
            max_layers=1,
        ),
        "ptb": TaskPreset(
            400_000,
            Budget(max_steps=10, max_seconds=60, eval_every=5, eval_batches=2),
            (("train_tokens", 20_000), ("eval_tokens", 5_000)),
            unroll=20,
            max_layers=1,
        ),
    },
)

LAPTOP = Preset(
    "laptop",
    {
        "memorize": TaskPreset(
            20_000, Budget(max_steps=8000, max_seconds=180, eval_every=250, eval_batches=10), max_layers=1
        ),
        "arithmetic": TaskPreset(
            40_000,
            Budget(max_steps=40_000, max_seconds=300, eval_every=1000, eval_batches=10),
            (("max_digits", 4), ("max_distractors", 1), ("stream", True)),
            max_layers=2,
        ),
        "xml": TaskPreset(
            30_000,
            Budget(max_steps=3000, max_seconds=300, eval_every=200, eval_batches=20),
            (("train_chars", 400_000), ("eval_chars", 20_000)),
            max_layers=2,
        ),
        "ptb": TaskPreset(
            2_200_000,
            Budget(max_steps=2000, max_seconds=600, eval_every=250, eval_batches=40),
            (("train_tokens", 0), ("eval_tokens", 30_000)),
            max_layers=2,
        ),
    },
)

PAPER = Preset(
    "paper",
    {
        "memorize": TaskPreset(50_000, Budget(max_steps=10_000, max_seconds=3600, eval_every=500, eval_batches=0)),
        "arithmetic": TaskPreset(
            200_000,
            Budget(max_steps=200_000, max_seconds=6 * 3600, eval_every=2000, eval_batches=0),
            (("max_digits", 8),),
        ),
        "xml": TaskPreset(200_000, Budget(max_steps=200_000, max_seconds=6 * 3600, eval_every=2000, eval_batches=0)),
        "ptb": TaskPreset(5_000_000, Budget(max_steps=40_000, max_seconds=12 * 3600, eval_every=1327, eval_batches=0)),
    },
)

PRESETS = {p.name: p for p in (SMOKE, LAPTOP, PAPER)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
