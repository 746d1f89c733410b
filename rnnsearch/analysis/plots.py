"""The report's plots, each returned as a PNG data URI to inline in the page.

Figures are built with ``matplotlib.figure.Figure`` and rendered by Agg, never through
pyplot, so that making a report neither needs a display nor changes the backend of a
notebook that calls it. Each figure is drawn at 150 dpi for a grid cell about 650 pixels
wide: 10-point ticks then show at 13-15 pixels.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from rnnsearch.analysis.progress import MUTATION, FunnelStep, OperatorYield

DPI = 150
SIZE = (6.4, 4.2)
STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "svg.fonttype": "none",
}
GRU_RED = "#d62728"
SEED_GREEN = "#2ca02c"
MUTANT_BLUE = "#1f77b4"
GREY = "#b0b0b0"
FRONT_ORANGE = "#ff7f0e"


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(size=SIZE) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _time_unit(minutes: float) -> tuple[float, str]:
    if minutes < 3:
        return 1 / 60, "seconds"
    return (60.0, "hours") if minutes > 180 else (1.0, "minutes")


def progress_plot(hist: pd.DataFrame, seed: tuple[str, float] | None, span: float) -> bytes:
    """Best fitness among mutated candidates against time (``span``: the search's length in
    minutes), each candidate's fitness as it rose, and the GRU (1 by definition) and the
    best seed as reference lines."""
    with rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        scale, unit = _time_unit(span)
        t = hist["minutes"] / scale
        end = max(span / scale, t.max())
        ax.scatter(t, hist["fitness"], s=18, color=MUTANT_BLUE, alpha=0.35, label="a candidate's fitness as it rose")
        steps_x = [*t, end]
        steps_y = [*hist["best"], hist["best"].iloc[-1]]
        ax.step(steps_x, steps_y, where="post", color=MUTANT_BLUE, linewidth=2, label="best mutated candidate")
        # Name each candidate that took the lead, once, where it first did.
        records = hist[hist["fitness"] >= hist["best"]]
        records = records[records["id"] != records["id"].shift()]
        for _, r in records.iterrows():
            ax.annotate(
                f"#{int(r['id'])}",
                (r["minutes"] / scale, r["fitness"]),
                xytext=(3, 5),
                textcoords="offset points",
                fontsize=10,
                color="#0b3d6b",
            )
        gru_is_best = seed is not None and seed[0] == "GRU"
        ax.axhline(
            1.0,
            color=GRU_RED,
            linestyle="--",
            linewidth=1.2,
            label="GRU = 1, the best seed" if gru_is_best else "GRU = 1",
        )
        if seed is not None and not gru_is_best:
            ax.axhline(seed[1], color=SEED_GREEN, linestyle=":", linewidth=1.5, label=f"best seed: {seed[0]}")
        ax.set_xlim(0, end * 1.02)
        ax.set_xlabel(f"{unit} since the search started")
        ax.set_ylabel("fitness (min over tasks of acc / GRU's)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        return _render(fig)


def task_plot(
    board: pd.DataFrame,
    task: str,
    gru_best: float | None,
    bar: tuple[float, str] | None = None,
    xlim: tuple[float, float] | None = None,
) -> bytes:
    """Every architecture's best validation accuracy on one task, in the order they were
    created (id), with the GRU's best and, where the search applies one, the bar that
    stops a candidate. ``xlim``: the same id range on every task, to compare them."""
    frame = board.dropna(subset=[task])
    mutants = frame[frame["origin"] == MUTATION]
    seeds = frame[frame["origin"] != MUTATION]
    scored = mutants[mutants["fitness"].notna()]
    unscored = mutants[mutants["fitness"].isna()]
    with rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        if not unscored.empty:
            ax.scatter(unscored["id"], unscored[task], s=22, facecolors="none", edgecolors=MUTANT_BLUE,
                       label="candidate without a fitness")  # fmt: skip
        if not scored.empty:
            ax.scatter(scored["id"], scored[task], s=26, color=MUTANT_BLUE, label="candidate with a fitness")
        if not seeds.empty:
            ax.scatter(seeds["id"], seeds[task], s=46, marker="D", color=SEED_GREEN, label="seed")
        # Seeds have neighbouring ids and often close accuracies: alternate their labels
        # above and below so that two never print over each other.
        for i, (_, r) in enumerate(seeds.sort_values(task).iterrows()):
            below = i % 2 == 0 and len(seeds) > 1
            ax.annotate(str(r["name"]), (r["id"], r[task]), xytext=(6, -13 if below else 5),
                        textcoords="offset points", fontsize=10, color="#1b5e20")  # fmt: skip
        if gru_best is not None:
            ax.axhline(gru_best, color=GRU_RED, linestyle="--", linewidth=1.2, label=f"GRU's best {gru_best:.3f}")
        if bar is not None:
            ax.axhline(bar[0], color="#7f7f7f", linestyle=":", linewidth=1.5, label=bar[1])
        ax.margins(y=0.1)  # room for a seed's label below the lowest point
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_xlabel("architecture id (order of creation)")
        ax.set_ylabel("best validation accuracy")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        return _render(fig)


def funnel_plot(steps: Sequence[FunnelStep]) -> bytes:
    """How many mutated candidates reached each stage, widest first."""
    with rc_context(STYLE):
        fig = _figure((6.4, 0.62 * len(steps) + 1.1))
        ax = fig.add_subplot()
        top = max(s.reached for s in steps) or 1
        y = list(range(len(steps)))
        ax.barh(y, [s.reached for s in steps], color="#9467bd", height=0.65)
        for i, s in enumerate(steps):
            share = f" ({100 * s.reached / top:.0f}%)" if i else ""
            note = f", {s.note}" if s.note else ""
            ax.text(s.reached + top * 0.01, i, f"{s.reached}{share}{note}", va="center", fontsize=10)
        ax.set_yticks(y, [s.label for s in steps])
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.45)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("mutated candidates")
        return _render(fig)


def operator_plot(rows: Sequence[OperatorYield]) -> bytes:
    """Per operator: children, those that passed memorize, those that beat their parent.
    The three are nested, so the bars are drawn over each other."""
    with rc_context(STYLE):
        fig = _figure((6.4, 0.5 * len(rows) + 1.9))
        ax = fig.add_subplot()
        names = [r.operator.replace("_", " ") for r in rows]
        y = list(range(len(rows)))
        ax.barh(y, [r.children for r in rows], color="#d9d9d9", height=0.7, label="children")
        ax.barh(y, [r.trained for r in rows], color="#fdae6b", height=0.7, label="passed memorize")
        ax.barh(y, [r.beat_parent for r in rows], color="#d94801", height=0.7, label="beat their parent")
        top = max((r.children for r in rows), default=1) or 1
        for i, r in enumerate(rows):
            ax.text(
                r.children + top * 0.01, i, f"{r.beat_parent} / {r.trained} / {r.children}", va="center", fontsize=10
            )
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("children (numbers: beat their parent / passed memorize / all)")
        fig.legend(loc="outside lower center", ncols=3, frameon=False)
        return _render(fig)


def pareto_plot(board: pd.DataFrame, front: Sequence[int]) -> bytes:
    """Fitness against parameters for every architecture with a fitness: mutated
    candidates as dots, seeds as labelled diamonds, and the Pareto front (``front``: ids,
    by parameters) as a step line: at each parameter count, the best fitness that a cell
    with no more parameters reached."""
    from matplotlib.ticker import FuncFormatter

    scored = board[board["fitness"].notna()]
    mutants = scored[scored["origin"] == MUTATION]
    seeds = scored[scored["origin"] != MUTATION]
    on_front = scored.set_index("id").loc[list(front)]
    with rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        if not mutants.empty:
            ax.scatter(mutants["parameters"], mutants["fitness"], s=26, color=MUTANT_BLUE, alpha=0.6, zorder=2.5,
                       label="candidate")  # fmt: skip
        if not seeds.empty:
            ax.scatter(seeds["parameters"], seeds["fitness"], s=46, marker="D", color=SEED_GREEN, zorder=2.5,
                       label="seed")  # fmt: skip
        right = float(scored["parameters"].max()) * 1.04
        xs = [*on_front["parameters"], right]
        ys = [*on_front["fitness"], on_front["fitness"].iloc[-1]]
        ax.step(xs, ys, where="post", color=FRONT_ORANGE, linewidth=2, zorder=2, label="Pareto front")
        ax.scatter(on_front["parameters"], on_front["fitness"], s=160, facecolors="none", edgecolors=FRONT_ORANGE,
                   linewidths=1.8, zorder=3)  # fmt: skip
        # Seeds at one point share a label, written below the point where another seed
        # sits just above it (the GRU over its variants), else above.
        points = seeds.groupby(["parameters", "fitness"], sort=True)["name"].agg(lambda names: ", ".join(names))
        dx = float(scored["parameters"].max() - scored["parameters"].min()) * 0.06 or 1.0
        dy = float(scored["fitness"].max() - scored["fitness"].min()) * 0.1 or 0.05
        for (params, fit), names in points.items():
            below = any(0 < f - fit <= dy and abs(p - params) <= dx for p, f in points.index)
            ax.annotate(names, (params, fit), xytext=(6, -13 if below else 5),
                        textcoords="offset points", fontsize=10, color="#1b5e20")  # fmt: skip
        for arch_id, r in on_front[on_front["origin"] == MUTATION].iterrows():
            ax.annotate(f"#{int(arch_id)}", (r["parameters"], r["fitness"]), xytext=(6, 5),
                        textcoords="offset points", fontsize=10, color="#0b3d6b")  # fmt: skip
        ax.axhline(1.0, color=GRU_RED, linestyle="--", linewidth=1.2, label="GRU = 1")
        ax.margins(x=0.08, y=0.1)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        ax.set_xlabel("parameters of one layer at n=128")
        ax.set_ylabel("fitness (min over tasks of acc / GRU's)")
        fig.legend(loc="outside lower center", ncols=4, frameon=False)
        return _render(fig)
