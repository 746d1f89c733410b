"""The paper's table for a study: best accuracy per task per cell, relative to the GRU,
with how many settings each cell was given and the spread over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.db import Store
from rnnsearch.errors import UserError
from rnnsearch.states import Status

# Jozefowicz et al. (2015), Table 1: best accuracy, no dropout (arithmetic, XML, PTB)
PAPER = {
    "Tanh": (0.295, 0.321, 0.0878),
    "LSTM": (0.892, 0.425, 0.0891),
    "LSTM-f": (0.293, 0.234, 0.0881),
    "LSTM-i": (0.751, 0.414, 0.0866),
    "LSTM-o": (0.867, 0.421, 0.0893),
    "LSTM-b": (0.902, 0.444, 0.0895),
    "GRU": (0.896, 0.460, 0.0907),
    "MUT1": (0.921, 0.475, 0.0897),
    "MUT2": (0.897, 0.473, 0.0904),
    "MUT3": (0.907, 0.465, 0.0916),
}
PAPER_TASKS = ("arithmetic", "xml", "ptb")


def study_table(store: Store, name: str) -> pd.DataFrame:
    search = store.get_search(name)
    if search is None:
        raise UserError(f"no study named {name!r}")
    cfg = search.config
    tasks = list(cfg["tasks"])
    rows = []
    for cell in cfg["seeds"]:
        graph = CellGraph.from_json(cfg["seed_graphs"][cell]) if cell in cfg.get("seed_graphs", {}) else zoo.get(cell)
        arch = store.lookup(graph)
        evs = store.evaluations(search.id, architecture_id=arch.id) if arch else []
        row: dict = {"cell": cell, "id": arch.id if arch else None}
        for t in tasks:
            accs = [e.val_accuracy for e in evs if e.task == t and e.status == Status.OK and e.val_accuracy is not None]
            tried = [e for e in evs if e.task == t]
            best = max(accs) if accs else None
            row[t] = best
            row[f"{t}_settings"] = f"{len(accs)}/{len(tried)}"
            row[f"{t}_spread"] = float(np.std(accs)) if len(accs) > 1 else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    gru = frame[frame["cell"] == "GRU"]
    for t in tasks:
        base = gru[t].iloc[0] if len(gru) and pd.notna(gru[t].iloc[0]) else None
        frame.insert(frame.columns.get_loc(t) + 1, f"{t}_rel", frame[t] / base if base else None)
    frame.attrs["tasks"] = tasks
    return frame


def text_table(frame: pd.DataFrame, with_paper: bool = True) -> list[str]:
    tasks = frame.attrs["tasks"]

    def f(v, d=4):
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{d}f}"

    head = f"{'cell':<8}" + "".join(f" {t[:10]:>10} {'÷GRU':>5} {'n':>5} {'±':>6}" for t in tasks)
    if with_paper:
        head += "   paper (arith / xml / ptb)"
    out = [head]
    for _, r in frame.iterrows():
        line = f"{r['cell']:<8}" + "".join(
            f" {f(r[t]):>10} {f(r[t + '_rel'], 2):>5} {r[t + '_settings']:>5} {f(r[t + '_spread'], 3):>6}"
            for t in tasks
        )
        if with_paper and r["cell"] in PAPER:
            line += "   " + " / ".join(f"{v:g}" for v in PAPER[r["cell"]])
        out.append(line)
    return out


def plot_study(frame: pd.DataFrame, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = frame.attrs["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        vals = frame[t].astype(float).fillna(0.0)
        colors = ["#d62728" if c == "GRU" else "#1f77b4" for c in frame["cell"]]
        ax.barh(frame["cell"], vals, color=colors)
        ax.invert_yaxis()
        ax.set_title(t)
        ax.set_xlabel("best validation accuracy")
    fig.suptitle("Accuracy per task per cell (GRU in red)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
