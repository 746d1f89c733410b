"""Degenerate cells: refused before any training, decided from the graph alone.

A state carries information when its next value depends on ``x``, or on a state that
carries information (a fixpoint over the states; every state starts at zero, so a
state that reads only itself and constants, like ``c_next = tanh(c)``, stays a
constant whatever the input). A state whose next value is 0 whenever it is 0, like
``h_next = h * σ(W x)``, stays 0 forever and carries nothing either. A cell is
degenerate when

- its output ``h_next`` depends on ``x`` neither directly nor through a state
  (it ignores the input);
- ``h_next`` depends on no state that carries information (it is not recurrent:
  the layer's output at t is a function of ``x`` at t alone);
- another state's next value carries no information (that output is constant).

Dependence is read on the folded graph (``0 * h`` does not read ``h``); an output
that folds to a number is already an invalid graph (:mod:`rnnsearch.cells.fold`).
"""

from __future__ import annotations

import networkx as nx

from rnnsearch.cells.canonical import canonicalize
from rnnsearch.cells.graph import CellGraph, output_name
from rnnsearch.cells.ops import OPS


def zero_states(graph: CellGraph) -> frozenset[str]:
    """The states that stay exactly 0 forever from the zero initial state, whatever the
    input (``h_next = h * σ(W x)``): the largest set Z such that every state of Z is 0
    at t+1 when the states of Z are 0 at t."""
    zeros = set(graph.states)
    order = graph.topological()
    while True:
        zero: dict[str, bool] = {}
        for n in order:
            op = graph.op(n)
            args = [zero[u] for u in graph.operands(n)]
            if op == "input":
                zero[n] = n in zeros
            elif op == "const":
                zero[n] = float(graph.full_attrs(n)["value"]) == 0.0
            elif op == "mul":
                zero[n] = any(args)
            elif op == "linear" or OPS[op].scalar is None and op not in ("diag", "output"):
                zero[n] = False  # a learned bias, or an op whose value at 0 is unknown here
            else:  # diag, output, and ops that are 0 where all their operands are
                zero[n] = all(args) and (op in ("diag", "output") or OPS[op].scalar(*[0.0] * len(args)) == 0.0)
        still = {s for s in zeros if zero[output_name(s)]}
        if still == zeros:
            return frozenset(zeros)
        zeros = still


def informative_states(graph: CellGraph) -> frozenset[str]:
    """The states whose values depend on the input sequence (never one that stays 0)."""
    stuck = zero_states(graph)
    reads = {s: _reads(graph, output_name(s)) - stuck for s in graph.states}
    carrying: set[str] = set()
    while True:
        more = {s for s in graph.states if s not in carrying | stuck and reads[s] & ({"x"} | carrying)}
        if not more:
            return frozenset(carrying)
        carrying |= more


def degeneracy(graph: CellGraph) -> str | None:
    """Why ``graph`` is degenerate, in one phrase, or None if it is not."""
    g = canonicalize(graph)
    carrying = informative_states(g)
    h_reads = _reads(g, output_name("h"))
    if not h_reads & ({"x"} | carrying):
        return "ignores x: h_next depends on the input neither directly nor through a state"
    if "h" in zero_states(g):
        return "constant output: h_next stays 0 from the zero initial state whatever the input"
    if not h_reads & carrying:
        return "not recurrent: h_next depends on no state"
    for s in g.states[1:]:
        if s not in carrying:
            return f"constant output: {output_name(s)} carries nothing from the input"
    return None


def is_degenerate(graph: CellGraph) -> bool:
    return degeneracy(graph) is not None


def _reads(graph: CellGraph, node: str) -> set[str]:
    """The reserved inputs (``x`` and the states) that ``node`` depends on."""
    return set(nx.ancestors(graph.g, node)) & set(graph.inputs)
