"""Leaderboard and history frames, built from the store's plain values (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnsearch.cells.yardstick import GRU_HASH
from rnnsearch.db import SearchInfo, Store
from rnnsearch.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SEARCH_TASKS = ("arithmetic", "xml", "ptb")


@dataclass(frozen=True)
class Scope:
    """Which evaluations a frame covers: one search, or the whole database."""

    search: SearchInfo | None
    tasks: tuple[str, ...]

    @property
    def search_id(self) -> int | None:
        return self.search.id if self.search else None


def scope(store: Store, search: str | None = None) -> Scope:
    if search is not None:
        found = store.get_search(search)
        if found is None:
            names = ", ".join(s.name for s in store.searches()) or "none"
            raise UserError(f"no search named {search!r} (searches: {names})")
        tasks = tuple(found.config.get("tasks", SEARCH_TASKS))
        return Scope(found, tasks)
    searches = store.searches()
    if len(searches) == 1:
        return scope(store, searches[0].name)
    evaluated = {sc.task for sc in store.task_scores()}
    return Scope(None, tuple(t for t in SEARCH_TASKS if t in evaluated))


@dataclass(frozen=True)
class Board:
    """The leaderboard as plain rows (what the command prints, without pandas)."""

    rows: tuple[dict, ...]  # the rows shown, ranked
    columns: tuple[str, ...]
    total: int  # ranked architectures, shown or not
    tasks: tuple[str, ...]  # the search's tasks (fitness is over these)
    baseline: dict[str, float]  # the GRU's best validation accuracy per task
    preset: str | None
    ranked_by: str | None = None  # a task, or None: fitness
    pareto: bool = False  # only the Pareto front against parameters (see analysis.pareto)


def board(store: Store | str, search: str | None = None, top: int | None = None, task: str | None = None) -> Board:
    """One row per architecture: best validation accuracy per task (``<task>``), relative to
    the GRU's best (``<task>_rel``), fitness (min over the search's tasks of the relative
    accuracies), evaluations, parameters of one layer at n=128, stage; ranked by fitness,
    or by one task's accuracy with ``task``; the first ``top``."""
    own = isinstance(store, str)
    st = Store(store) if own else store
    try:
        sc = scope(st, search)
        if task is not None and task not in (*sc.tasks, "memorize"):
            raise UserError(f"task {task!r} is not part of this search (tasks: {', '.join(sc.tasks)})")
        scores = st.task_scores(sc.search_id)
        if not scores:
            raise UserError("no evaluations in this database yet: run `rnnsearch launch` first")
        archs = {a.id: a for a in st.architectures(ids={s.architecture_id for s in scores})}
        gru = next((a.id for a in archs.values() if a.hash == GRU_HASH), None)
        baseline = {s.task: s.best_val_accuracy for s in scores if s.architecture_id == gru}
        rows: dict[int, dict] = {}
        for s in scores:
            a = archs[s.architecture_id]
            row = rows.setdefault(
                a.id,
                {
                    "id": a.id,
                    "name": a.display_name,
                    "evaluations": 0,
                    "parameters": a.param_count(128),
                    "stage": a.stage,
                    "origin": a.origin,
                    "parent": a.parent_id,
                },
            )
            row["evaluations"] += s.evaluations
            row[s.task] = s.best_val_accuracy
            row[f"{s.task}_test"] = s.test_accuracy
        shown_tasks = [t for t in dict.fromkeys((*sc.tasks, "memorize")) if any(t in r for r in rows.values())]
        for row in rows.values():
            rels = []
            for t in shown_tasks:
                acc, base = row.get(t), baseline.get(t)
                row.setdefault(t, None)
                row.setdefault(f"{t}_test", None)
                rel = acc / base if acc is not None and base else None
                row[f"{t}_rel"] = rel
                if t in sc.tasks:
                    rels.append(rel)
            row["fitness"] = min(rels) if rels and all(r is not None for r in rels) else None
        key = f"{task}_rel" if task else "fitness"
        if task and all(r.get(key) is None for r in rows.values()):
            key = task
        ranked = sorted(rows.values(), key=lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["id"]))
        shown = ranked[:top] if top else ranked
        columns = ["rank", "id", "name", "formula"]
        for t in shown_tasks:
            columns += [t, f"{t}_rel"]
        columns += ["fitness", "evaluations", "parameters", "stage", "origin", "parent"]
        columns += [f"{t}_test" for t in shown_tasks]
        out = []
        for rank, row in enumerate(shown, 1):
            out.append({c: row.get(c) for c in columns} | {"rank": rank, "formula": archs[row["id"]].formula})
        preset = sc.search.config.get("preset") if sc.search else None
        return Board(tuple(out), tuple(columns), len(ranked), sc.tasks, baseline, preset, task)
    finally:
        if own:
            st.close()


def leaderboard(
    store: Store | str, search: str | None = None, top: int | None = None, task: str | None = None
) -> pd.DataFrame:
    """:func:`board` as a DataFrame; ``attrs`` holds ``tasks``, ``baseline``, ``preset``
    and ``total``."""
    import pandas as pd

    b = board(store, search, top, task)
    frame = pd.DataFrame(list(b.rows), columns=list(b.columns))
    frame["parent"] = frame["parent"].astype("Int64")
    for c in b.columns:  # a task column with no value yet is float, not object
        if c not in ("name", "formula", "stage", "origin", "parent"):
            frame[c] = pd.to_numeric(frame[c])
    frame.attrs.update(tasks=list(b.tasks), baseline=b.baseline, preset=b.preset, total=b.total)
    return frame
