"""The bar a candidate's learning curve must keep above: successive halving against the GRU.

ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning") stops a
run at a rung (a step count growing by a factor ``eta``) unless it is in the top
``1/eta`` of the runs that reached that rung. Here the runs a candidate is ranked against
are not the candidates that came before it but the GRU's own hyperparameter settings on
the same task (its reference curves): the bar at each rung is fixed before any candidate
trains, so whether a candidate's setting is stopped never depends on the order in which
candidates arrive or on which other candidates are in flight. A setting continues while
its best validation accuracy so far is in the top ``1/eta`` of the GRU's settings at that
step; the trainer applies the bars (``Budget.trail``, ``rnnsearch.tasks.train``).

Pure: numpy only, the same curves give the same bars.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rungs(eval_every: int, max_steps: int, eta: int = 3) -> list[int]:
    """The steps ``eval_every * eta**k`` (k = 0, 1, ...) strictly below ``max_steps``."""
    if eval_every < 1 or eta < 2:
        raise ValueError(f"rungs need eval_every >= 1 and eta >= 2, got {eval_every} and {eta}")
    out, step = [], eval_every
    while step < max_steps:
        out.append(step)
        step *= eta
    return out


def best_by(curve: Sequence[tuple[int, float]], step: int) -> float | None:
    """The best accuracy ``curve`` reached at or before ``step``; None when it had not
    reached ``step`` (it ended earlier, e.g. diverged, or has no evaluation by then)."""
    points = [(int(s), float(a)) for s, a in curve]
    if not points or max(s for s, _ in points) < step:
        return None
    seen = [a for s, a in points if s <= step]
    return max(seen) if seen else None


def trail(
    curves: Sequence[Sequence[tuple[int, float]]],
    eval_every: int,
    max_steps: int,
    eta: int = 3,
    min_curves: int = 3,
) -> tuple[tuple[int, float], ...]:
    """``(step, bar)`` at each rung where at least ``min_curves`` reference curves reached
    the step: the ``1 - 1/eta`` quantile of their best accuracies so far (running max).
    A run whose best validation accuracy at that step is below the bar is stopped. Bars
    are rounded to 6 decimals so that they read back from JSON unchanged."""
    out = []
    for step in rungs(eval_every, max_steps, eta):
        values = [v for c in curves if (v := best_by(c, step)) is not None]
        if len(values) >= max(min_curves, 1):
            bar = float(np.quantile(np.asarray(values, dtype=np.float64), 1.0 - 1.0 / eta, method="linear"))
            out.append((step, round(bar, 6)))
    return tuple(out)
