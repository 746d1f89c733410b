"""Jozefowicz et al.'s hyperparameter grids and a seeded sampler."""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnsearch.tasks.api import HParams

INIT_SCALES = (0.3, 0.7, 1.0, 1.4, 2.0, 2.8)
LEARNING_RATES = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
MAX_GRAD_NORMS = (1.0, 2.5, 5.0, 10.0, 20.0)
LAYERS = (1, 2, 3, 4)


def sample(rng: np.random.Generator, param_budget: int, max_layers: int = 4, **fixed) -> HParams:
    """One setting drawn uniformly from each grid (layers up to ``max_layers``)."""
    layers = [n for n in LAYERS if n <= max_layers]
    hp = HParams(
        init_scale=float(rng.choice(INIT_SCALES)),
        learning_rate=float(rng.choice(LEARNING_RATES)),
        max_grad_norm=float(rng.choice(MAX_GRAD_NORMS)),
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
