"""Draw a cell graph with matplotlib alone, for machines without Graphviz.

A small layered (Sugiyama-style) layout: rows by depth from the inputs, inputs on the
first row and outputs on the last, an invisible waypoint on every row an edge crosses
(so a long edge gets a lane of its own instead of running under the nodes between),
rows ordered by the mean position of their neighbours to cut crossings. Boxes are sized
to their labels and edges end at the box borders, so no edge hides behind a node.
Coordinates are inches and the axes fill the figure, so sizes in points stay true.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MPath
from matplotlib.textpath import TextPath

from rnnsearch.analysis.draw import edge_label, node_label, style
from rnnsearch.cells.graph import CellGraph

FONT_PT = 12
BOX_H = 0.34  # inches
PAD = 0.1  # inches either side of a label
GAP = 0.28  # inches between neighbours on a row
ROW = 0.8  # inches from row to row
LANE = 0.1  # width kept free for an edge passing through a row
DPI = 150
SHOW_DPI = 100  # pixels per inch on the page


def _text_width(text: str) -> float:
    path = TextPath((0, 0), text, size=FONT_PT, prop=FontProperties(family="DejaVu Sans"))
    return path.get_extents().width / 72


def _rows(graph: CellGraph) -> dict[str, int]:
    row: dict[str, int] = {}
    for n in graph.topological():
        preds = list(graph.g.predecessors(n))
        row[n] = 0 if n in graph.inputs or not preds else 1 + max(row[p] for p in preds)
    # A constant sits just above its first reader rather than up with the inputs.
    for n in graph.g:
        if graph.op(n) == "const":
            row[n] = max(0, min(row[v] for v in graph.g.successors(n)) - 1)
    last = max(row.values()) if len(row) > len(graph.inputs) else 1
    for o in graph.outputs:
        row[o] = max(last, 1)
    return row


def layout(graph: CellGraph):
    """Positions of nodes and waypoints (inches), each node's box size, and each edge's
    points from its source to its target."""
    row = _rows(graph)
    sizes = {}
    for n in graph.g:
        w = _text_width(node_label(graph, n)) + 2 * PAD
        sizes[n] = (max(w, BOX_H), BOX_H) if style(graph, n).shape == "circle" else (max(w, 0.5), BOX_H)
    rows: dict[int, list] = defaultdict(list)
    for n in graph.topological():
        rows[row[n]].append(n)
    edges = []  # (u, v, slot, [u, waypoints..., v])
    up: dict[object, list] = defaultdict(list)
    down: dict[object, list] = defaultdict(list)
    for k, (u, v, slot) in enumerate(graph.g.edges(data="slot")):
        chain = [u] + [("lane", k, r) for r in range(row[u] + 1, row[v])] + [v]
        for r, w in zip(range(row[u] + 1, row[v]), chain[1:-1], strict=True):
            rows[r].append(w)
            sizes[w] = (LANE, 0.0)
        for a, b in zip(chain, chain[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
        edges.append((u, v, slot, chain))
    order = [rows[r] for r in range(max(rows) + 1)]
    x: dict[object, float] = {}

    def place(items, desired):
        # Keep the order, push right what would overlap, then centre on what was wanted.
        xs, prev = [], None
        for it in items:
            want = desired[it]
            if prev is not None:
                want = max(want, xs[-1] + (sizes[prev][0] + sizes[it][0]) / 2 + GAP)
            xs.append(want)
            prev = it
        shift = sum(desired[it] - v for it, v in zip(items, xs, strict=True)) / len(items)
        for it, v in zip(items, xs, strict=True):
            x[it] = v + shift

    for items in order:
        place(items, {it: i for i, it in enumerate(items)})
    for sweep in range(8):
        seq = range(1, len(order)) if sweep % 2 == 0 else range(len(order) - 2, -1, -1)
        nbrs = up if sweep % 2 == 0 else down
        for r in seq:
            if r == 0:
                continue  # the inputs keep their order: x, h, c
            centre = {it: (sum(x[p] for p in nbrs[it]) / len(nbrs[it]) if nbrs[it] else x[it]) for it in order[r]}
            order[r].sort(key=lambda it: centre[it])
            place(order[r], centre)
    pos = {it: (x[it], -r * ROW) for r, items in enumerate(order) for it in items}
    return pos, sizes, edges


def _clip(centre, size, towards, oval=False):
    """Where the segment from a node's centre towards a point leaves its box (or oval)."""
    (cx, cy), (w, h), (tx, ty) = centre, size, towards
    dx, dy = tx - cx, ty - cy
    if oval:
        t = min(1 / math.hypot(2 * dx / w, 2 * dy / h), 1.0)
    else:
        t = min(w / 2 / abs(dx) if dx else math.inf, h / 2 / abs(dy) if dy else math.inf, 1.0)
    gap = 0.03 / max(math.hypot(dx, dy), 1e-9)
    return cx + dx * (t + gap), cy + dy * (t + gap)


def _draw(graph: CellGraph, title: str) -> Figure:
    pos, sizes, edges = layout(graph)
    xs = [p[0] - sizes[n][0] / 2 for n, p in pos.items()] + [p[0] + sizes[n][0] / 2 for n, p in pos.items()]
    ys = [p[1] for p in pos.values()]
    left, right = min(xs) - 0.3, max(xs) + 0.3
    top = max(ys) + BOX_H / 2 + (0.55 if title else 0.2)
    bottom = min(ys) - BOX_H / 2 - 0.2
    fig = Figure(figsize=(right - left, top - bottom), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    seen: dict[tuple, int] = defaultdict(int)
    for u, v, slot, chain in edges:
        pts = [pos[p] for p in chain]
        pts[0] = _clip(pos[u], sizes[u], pts[1], style(graph, u).shape == "circle")
        pts[-1] = _clip(pos[v], sizes[v], pts[-2], style(graph, v).shape == "circle")
        k = seen[(u, v)]
        seen[(u, v)] += 1
        if len(pts) == 2 and k:  # a second edge between the same nodes (h * h) bows out
            (x0, y0), (x1, y1) = pts
            bow = 0.25 * (1 if k % 2 else -1) * (1 + k // 2)
            path = MPath([pts[0], ((x0 + x1) / 2 + bow, (y0 + y1) / 2), pts[1]], [1, 3, 3])
        else:
            path = MPath(pts, [1] + [2] * (len(pts) - 1))
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=14, color="#555555", lw=1.2, zorder=1))
        lab = edge_label(graph, slot, v)
        if lab:
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            ax.text(x0 + 0.75 * (x1 - x0) + 0.09, y0 + 0.75 * (y1 - y0), lab, color="#8c2d04", fontsize=11,
                    ha="left", va="center", zorder=3)  # fmt: skip
    for n in graph.g:
        (cx, cy), (w, h) = pos[n], sizes[n]
        st = style(graph, n)
        look = {"facecolor": st.fill, "edgecolor": "#333333", "lw": 2 if graph.op(n) == "output" else 1, "zorder": 2}
        if st.shape == "circle":
            ax.add_patch(Ellipse((cx, cy), w, h, **look))
        else:
            rounding = h / 2 if st.shape == "ellipse" else 0.07
            box = FancyBboxPatch(
                (cx - w / 2, cy - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={rounding}", **look
            )
            ax.add_patch(box)
        ax.text(cx, cy, node_label(graph, n), ha="center", va="center_baseline", fontsize=FONT_PT, zorder=3)
    if title:
        ax.text((left + right) / 2, top - 0.22, title, ha="center", va="center", fontsize=14, weight="bold")
    return fig


def draw_png(graph: CellGraph, title: str = "") -> tuple[bytes, tuple[int, int]]:
    """PNG bytes at 150 dpi and the size in pixels to show them at (100 per inch)."""
    with rc_context({"font.family": "DejaVu Sans"}):
        fig = _draw(graph, title)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
    w, h = fig.get_size_inches()
    return buf.getvalue(), (round(w * SHOW_DPI), round(h * SHOW_DPI))


def draw_svg(graph: CellGraph, title: str = "") -> bytes:
    with rc_context({"font.family": "DejaVu Sans", "svg.fonttype": "none"}):
        fig = _draw(graph, title)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg")
    return buf.getvalue()
