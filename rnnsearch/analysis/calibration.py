"""How much signal a preset has: the numbers ``rnnsearch calibrate`` prints.

A calibration (``SearchConfig(kind="calibration")``) trains a fixed panel on each task at a
preset's budget, ``replicates`` times, each time on the preset's number of random
settings (the same settings for every cell); a cell's score in a replicate is its best
validation accuracy over them, as a search scores a candidate. Per task:

- separation: (mean score of the known-good cells - mean of the known-bad) / the pooled
  standard deviation of the cells' scores over replicates;
- each known-bad cell's mean score relative to the GRU's;
- rho: Spearman's rank correlation, over the panel, between the mean score and the score
  of the cell's best setting trained again at ``reference_budget`` times the steps;
- the CPU-minutes an evaluation takes, and a candidate (the stage's settings), and a
  candidate that goes through every stage measured;
- memorize: how many settings pass the preset's bar, and so how often a cell would pass
  the filter with the preset's number of settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.db import Store
from rnnsearch.errors import UserError
from rnnsearch.states import FINISHED, IN_FLIGHT, Stage, Status

GOOD, BAD = zoo.KNOWN_GOOD, zoo.KNOWN_BAD


@dataclass(frozen=True)
class TaskCalibration:
    task: str
    settings: int  # per replicate: what a candidate gets at this stage
    scores: dict[str, tuple[float, ...]]  # cell -> best accuracy per finished replicate
    reference: dict[str, float]  # cell -> its best setting's accuracy at the long budget
    cpu_minutes_per_eval: float
    good_mean: float | None = None
    bad_mean: float | None = None
    pooled_sd: float | None = None
    separation: float | None = None
    rho: float | None = None
    relative: dict[str, float] = field(default_factory=dict)  # known-bad cell -> mean / GRU's mean
    # memorize only: cell -> (settings that passed, settings trained)
    passed: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def cpu_minutes_per_candidate(self) -> float:
        return self.settings * self.cpu_minutes_per_eval

    def pass_rate(self, cell: str) -> float | None:
        """The chance that at least one of ``settings`` random settings passes, from the
        fraction of all settings trained that passed."""
        ok, n = self.passed.get(cell, (0, 0))
        return 1.0 - (1.0 - ok / n) ** self.settings if n else None


@dataclass(frozen=True)
class Calibration:
    name: str
    preset: str
    replicates: int
    reference_budget: float
    threshold: float  # the memorize bar
    cells: tuple[str, ...]
    tasks: tuple[TaskCalibration, ...]
    pending: int  # evaluations not finished yet


def calibration(store: Store, name: str, cpus_per_eval: float = 1.0) -> Calibration:
    search = store.get_search(name)
    if search is None:
        raise UserError(f"no calibration named {name!r}")
    cfg = search.config
    if cfg.get("kind") != "calibration":
        raise UserError(f"{name!r} is a {cfg.get('kind', 'search')}, not a calibration")
    cells = tuple(cfg["seeds"])
    names = {}  # architecture id -> the panel's name for it (the database may know it by another)
    for cell in cells:
        graph = CellGraph.from_json(cfg["seed_graphs"][cell]) if cell in cfg.get("seed_graphs", {}) else zoo.get(cell)
        arch = store.lookup(graph)
        if arch is not None:
            names[arch.id] = cell
    evs = store.evaluations(search.id)
    out = []
    for task in cfg["tasks"]:
        k = cfg["memorize_settings"] if task == "memorize" else cfg["settings_per_task"]
        mine = [e for e in evs if e.task == task and names.get(e.architecture_id) in cells]
        out.append(_task(task, k, mine, names, cells, cfg["memorize_threshold"], cpus_per_eval))
    return Calibration(
        name,
        cfg["preset"],
        cfg.get("replicates", 1),
        cfg.get("reference_budget", 0.0),
        cfg["memorize_threshold"],
        cells,
        tuple(out),
        sum(1 for e in evs if e.status in IN_FLIGHT),
    )


def _task(task, settings, evs, names, cells, threshold, cpus) -> TaskCalibration:
    by_rep: dict[str, dict[str, list]] = {c: {} for c in cells}
    reference: dict[str, float] = {}
    walls = []
    passed: dict[str, list[int]] = {c: [0, 0] for c in cells}
    for e in evs:
        cell = names[e.architecture_id]
        if e.stage == Stage.REFERENCE:
            if e.status == Status.OK and e.val_accuracy is not None:
                reference[cell] = e.val_accuracy
            continue
        reps = by_rep[cell].setdefault(e.stage, [])
        reps.append(e)
        if e.status in FINISHED and e.wall_s:
            walls.append(e.wall_s)
        if e.status in FINISHED:
            passed[cell][1] += 1
            passed[cell][0] += int(e.status == Status.OK and (e.val_accuracy or 0.0) >= threshold)
    scores: dict[str, tuple[float, ...]] = {}
    for cell, reps in by_rep.items():
        best = []
        for rep in reps.values():
            if any(e.status in IN_FLIGHT for e in rep):
                continue  # a replicate counts once all its settings are in
            accs = [e.val_accuracy for e in rep if e.status == Status.OK and e.val_accuracy is not None]
            best.append(max(accs) if accs else 0.0)  # no setting trained: the cell learned nothing
        scores[cell] = tuple(best)
    stats = _separation(scores)
    means = {c: float(np.mean(v)) for c, v in scores.items() if v}
    gru = means.get("GRU")
    relative = {c: means[c] / gru for c in BAD if c in means and gru}
    return TaskCalibration(
        task=task,
        settings=settings,
        scores=scores,
        reference=reference,
        cpu_minutes_per_eval=(float(np.mean(walls)) * cpus / 60.0) if walls else math.nan,
        rho=_spearman(means, reference),
        relative=relative,
        passed={c: (p[0], p[1]) for c, p in passed.items()} if task == "memorize" else {},
        **stats,
    )


def _separation(scores: dict[str, tuple[float, ...]]) -> dict[str, float | None]:
    good = [v for c in GOOD for v in scores.get(c, ())]
    bad = [v for c in BAD for v in scores.get(c, ())]
    named = [v for c, v in scores.items() if c in GOOD + BAD and len(v) > 1]
    if not good or not bad:
        return {}
    gm, bm = float(np.mean(good)), float(np.mean(bad))
    if not named:
        return {"good_mean": gm, "bad_mean": bm}
    # pooled over the named cells: sum of squared deviations over the degrees of freedom
    ss = sum(float(np.sum((np.asarray(v) - np.mean(v)) ** 2)) for v in named)
    dof = sum(len(v) - 1 for v in named)
    sd = math.sqrt(ss / dof)
    sep = (gm - bm) / sd if sd > 0 else (math.inf if gm > bm else -math.inf if gm < bm else 0.0)
    return {"good_mean": gm, "bad_mean": bm, "pooled_sd": sd, "separation": sep}


def _spearman(means: dict[str, float], reference: dict[str, float]) -> float | None:
    both = [c for c in means if c in reference]
    if len(both) < 3:
        return None
    a = pd.Series([means[c] for c in both]).rank()
    b = pd.Series([reference[c] for c in both]).rank()
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


# -- printing -------------------------------------------------------------------------
def _f(v, fmt=".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, fmt)


def summary_lines(c: Calibration) -> list[str]:
    """The per-task signal table (fits 100 columns)."""
    head = (
        f"{'task':<11}{'good':>7}{'bad':>7}{'sd':>7}{'separation':>11}"
        f"{'Tanh÷GRU':>9}{'LSTM-f÷GRU':>11}{'rho':>6}{'CPU-min':>9}{'per cand':>9}"
    )
    lines = [head]
    for t in c.tasks:
        lines.append(
            f"{t.task:<11}{_f(t.good_mean):>7}{_f(t.bad_mean):>7}{_f(t.pooled_sd):>7}{_f(t.separation, '.1f'):>11}"
            f"{_f(t.relative.get('Tanh'), '.2f'):>9}{_f(t.relative.get('LSTM-f'), '.2f'):>11}"
            f"{_f(t.rho, '.2f'):>6}{_f(t.cpu_minutes_per_eval, '.2f'):>9}{_f(t.cpu_minutes_per_candidate, '.2f'):>9}"
        )
    total = sum(t.cpu_minutes_per_candidate for t in c.tasks)
    if len(c.tasks) > 1 and not math.isnan(total):
        lines.append(f"a candidate through every stage above: {total:.2f} CPU-minutes")
    return lines


def cell_lines(c: Calibration) -> list[str]:
    """Each cell's score per task: mean ± sd over replicates, and the long run's."""
    tasks = [t for t in c.tasks if t.task != "memorize"]
    head = f"{'cell':<12}" + "".join(f"{t.task[:10]:>22}" for t in tasks)
    lines = [head, f"{'':<12}" + "".join(f"{'mean ± sd':>14}{'long':>8}" for _ in tasks)]
    for cell in c.cells:
        row = f"{cell[:12]:<12}"
        for t in tasks:
            v = t.scores.get(cell, ())
            ms = f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else (f"{v[0]:.3f}" if v else "-")
            row += f"{ms:>14}{_f(t.reference.get(cell)):>8}"
        lines.append(row)
    return lines


def memorize_lines(c: Calibration) -> list[str]:
    mem = next((t for t in c.tasks if t.task == "memorize"), None)
    if mem is None:
        return []
    lines = [
        f"memorize filter (bar {c.threshold:g}, {mem.settings} settings a candidate): "
        "settings that passed, and the chance a candidate passes"
    ]
    for cell in c.cells:
        ok, n = mem.passed.get(cell, (0, 0))
        best = max(mem.scores.get(cell, ()), default=None)
        lines.append(f"  {cell[:12]:<12} {ok:>3}/{n:<3} passes {_f(mem.pass_rate(cell), '.0%'):>5}   best {_f(best)}")
    return lines


def text_report(c: Calibration) -> list[str]:
    lines = [
        f"calibration {c.name}: preset {c.preset}, {c.replicates} replicate(s), "
        f"long runs at {c.reference_budget:g}x the steps"
        + (f" ({c.pending} evaluations not finished)" if c.pending else "")
    ]
    lines += [""] + summary_lines(c)
    if any(t.task != "memorize" for t in c.tasks):
        lines += [""] + cell_lines(c)
    mem = memorize_lines(c)
    return lines + ([""] + mem if mem else [])


def to_json(c: Calibration) -> dict:
    return {
        "name": c.name,
        "preset": c.preset,
        "replicates": c.replicates,
        "reference_budget": c.reference_budget,
        "memorize_threshold": c.threshold,
        "pending": c.pending,
        "tasks": [
            {
                "task": t.task,
                "settings": t.settings,
                "good_mean": t.good_mean,
                "bad_mean": t.bad_mean,
                "pooled_sd": t.pooled_sd,
                "separation": t.separation,
                "relative_to_gru": t.relative,
                "rho": t.rho,
                "cpu_minutes_per_eval": t.cpu_minutes_per_eval,
                "cpu_minutes_per_candidate": t.cpu_minutes_per_candidate,
                "scores": {k: list(v) for k, v in t.scores.items()},
                "reference": t.reference,
                **(
                    {
                        "memorize_passed": {k: list(v) for k, v in t.passed.items()},
                        "memorize_pass_rate": {k: t.pass_rate(k) for k in t.passed},
                    }
                    if t.task == "memorize"
                    else {}
                ),
            }
            for t in c.tasks
        ],
    }
