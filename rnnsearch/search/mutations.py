"""Jozefowicz et al.'s mutation operators: pure functions, graph and generator in,
child and the applied operators out.

Draw p ~ U[0, 1]; transform each internal node with probability p by one of:
1. an activation is replaced by one of {tanh, sigmoid, relu, Linear(0, x), Linear(1, x),
   Linear(0.9, x), Linear(1.1, x)} (Linear(a, x): a square ``linear`` node that starts at a*I);
2. an elementwise op is replaced by another of {mul, add, sub};
3. a random activation is inserted between the node and one of its parents;
4. a node with one input and one output is removed (its input takes its place);
5. the node is replaced by one of its ancestors;
6. the node is replaced by the sum, product or difference of a random ancestor of it and
   a random ancestor of another node.
The reserved inputs and outputs are never touched; the child is always valid (a draw that
is not, or that changes nothing, is drawn again).

The activations and elementwise ops come from the op table: ``ops="paper"`` (the default)
draws the paper's sets above; ``ops="extended"`` adds the ops of modern cells (exp, log,
softplus, leaky_relu; div, max).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from rnnsearch.cells import CellGraph, CellGraphError
from rnnsearch.cells.canonical import canonical_hash
from rnnsearch.cells.ops import OP_SETS, drawable

# Linear(a, x): the square linear node that starts at a*I, one of the activation choices
LINEAR_GAINS = (0.0, 1.0, 0.9, 1.1)


def activations(ops: str = "paper") -> tuple[str, ...]:
    """The ops operator 1 may replace (identity included: it can become something)."""
    return drawable("activation", ops)


def replacements(ops: str = "paper") -> tuple[tuple[str, float | None], ...]:
    """What operator 1 draws: each activation but identity, then each Linear(a, x)."""
    return tuple((op, None) for op in activations(ops) if op != "identity") + tuple(("linear", a) for a in LINEAR_GAINS)


def elementwise(ops: str = "paper") -> tuple[str, ...]:
    return drawable("elementwise", ops)


OPERATORS = (
    "replace_activation",
    "replace_elementwise",
    "insert_activation",
    "remove",
    "to_ancestor",
    "to_combination",
)
MAX_INTERNAL_NODES = 64


class MutationFailed(RuntimeError):
    pass


def is_activation(g: CellGraph, n: str, ops: str = "paper") -> bool:
    """Activations, and the Linear(a, x) nodes that operator 1 makes (so they can change back)."""
    op = g.op(n)
    if op in activations(ops):
        return True
    return op == "linear" and g.g.in_degree(n) == 1 and g.full_attrs(n)["init"] == "identity"


def _set_activation(g: CellGraph, n: str, choice: tuple[str, float | None]) -> str:
    op, gain = choice
    g.g.nodes[n]["op"] = op
    g.g.nodes[n]["attrs"] = {"init": "identity", "gain": gain} if op == "linear" else {}
    return op if op != "linear" else f"Linear({gain:g})"


def _new_activation(g: CellGraph, rng: np.random.Generator, source: str, ops: str) -> tuple[str, str]:
    choices = replacements(ops)
    op, gain = choices[int(rng.integers(len(choices)))]
    attrs = {"init": "identity", "gain": gain} if op == "linear" else {}
    node = g.add(op, source, name=g.fresh_name("m"), **attrs)
    return node, (op if op != "linear" else f"Linear({gain:g})")


def _redirect(g: CellGraph, old: str, new: str) -> None:
    """Every reader of ``old`` reads ``new`` instead (same slots)."""
    for _, v, key, slot in list(g.g.out_edges(old, keys=True, data="slot")):
        g.g.remove_edge(old, v, key)
        g.g.add_edge(new, v, slot=slot)


def _applicable(g: CellGraph, n: str, ops: str) -> list[str]:
    out = ["insert_activation", "to_ancestor", "to_combination"]
    if is_activation(g, n, ops):
        out.append("replace_activation")
    if g.op(n) in elementwise(ops):
        out.append("replace_elementwise")
    if g.g.in_degree(n) == 1 and g.g.out_degree(n) == 1:
        out.append("remove")
    return out


def _apply(g: CellGraph, n: str, operator: str, rng: np.random.Generator, ops: str) -> list | None:
    """Transform node n in place; the record of what was done, or None if not possible."""
    if operator == "replace_activation":
        current = (g.op(n), g.full_attrs(n).get("gain") if g.op(n) == "linear" else None)
        choices = [c for c in replacements(ops) if c != current]
        return [operator, n, _set_activation(g, n, choices[int(rng.integers(len(choices)))])]
    if operator == "replace_elementwise":
        choices = [e for e in elementwise(ops) if e != g.op(n)]
        new = choices[int(rng.integers(len(choices)))]
        g.g.nodes[n]["op"] = new
        return [operator, n, new]
    if operator == "insert_activation":
        edges = list(g.g.in_edges(n, keys=True, data="slot"))
        if not edges:
            return None
        u, _, key, slot = edges[int(rng.integers(len(edges)))]
        act, name = _new_activation(g, rng, u, ops)
        g.g.remove_edge(u, n, key)
        g.g.add_edge(act, n, slot=slot)
        return [operator, n, name]
    if operator == "remove":
        (u,) = list(g.g.predecessors(n))
        _redirect(g, n, u)
        g.g.remove_node(n)
        return [operator, n, None]
    ancestors = sorted(nx.ancestors(g.g, n))
    if operator == "to_ancestor":
        if not ancestors:
            return None
        a = ancestors[int(rng.integers(len(ancestors)))]
        _redirect(g, n, a)
        return [operator, n, a]
    if operator == "to_combination":
        others = [m for m in g.g if m != n and g.op(m) != "input" and m not in g.outputs]
        if not ancestors or not others:
            return None
        other = others[int(rng.integers(len(others)))]
        banned = nx.descendants(g.g, n) | {n}
        pool = sorted(a for a in nx.ancestors(g.g, other) if a not in banned and g.op(a) != "output")
        if not pool:
            return None
        a1 = ancestors[int(rng.integers(len(ancestors)))]
        a2 = pool[int(rng.integers(len(pool)))]
        binary = elementwise(ops)
        op = binary[int(rng.integers(len(binary)))]
        combo = g.add(op, a1, a2, name=g.fresh_name("m"))
        _redirect(g, n, combo)
        return [operator, n, f"{op}({a1},{a2})"]
    raise AssertionError(operator)


def mutate_once(graph: CellGraph, rng: np.random.Generator, ops: str = "paper") -> tuple[CellGraph, list]:
    """One draw of the paper's mutation (may be invalid or a no-op: :func:`mutate` retries)."""
    g = graph.copy()
    p = float(rng.random())
    applied = []
    for n in [m for m in graph.internal_nodes()]:
        if n not in g.g or rng.random() >= p:
            continue
        operators = _applicable(g, n, ops)
        record = _apply(g, n, operators[int(rng.integers(len(operators)))], rng, ops)
        if record is not None:
            applied.append(record)
    g.validate()
    return g, applied


def mutate(
    graph: CellGraph, rng: np.random.Generator, max_tries: int = 100, ops: str = "paper"
) -> tuple[CellGraph, list]:
    """A valid child that differs from ``graph``, and the operators applied to make it;
    ``ops`` is the op set drawn from (:data:`~rnnsearch.cells.ops.OP_SETS`)."""
    if ops not in OP_SETS:
        raise ValueError(f"op set must be one of {', '.join(OP_SETS)}, not {ops!r}")
    parent_hash = canonical_hash(graph)
    for _ in range(max_tries):
        try:
            child, applied = mutate_once(graph, rng, ops)
            child_hash = canonical_hash(child)  # raises for an output that folds to a number
        except CellGraphError:
            continue
        size = len(child.internal_nodes())
        if not applied or size == 0 or size > MAX_INTERNAL_NODES:  # 0: h_next = h, a dead end
            continue
        if child_hash == parent_hash:
            continue
        return child, applied
    raise MutationFailed(f"no valid mutation of the graph in {max_tries} draws")
