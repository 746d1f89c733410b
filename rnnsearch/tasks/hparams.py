"""Hyperparameter grids (Jozefowicz et al.'s, and narrower ones for short budgets) and a
seeded sampler."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnsearch.tasks.api import HParams

if TYPE_CHECKING:  # only the caller's generator is used: a preset's note needs no numpy
    import numpy as np


@dataclass(frozen=True)
class Grid:
    """The values a random setting is drawn from, uniformly, one grid at a time."""

    init_scales: tuple[float, ...]
    learning_rates: tuple[float, ...]
    max_grad_norms: tuple[float, ...]
    layers: tuple[int, ...] = (1, 2, 3, 4)


# The paper's grids: for training to convergence, over days.
PAPER_GRID = Grid(
    init_scales=(0.3, 0.7, 1.0, 1.4, 2.0, 2.8),
    learning_rates=(0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
    max_grad_norms=(1.0, 2.5, 5.0, 10.0, 20.0),
)


def sample(
    rng: np.random.Generator, param_budget: int, max_layers: int = 4, grid: Grid = PAPER_GRID, **fixed
) -> HParams:
    """One setting drawn uniformly from each of ``grid``'s grids (layers up to ``max_layers``)."""
    layers = [n for n in grid.layers if n <= max_layers] or [min(grid.layers)]
    hp = HParams(
        init_scale=float(rng.choice(grid.init_scales)),
        learning_rate=float(rng.choice(grid.learning_rates)),
        max_grad_norm=float(rng.choice(grid.max_grad_norms)),
        layers=int(rng.choice(layers)),
        param_budget=int(param_budget),
    )
    return dataclasses.replace(hp, **fixed) if fixed else hp


def parse_overrides(pairs: list[str]) -> dict[str, float | int]:
    """``["learning_rate=0.5", "layers=2"]`` -> typed fields of HParams (ValueError if bad)."""
    fields = {f.name: f.type for f in dataclasses.fields(HParams)}
    aliases = {"lr": "learning_rate", "init": "init_scale", "max_norm": "max_grad_norm", "budget": "param_budget"}
    out: dict[str, float | int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if not sep or key not in fields:
            raise ValueError(f"bad --hparams {pair!r}: use key=value with key one of {', '.join(fields)}")
        try:
            out[key] = int(value) if fields[key] in ("int", int) else float(value)
        except ValueError:
            raise ValueError(f"bad --hparams {pair!r}: {value!r} is not a number") from None
    return out
