"""Sizes and budgets per task: ``smoke`` (seconds, for tests; its accuracies mean nothing),
``laptop`` (minutes on 2 cores, tuned with ``rnnsearch calibrate``: see the README's
"Signal" section), ``paper`` (Jozefowicz et al.'s scale).

What ``laptop`` changes from the paper, and why (each measured with ``calibrate``):

- memorize: the bar is 40% instead of 95% (5 symbols of 26: chance is 4%, a cell that
  remembers nothing stays near it, and one that holds two of the five symbols passes),
  2,000 steps: the GRU learns this task last of the good cells, reaches 95% only after
  ~3,000 steps at the best settings, and at a bar of 50% missed it in 1 setting of 6;
- arithmetic: numbers of up to 2 digits with at most one distractor between characters,
  examples back to back with the state carried (the cell must clear its memory): the
  task is learnt within the budget by the good cells and not by Tanh or LSTM-f;
- XML: tags of 1-3 letters, at most 4 open, scored on the characters of closing tags
  (the letters of an opening tag are random, so every cell predicts them alike);
- learning rates 0.1-0.5 and init scales 0.7-2 (``LAPTOP_GRID``; memorize 0.2-0.5): at a
  few thousand steps, rates of 1 and above diverge or stall, and the extreme init scales
  stall;
- PTB: 1.1M parameters (n of about 50) and 20k validation tokens: 69 s a setting on one
  core of an AVX2 CPU against 96 s at 2.2M (the 10k-word softmax is most of it), and PTB,
  where every cell scores alike, is the costliest stage;
- one layer on arithmetic and XML: at the same parameter budget two narrower layers
  rarely learn XML's closing tags in 2,000 steps (the GRU and LSTM-b stayed at 0.33-0.39,
  what no memory gives, in 9 of 13 two-layer settings, and in none of 10 one-layer ones),
  so half the settings would be spent on nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rnnsearch.errors import UserError
from rnnsearch.tasks.api import Budget
from rnnsearch.tasks.hparams import PAPER_GRID, Grid


@dataclass(frozen=True)
class TaskPreset:
    param_budget: int
    budget: Budget
    options: tuple[tuple[str, Any], ...] = ()
    batch_size: int = 20
    unroll: int = 35
    max_layers: int = 4
    grid: Grid = PAPER_GRID  # where random settings are drawn from


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

# For a few thousand steps of SGD: the paper's rates of 1 and above diverge or stall there.
LAPTOP_GRID = Grid(
    init_scales=(0.7, 1.0, 1.4, 2.0),
    learning_rates=(0.1, 0.2, 0.3, 0.5),
    max_grad_norms=PAPER_GRID.max_grad_norms,
)

# Memorize scores 5 targets an example (XML all 35 of a row): on the loss summed over
# time its gradient is that much smaller, and at 0.1 the GRU does not learn it in time.
MEMORIZE_GRID = dataclasses.replace(LAPTOP_GRID, learning_rates=(0.2, 0.3, 0.5))

LAPTOP = Preset(
    "laptop",
    {
        "memorize": TaskPreset(
            20_000,
            Budget(max_steps=2000, max_seconds=120, eval_every=200, eval_batches=10),
            max_layers=1,
            grid=MEMORIZE_GRID,
        ),
        "arithmetic": TaskPreset(
            40_000,
            Budget(max_steps=2500, max_seconds=300, eval_every=250, eval_batches=25),
            (("max_digits", 2), ("max_distractors", 1), ("stream", True)),
            max_layers=1,
            grid=LAPTOP_GRID,
        ),
        "xml": TaskPreset(
            30_000,
            Budget(max_steps=2000, max_seconds=300, eval_every=200, eval_batches=20),
            (
                ("train_chars", 400_000),
                ("eval_chars", 20_000),
                ("min_tag", 1),
                ("max_tag", 3),
                ("max_depth", 4),
                ("score", "closing"),
            ),
            max_layers=1,
            grid=LAPTOP_GRID,
        ),
        "ptb": TaskPreset(
            1_100_000,
            Budget(max_steps=400, max_seconds=600, eval_every=80, eval_batches=30),
            (("train_tokens", 0), ("eval_tokens", 20_000)),
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


def preset_note(name: str | None) -> str | None:
    """The one line a preset's results come with, if any."""
    if name == "smoke":
        return "smoke preset: a check of the machinery, its accuracies mean nothing (--preset laptop for results)"
    return None


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
