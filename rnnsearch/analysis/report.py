"""A report of a search as one self-contained HTML file: the plots are inlined as PNG
data URIs and the drawn cells as inline SVG (or PNG), so the page can be mailed, kept
next to a paper draft or opened years later without a folder of images."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rnnsearch.analysis import plots
from rnnsearch.analysis.draw import render_cell
from rnnsearch.analysis.frames import Scope, leaderboard, scope
from rnnsearch.analysis.page import CSS, leaderboard_table, notation
from rnnsearch.analysis.pareto import pareto_front
from rnnsearch.analysis.progress import (
    best_seed,
    cell_title,
    funnel,
    mutant_history,
    operator_yield,
    stage_counts,
)
from rnnsearch.db import Store
from rnnsearch.states import IN_FLIGHT

NONE_PASSED = "No mutated candidate has passed every task yet"


def report_path(path: str | Path) -> Path:
    """The file to write: ``path`` itself, or ``index.html`` inside it when it is a folder:
    one that exists, or a new one, named with a trailing slash or without a suffix (as
    ``report -o report/`` always wrote ``report/index.html``)."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", "\\")) or (not p.exists() and not p.suffix):
        return p / "index.html"
    return p


@dataclass(frozen=True)
class Card:
    """One card of the page's grid: a heading, an image (or a sentence) and a caption."""

    heading: str
    image: str  # a data URI, or "" for a card that only has text
    alt: str
    caption: str


def write_report(store: Store, path: str | Path, search: str | None = None, top: int = 5, engine: str = "auto") -> Path:
    """Write the report to ``path`` (a file, or a folder's ``index.html``: see
    :func:`report_path`) and return the file written; nothing else is written. ``engine``
    draws the cells: ``dot``, ``matplotlib`` or ``auto`` (dot where it is installed)."""
    out = report_path(path)
    sc = scope(store, search)
    board = leaderboard(store, search)  # first, so an empty database writes nothing
    page = build_page(store, sc, board, top, engine)
    if out.parent != Path(path).parent:  # a folder named for the report: make it
        out.parent.mkdir(exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def build_page(store: Store, sc: Scope, board: pd.DataFrame, top: int = 5, engine: str = "auto") -> str:
    e = html.escape
    tasks = board.attrs["tasks"]
    baseline = board.attrs["baseline"]
    archs = {a.id: a for a in store.architectures(search_id=sc.search_id)}
    evaluations = store.evaluations(sc.search_id)
    hist = mutant_history(store, sc, board, evaluations)
    seed = best_seed(board)
    counts = stage_counts(store, sc)
    steps = funnel(counts, tasks)
    made = steps[0].reached
    title = f"rnnsearch report: {sc.search.name if sc.search else 'all searches'}"

    finished = [v for v in evaluations if v.finished_at is not None]
    span = (
        (max(v.finished_at for v in finished) - min(v.created_at for v in finished)).total_seconds() / 60
        if finished
        else 0.0
    )
    cards = [_progress_card(hist, seed, steps, span)]
    if made:
        cards.append(
            Card(
                "How far the candidates got",
                plots.png_uri(plots.funnel_plot(steps)),
                "stage funnel",
                "Each bar counts the mutated candidates that reached a stage or went further. Degenerate "
                "candidates (whose output ignores the input or the state) are refused before training.",
            )
        )
        cards.append(
            Card(
                "What each mutation operator produced",
                plots.png_uri(plots.operator_plot(operator_yield(archs.values(), board))),
                "operator yield",
                "Grey: children whose mutation used the operator; light orange: those that passed memorize; "
                "dark orange: those whose fitness beat their parent's. A child made by several operators "
                "counts for each.",
            )
        )
    cards.append(_pareto_card(board))
    cards += _task_cards(board, sc, tasks, baseline)
    figures = "\n".join(_card(c) for c in cards)
    cells = "\n".join(_cell_card(store, archs, row, engine) for _, row in board.head(top).iterrows())
    base = ", ".join(f"{e(t)} {baseline[t]:.4f}" for t in tasks if baseline.get(t) is not None) or "none yet"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style></head><body><main>
<header><h1>{e(title)}</h1>
<p class="lead">{_summary(store, sc, board, hist, seed, made, len(finished), span)}</p>
<p class="note">Fitness is the minimum over the tasks ({e(", ".join(tasks))}) of an architecture's best
validation accuracy divided by the GRU's best; the GRU's best (the yardstick): {base}. Plots measure
against the GRU's final best, so a fitness shown earlier in the search is on the same scale.</p></header>
<section><h2>The search</h2><div class="grid">
{figures}
</div></section>
<section><h2>Leaderboard (top 20)</h2><div class="card">{leaderboard_table(board.head(20), tasks)}{notation()}</div></section>
<section><h2>The top {min(top, len(board))} cells</h2><div class="grid cells">
{cells}
</div></section>
</main></body></html>
"""


def _duration(minutes: float) -> str:
    if minutes < 2:
        return f"{minutes * 60:.0f} seconds"
    return f"{minutes:,.0f} minutes" if minutes < 180 else f"{minutes / 60:,.1f} hours"


def _summary(store: Store, sc: Scope, board, hist, seed, made: int, finished: int, span: float) -> str:
    e = html.escape
    status = store.status_counts(sc.search_id)
    done = ", ".join(f"{n} {k}" for k, n in sorted(status.items()) if k not in IN_FLIGHT)
    parts = [f"{made} candidates made by mutation"] if made else []
    parts.append(f"{len(board)} architectures evaluated")
    parts.append(f"{finished} evaluations finished ({e(done)}) in {_duration(span)}")
    if sc.search:
        parts.append(f"preset {e(str(sc.search.config.get('preset', '?')))}, status {e(sc.search.status)}")
    text = "; ".join(parts) + "."
    if not hist.empty:
        last = hist.iloc[-1]
        winner = int(hist.loc[hist["fitness"] == last["best"], "id"].iloc[0])
        text += f" Best mutated candidate: <b>#{winner}</b>, fitness <b>{last['best']:.3f}</b>"
        text += f" (best seed: {e(seed[0])} {seed[1]:.3f})." if seed else "."
    elif seed:
        text += f" Best seed: {e(seed[0])}, fitness {seed[1]:.3f}."
    return text


def _progress_card(hist: pd.DataFrame, seed, steps, span: float) -> Card:
    heading = "Best mutated candidate over time" if steps[0].reached else "Mutated candidates"
    if hist.empty:
        made = steps[0].reached
        text = f"{NONE_PASSED}."
        if made:
            got = [f"{s.reached} {s.phrase}" for s in steps[1:]]
            text += f" Of the {made} made by mutation, {', '.join(got[:-1])} and {got[-1]}."
        else:  # a study, or a search stopped before its first mutation
            text += " This search made no candidates by mutation, so there is no funnel or operator yield to show."
        if seed:
            text += f" The best seed is {seed[0]}, at fitness {seed[1]:.3f}."
        return Card(heading, "", "", text)
    return Card(
        heading,
        plots.png_uri(plots.progress_plot(hist, seed, span)),
        "best fitness of the mutated candidates over time",
        "Only candidates made by mutation: the seeds (the zoo cells the search starts from) are the "
        "reference lines. A dot is a candidate's fitness when it had a result on every task or improved "
        "one; the line is the best so far, labelled with the candidate that set it.",
    )


def _pareto_card(board: pd.DataFrame) -> Card:
    heading = "Fitness against parameters"
    front = pareto_front(board.to_dict("records"))
    if not front:
        return Card(heading, "", "", "No architecture has a fitness yet, so there is no Pareto front to draw.")
    names = ", ".join(cell_title(int(i), str(n)) for i, n in board.set_index("id").loc[front, "name"].items())
    return Card(
        heading,
        plots.png_uri(plots.pareto_plot(board, front)),
        "fitness against parameters, with the Pareto front",
        f"Every architecture with a fitness, against the parameters of one layer of the cell at n=128 (every "
        f"candidate trains at the same parameter budget, so a cell that costs fewer per unit gets a wider "
        f"layer). The orange line is the Pareto front, the cells no other beats on both fitness and "
        f"parameters (`rnnsearch leaderboard --pareto`): {names}.",
    )


def _task_cards(board: pd.DataFrame, sc: Scope, tasks: list[str], baseline: dict) -> list[Card]:
    config = sc.search.config if sc.search else {}
    filtered = config.get("kind", "search") == "search"  # a study trains every cell on every task
    out = []
    # memorize first: it is the filter every candidate meets before the search's tasks
    shown = [t for t in ("memorize", *tasks) if t in board.columns and board[t].notna().any()]
    span = (0, float(board["id"].max()) + 1)
    for t in shown:
        bar, note = None, ""
        if filtered and t == "memorize" and "memorize_threshold" in config:
            thr = float(config["memorize_threshold"])
            bar = (thr, f"threshold {thr:g}")
            note = f" A candidate below {thr:g} on memorize is not trained further."
        elif filtered and t == tasks[0] and config.get("stop_ratio") and baseline.get(t):
            ratio = float(config["stop_ratio"])
            bar = (ratio * baseline[t], f"stop bar: {ratio:g} × GRU's")
            note = f" A candidate below {ratio:g} times the GRU's best here is stopped."
        n = int(board[t].notna().sum())
        if (board.loc[board[t].notna(), "origin"] != "mutation").any():
            note = " Seeds are green diamonds." + note
        out.append(
            Card(
                f"Task: {t}",
                plots.png_uri(plots.task_plot(board, t, baseline.get(t), bar, span)),
                f"best validation accuracy on {t}",
                f"{n} architectures' best validation accuracy on {t}, by id (the order they were made).{note}",
            )
        )
    return out


def _card(c: Card) -> str:
    e = html.escape
    body = f'<img src="{c.image}" alt="{e(c.alt)}">' if c.image else ""
    cls = "card empty" if not c.image else "card"
    return f'<figure class="{cls}"><h3>{e(c.heading)}</h3>{body}<figcaption>{e(c.caption)}</figcaption></figure>'


def _cell_card(store: Store, archs: dict, row, engine: str) -> str:
    e = html.escape
    arch_id = int(row["id"])
    arch = archs.get(arch_id) or store.get_architecture(arch_id)
    graph = arch.graph()
    drawing = render_cell(graph, engine=engine, prefix=f"c{arch_id}")
    if drawing.svg is not None:
        art = drawing.svg
    else:
        art = (
            f'<img src="{plots.png_uri(drawing.png)}" width="{drawing.width}" height="{drawing.height}" '
            f'style="width: {drawing.width}px" '
            f'alt="the graph of cell #{arch_id}">'
        )
    fit = row["fitness"]
    facts = [f"fitness {fit:.3f}" if pd.notna(fit) else "no fitness yet"]
    facts += [f"{int(row['parameters']):,} parameters at n=128", e(str(row["stage"]))]
    formula = "\n".join(str(row["formula"]).split("; "))
    return (
        f'<figure class="card cell"><h3>{e(cell_title(arch_id, str(row["name"])))}</h3>'
        f'<p class="facts">{" · ".join(facts)}</p><div class="art">{art}</div>'
        f'<pre class="formula">{e(formula)}</pre></figure>'
    )
