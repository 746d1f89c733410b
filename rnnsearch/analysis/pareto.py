"""The Pareto front of fitness (higher is better) against parameters (fewer is better).

A cell is on the front when no other cell dominates it: has a fitness at least as high
and at most as many parameters, and is strictly better on one of the two. Two cells with
the same fitness and the same parameters do not dominate each other: both stay. A cell
without a fitness (None or NaN) is not ranked, so it is neither on the front nor
dominates anything.

The leaderboard's parameters are those of one layer of the cell at the width n=128
(``ArchitectureInfo.param_count(128)``): a search trains every candidate at the same
parameter budget, which fixes a width for each cell, so what tells cells apart is how
many parameters a cell spends per unit of width, and a fixed reference width measures
exactly that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnsearch.analysis.frames import Board

PARAMETERS_AT = 128  # the width at which the leaderboard counts a cell's parameters
PARAMETERS_MEANING = f"parameters of one layer of the cell at width n={PARAMETERS_AT}"


def _number(value: Any) -> float | None:
    """``value`` as a float, or None for a missing value (None, NaN, pandas' NA)."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def pareto_front(
    rows: Iterable[Mapping[str, Any]], key: str = "id", fitness: str = "fitness", params: str = "parameters"
) -> list[Hashable]:
    """The keys (``row[key]``) of the rows on the Pareto front of ``row[fitness]``
    (higher is better) against ``row[params]`` (lower is better), sorted by parameters
    ascending. Rows without a fitness or a parameter count are left out. Exact ties (the
    same fitness and parameters) all stay, in the order given."""
    scored = []
    for row in rows:
        f, p = _number(row.get(fitness)), _number(row.get(params))
        if f is not None and p is not None:
            scored.append((p, f, row[key]))
    scored.sort(key=lambda t: (t[0], -t[1]))  # stable: ties keep their order
    front: list[Hashable] = []
    best = -math.inf  # the highest fitness among cells with fewer parameters
    i = 0
    while i < len(scored):
        p, top = scored[i][0], scored[i][1]  # the group with these parameters, best first
        j = i
        while j < len(scored) and scored[j][0] == p:
            if scored[j][1] == top and top > best:
                front.append(scored[j][2])
            j += 1
        best = max(best, top)
        i = j
    return front


def objective(board: Board) -> str:
    """The column a board ranks by, which is what its front maximises: fitness, or with
    ``--task`` that task's accuracy relative to the GRU's (its plain accuracy where no
    GRU result gives a ratio yet)."""
    task = board.ranked_by
    if task is None:
        return "fitness"
    if any(r.get(f"{task}_rel") is not None for r in board.rows):
        return f"{task}_rel"
    return task


def pareto_board(board: Board, top: int | None = None) -> Board:
    """``board`` (every row: built with ``top=None``) cut to its Pareto front against
    parameters, ordered by parameters, the first ``top`` of it. The rows keep their rank
    on the whole board; ``total`` counts the front."""
    by_id = {r["id"]: r for r in board.rows}
    ids = pareto_front(board.rows, fitness=objective(board))
    rows = tuple(by_id[i] for i in ids)
    shown = rows[:top] if top else rows
    return dataclasses.replace(board, rows=shown, total=len(rows), pareto=True)


def unscored_line(board: Board) -> str:
    """What to say when no row of ``board`` has the value its front is made of."""
    if board.ranked_by is not None:
        return f"no architecture has a result on {board.ranked_by} yet: there is no Pareto front to show"
    tasks = ", ".join(board.tasks)
    return (
        f"no architecture has a fitness yet (it needs a result on every task: {tasks}): "
        "there is no Pareto front to show"
    )
