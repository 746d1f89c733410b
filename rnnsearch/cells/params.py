"""Parameter counts, without building a module."""

from __future__ import annotations

from rnnsearch.cells.graph import CellGraph


def parameter_count(graph: CellGraph, hidden_size: int) -> int:
    """Learned numbers in one layer of the cell at width n: n*n per linear term, n per
    linear bias, n per diagonal."""
    n = hidden_size
    total = 0
    for node in graph.g:
        op = graph.op(node)
        if op == "linear":
            total += graph.g.in_degree(node) * n * n + n
        elif op == "diag":
            total += n
    return total


def width_for_budget(graph: CellGraph, budget: int, layers: int = 1, extra_per_unit: int = 0) -> int:
    """The largest width n whose layers (plus ``extra_per_unit`` * n, e.g. an embedding and
    softmax) fit in ``budget`` parameters; at least 1."""
    lo, hi = 1, 1
    while _cost(graph, hi * 2, layers, extra_per_unit) <= budget and hi < 1 << 16:
        hi *= 2
    hi *= 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _cost(graph, mid, layers, extra_per_unit) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cost(graph: CellGraph, n: int, layers: int, extra_per_unit: int) -> int:
    return layers * parameter_count(graph, n) + extra_per_unit * n
