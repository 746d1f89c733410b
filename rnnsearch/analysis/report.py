"""A self-contained report of a search: one HTML page and the PNG plots it shows."""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from rnnsearch.analysis.draw import draw_graph  # noqa: E402
from rnnsearch.analysis.frames import fitness_history, leaderboard, scope  # noqa: E402
from rnnsearch.db import Store  # noqa: E402

STAGES = ("filtered_memorize", "stopped_task1", "complete", "memorize", "task1", "other_tasks")
STAGE_LABELS = {
    "filtered_memorize": "removed by memorize",
    "stopped_task1": "stopped at task 1",
    "complete": "complete",
    "memorize": "in memorize",
    "task1": "in task 1",
    "other_tasks": "in other tasks",
}


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_history(hist: pd.DataFrame, folder: Path) -> list[str]:
    out = []
    for x, label, name in (
        ("evaluation", "evaluations finished", "fitness_by_evaluation.png"),
        ("seconds", "seconds since the first result", "fitness_by_time.png"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.step(hist[x], hist["best_fitness"], where="post", color="#1f77b4")
        ax.axhline(1.0, color="#d62728", linestyle="--", linewidth=1, label="GRU = 1")
        ax.set_xlabel(label)
        ax.set_ylabel("best fitness so far")
        ax.set_title("Best fitness over evaluations" if x == "evaluation" else "Best fitness over time")
        ax.legend(loc="lower right")
        out.append(_save(fig, folder / name))
    return out


def plot_tasks(board: pd.DataFrame, tasks: list[str], baseline: dict, folder: Path) -> str:
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        frame = board.dropna(subset=[t]).sort_values(t)
        colors = ["#d62728" if n == "GRU" else "#2ca02c" if n == "LSTM" else "#1f77b4" for n in frame["name"]]
        ax.scatter(range(len(frame)), frame[t], s=14, c=colors)
        if baseline.get(t) is not None:
            ax.axhline(baseline[t], color="#d62728", linestyle="--", linewidth=1, label="GRU best")
            ax.legend(loc="lower right")
        ax.set_title(t)
        ax.set_xlabel("architectures, sorted")
        ax.set_ylabel("best validation accuracy")
    fig.suptitle("Accuracy per task of every architecture against the GRU")
    return _save(fig, folder / "accuracy_per_task.png")


def plot_stages(board: pd.DataFrame, folder: Path) -> str:
    counts = Counter(board.loc[board["origin"] == "mutation", "stage"])
    labels = [STAGE_LABELS[s] for s in STAGES if counts.get(s)]
    values = [counts[s] for s in STAGES if counts.get(s)]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.barh(labels or ["no candidates"], values or [0], color="#9467bd")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center")
    ax.set_xlabel("candidates")
    ax.set_title("Where the candidates ended")
    return _save(fig, folder / "stages.png")


def plot_operators(board: pd.DataFrame, archs: dict, folder: Path) -> str:
    """Operators in mutations whose child beat its parent's fitness, against all mutations."""
    fit = dict(zip(board["id"], board["fitness"], strict=True))
    used, improved = Counter(), Counter()
    for a in archs.values():
        if a.origin != "mutation":
            continue
        ops = {op[0] for op in a.mutation_ops}
        used.update(ops)
        child, parent = fit.get(a.id), fit.get(a.parent_id)
        if child is not None and parent is not None and pd.notna(child) and pd.notna(parent) and child > parent:
            improved.update(ops)
    names = sorted(used, key=lambda k: -used[k])
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.barh(names or ["none"], [used[n] for n in names] or [0], color="#c7c7c7", label="in all mutations")
    ax.barh(names or ["none"], [improved[n] for n in names] or [0], color="#ff7f0e", label="in improvements")
    ax.invert_yaxis()
    ax.set_xlabel("mutations")
    ax.set_title("Which operators produced improvements")
    ax.legend(loc="lower right")
    return _save(fig, folder / "operators.png")


def write_report(store: Store, folder: str | Path, search: str | None = None, top: int = 5) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sc = scope(store, search)
    board = leaderboard(store, search)
    tasks = board.attrs["tasks"]
    baseline = board.attrs["baseline"]
    archs = {a.id: a for a in store.architectures(search_id=sc.search_id)}
    hist = fitness_history(store, search)
    images = plot_history(hist, folder)
    images.append(plot_tasks(board, tasks, baseline, folder))
    images.append(plot_stages(board, folder))
    images.append(plot_operators(board, archs, folder))
    cells = []
    for _, row in board.head(top).iterrows():
        png = f"cell_{int(row['id'])}.png"
        draw_graph(
            archs[int(row["id"])].graph()
            if int(row["id"]) in archs
            else store.get_architecture(int(row["id"])).graph(),
            folder / png,
            title=f"#{int(row['id'])} {row['name']}",
        )
        cells.append((row, png))
    page = _page(sc, board, tasks, baseline, images, cells, len(hist))
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _fmt(v, digits=4) -> str:
    return "–" if v is None or (isinstance(v, float) and pd.isna(v)) else f"{v:.{digits}f}"


def _page(sc, board, tasks, baseline, images, cells, n_evals) -> str:
    e = html.escape
    title = f"rnnsearch report: {sc.search.name if sc.search else 'all searches'}"
    head = "".join(f"<th>{e(t)}</th><th>{e(t)} / GRU</th>" for t in tasks)
    rows = []
    for _, r in board.head(20).iterrows():
        vals = "".join(f"<td>{_fmt(r.get(t))}</td><td>{_fmt(r.get(f'{t}_rel'), 3)}</td>" for t in tasks)
        rows.append(
            f"<tr><td>{int(r['rank'])}</td><td>{int(r['id'])}</td><td>{e(str(r['name']))}</td>{vals}"
            f"<td><b>{_fmt(r['fitness'], 3)}</b></td><td>{int(r['evaluations'])}</td><td>{e(str(r['stage']))}</td>"
            f"<td class=f>{e(str(r['formula']))}</td></tr>"
        )
    figs = "".join(f'<figure><img src="{e(i)}" alt="{e(i)}"></figure>' for i in images)
    drawn = "".join(
        f'<figure><img src="{e(png)}" alt="cell {int(r["id"])}"><figcaption>#{int(r["id"])} {e(str(r["name"]))}, '
        f"fitness {_fmt(r['fitness'], 3)}<br><code>{e(str(r['formula']))}</code></figcaption></figure>"
        for r, png in cells
    )
    base = ", ".join(f"{e(t)} {_fmt(v)}" for t, v in baseline.items() if t in tasks) or "none yet"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }}
td.f {{ text-align: left; font-family: monospace; max-width: 32em; overflow-wrap: anywhere; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; max-width: 560px; }}
figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 0.8em; }}
</style></head><body>
<h1>{e(title)}</h1>
<p>{len(board)} architectures, {n_evals} finished evaluations; tasks: {e(", ".join(tasks))}. GRU's best (the yardstick): {base}.
Fitness is the minimum over tasks of the best validation accuracy divided by the GRU's
(the plots of fitness over the search use the GRU's final best).</p>
<h2>Leaderboard (top 20)</h2>
<table><tr><th>rank</th><th>id</th><th>name</th>{head}<th>fitness</th><th>evals</th><th>stage</th><th>formula</th></tr>
{"".join(rows)}</table>
<h2>The search</h2>{figs}
<h2>The top cells</h2>{drawn}
</body></html>
"""
