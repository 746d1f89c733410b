"""What a search's mutated candidates did: their best fitness as results came in, how
far they got through the stages, and which mutation operators paid off.

Seeds (the zoo cells a search starts from) are left out of the progress: the GRU is a
seed and sets the yardstick, so a best-so-far over every cell sits at 1.0 from the GRU's
first results and hides whatever the mutations achieve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from rnnsearch.analysis.frames import Scope
from rnnsearch.db import ArchitectureInfo, EvaluationInfo, Store
from rnnsearch.states import Stage, Status

MUTATION = "mutation"
PASSED_MEMORIZE = (Stage.TASK1, Stage.STOPPED, Stage.OTHER, Stage.COMPLETE)


def mutant_history(
    store: Store, sc: Scope, board: pd.DataFrame, evaluations: list[EvaluationInfo] | None = None
) -> pd.DataFrame:
    """One row per moment a mutated candidate's fitness appeared or rose: ``minutes`` since
    the search queued its first evaluation, ``evaluation`` (finished evaluations so far),
    the candidate's ``id`` and ``fitness``, and ``best``, the best fitness of any mutated
    candidate so far. Fitness is measured against the GRU's final best, as in
    ``leaderboard``, so ``best`` only rises. ``evaluations``: the search's, where the
    caller has them already."""
    tasks = list(board.attrs["tasks"])
    base = board.attrs["baseline"]
    mutants = set(board.loc[board["origin"] == MUTATION, "id"].astype(int))
    columns = ["minutes", "evaluation", "id", "fitness", "best"]
    evs = store.evaluations(sc.search_id) if evaluations is None else evaluations
    if not evs or not tasks or not all(base.get(t) for t in tasks):
        return pd.DataFrame(columns=columns)
    t0 = min(e.created_at for e in evs)
    done = sorted((e for e in evs if e.finished_at is not None), key=lambda e: (e.finished_at, e.id))
    best: dict[tuple[int, str], float] = {}
    fitness: dict[int, float] = {}
    top = None
    rows = []
    for i, e in enumerate(done, 1):
        a = e.architecture_id
        if a not in mutants or e.status != Status.OK or e.val_accuracy is None or e.task not in tasks:
            continue
        if e.val_accuracy <= best.get((a, e.task), -1.0):
            continue
        best[(a, e.task)] = e.val_accuracy
        if not all((a, t) in best for t in tasks):
            continue
        f = min(best[(a, t)] / base[t] for t in tasks)
        if f <= fitness.get(a, -1.0):
            continue
        fitness[a] = f
        top = f if top is None else max(top, f)
        minutes = (e.finished_at - t0).total_seconds() / 60
        rows.append({"minutes": minutes, "evaluation": i, "id": a, "fitness": f, "best": top})
    return pd.DataFrame(rows, columns=columns)


def best_seed(board: pd.DataFrame) -> tuple[str, float] | None:
    """The fittest seed (name, fitness): the bar a mutation has to clear to be news."""
    seeds = board[(board["origin"] != MUTATION) & board["fitness"].notna()]
    if seeds.empty:
        return None
    row = seeds.loc[seeds["fitness"].astype(float).idxmax()]
    return str(row["name"]), float(row["fitness"])


@dataclass(frozen=True)
class FunnelStep:
    label: str
    reached: int
    note: str = ""  # e.g. how many are still at this stage
    phrase: str = ""  # what the candidates that reached it did, for a sentence


def stage_counts(store: Store, sc: Scope) -> dict[str, int]:
    """Mutated candidates by the last stage each reached (every search when there is no one
    search in scope). Degenerate candidates are refused before training, so they have no
    evaluations and no leaderboard row: only the store counts them."""
    ids = [sc.search_id] if sc.search_id is not None else [s.id for s in store.searches()]
    total: Counter[str] = Counter()
    for i in ids:
        total.update(store.stage_counts(i))
    return dict(total)


def funnel(counts: dict[str, int], tasks: Iterable[str]) -> list[FunnelStep]:
    """How many mutated candidates reached each stage: each step counts those that ended
    there or went further."""
    tasks = list(tasks)
    n = sum(counts.values())

    def past(*stages: str) -> int:
        return sum(counts.get(s, 0) for s in stages)

    def still(stage: str) -> str:
        return f"{counts[stage]} still training" if counts.get(stage) else ""

    first = tasks[0] if tasks else "task 1"
    reached_first = past(*PASSED_MEMORIZE)
    steps = [
        FunnelStep("made by mutation", n, "", "made"),
        FunnelStep(
            "not degenerate, not a duplicate (trained)",
            n - past(Stage.DEGENERATE, Stage.DUPLICATE),
            still(Stage.MEMORIZE),
            "were trained",
        ),
        FunnelStep(f"passed memorize, trained on {first}", reached_first, still(Stage.TASK1), "passed memorize"),
    ]
    if len(tasks) > 1:
        others = ", ".join(tasks[1:])
        steps.append(
            FunnelStep(
                f"passed {first}, trained on {others}",
                past(Stage.OTHER, Stage.COMPLETE),
                still(Stage.OTHER),
                f"passed {first}",
            )
        )
    steps.append(FunnelStep("complete: a fitness on every task", past(Stage.COMPLETE), "", "completed every task"))
    return steps


@dataclass(frozen=True)
class OperatorYield:
    operator: str
    children: int  # mutated candidates whose mutation used the operator
    trained: int  # of those, how many passed memorize
    beat_parent: int  # of those, how many have a fitness above their parent's


def operator_yield(archs: Iterable[ArchitectureInfo], board: pd.DataFrame) -> list[OperatorYield]:
    """Per mutation operator, its children and how they fared. A child whose mutation used
    several operators counts once for each of them."""
    fit = {int(i): float(f) for i, f in zip(board["id"], board["fitness"], strict=True) if pd.notna(f)}
    passed = set(PASSED_MEMORIZE)
    children: Counter[str] = Counter()
    trained: Counter[str] = Counter()
    beat: Counter[str] = Counter()
    for a in archs:
        if a.origin != MUTATION:
            continue
        ops = {str(op[0]) for op in a.mutation_ops if op}
        children.update(ops)
        if a.stage in passed:
            trained.update(ops)
        if a.id in fit and a.parent_id in fit and fit[a.id] > fit[a.parent_id]:
            beat.update(ops)
    order = sorted(children, key=lambda k: (-children[k], k))
    return [OperatorYield(k, children[k], trained[k], beat[k]) for k in order]


def cell_title(arch_id: int, name: str) -> str:
    """``#25`` for a candidate, ``#2 GRU`` for a named cell (never ``#25 #25``)."""
    return f"#{arch_id}" if not name or name == f"#{arch_id}" else f"#{arch_id} {name}"
