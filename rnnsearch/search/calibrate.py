"""The calibration panel and its configuration (``rnnsearch calibrate``).

The panel: the known-good cells (GRU, LSTM-b, MUT1: Jozefowicz et al.'s best), the
known-bad ones (Tanh, LSTM-f: their worst on arithmetic and XML), and a few random
mutants of the seeds, drawn by the search's own operators from a fixed seed so that
every calibration measures the same ones (degenerate draws are skipped).
"""

from __future__ import annotations

import numpy as np

from rnnsearch.cells import CellGraph, canonical_hash, zoo
from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.search.config import SearchConfig, config_for
from rnnsearch.search.mutations import MutationFailed, mutate

MUTANT_PARENTS = ("GRU", "LSTM", "MUT1")
MUTANT_SEED = 2015


def panel_mutants(count: int) -> dict[str, CellGraph]:
    """``count`` fixed non-degenerate mutants, named mutant-1, mutant-2, ..."""
    out: dict[str, CellGraph] = {}
    seen: set[str] = set()
    draw = 0
    while len(out) < count:
        parent = MUTANT_PARENTS[draw % len(MUTANT_PARENTS)]
        rng = np.random.default_rng([MUTANT_SEED, draw])
        draw += 1
        try:
            child, _ = mutate(zoo.get(parent), rng)
        except MutationFailed:
            continue
        h = canonical_hash(child)
        if zoo.lookup_name(child) is None and h not in seen and degeneracy(child) is None:
            seen.add(h)
            out[f"mutant-{len(out) + 1}"] = child
    return out


def calibration_config(
    name: str,
    preset: str,
    tasks: tuple[str, ...],
    replicates: int,
    reference_budget: float,
    mutants: int,
    seed: int = 0,
) -> SearchConfig:
    mutant_graphs = panel_mutants(mutants)
    cells = (*zoo.KNOWN_GOOD, *zoo.KNOWN_BAD, *mutant_graphs)
    return config_for(
        name,
        preset,
        tasks=tasks,
        seed=seed,
        seeds=cells,
        kind="calibration",
        seed_graphs={k: g.to_json() for k, g in mutant_graphs.items()},
        replicates=replicates,
        reference_budget=reference_budget,
    )
