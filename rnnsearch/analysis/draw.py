"""Draw a cell graph to a PNG with matplotlib (layered by depth from the inputs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from rnnsearch.cells.graph import CellGraph  # noqa: E402
from rnnsearch.cells.ops import OPS  # noqa: E402

_COLORS = {
    "input": "#9ecae1",
    "output": "#a1d99b",
    "linear": "#fdae6b",
    "diag": "#fdd0a2",
    "const": "#d9d9d9",
}


def _label(graph: CellGraph, node: str) -> str:
    op = graph.op(node)
    if op in ("input", "output"):
        return node
    a = graph.full_attrs(node)
    if op == "const":
        return f"{a['value']:g}"
    if op == "linear" and a["init"] == "identity":
        return f"W~{a['gain']:g}I"
    if op == "linear" and a["bias_init"]:
        return f"W (b={a['bias_init']:g})"
    return OPS[op].symbol or op


def draw_graph(graph: CellGraph, path: str | Path, title: str = "") -> Path:
    g = nx.DiGraph()
    for n in graph.g.nodes:
        g.add_node(n)
    for u, v in graph.g.edges():
        g.add_edge(u, v)
    for layer, nodes in enumerate(nx.topological_generations(g)):
        for n in nodes:
            g.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=2.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}  # inputs at the top
    depth = 1 + max(d["layer"] for _, d in g.nodes(data=True))
    width = max(len(ns) for ns in nx.topological_generations(g))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * width), max(4, 0.9 * depth)))
    colors = [_COLORS.get(graph.op(n), "#c6dbef") for n in g.nodes]
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, node_size=900, edge_color="#555")
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=900, edgecolors="#333")
    nx.draw_networkx_labels(g, pos, {n: _label(graph, n) for n in g.nodes}, ax=ax, font_size=8)
    slots = {(u, v): str(s) for u, v, s in graph.g.edges(data="slot") if graph.op(v) == "sub"}
    if slots:
        nx.draw_networkx_edge_labels(g, pos, slots, ax=ax, font_size=7)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
