"""Constant folding: the trivial algebra that mutations produce, removed.

``1 * v`` and ``v * 1`` are ``v``; ``v + 0``, ``0 + v`` and ``v - 0`` are ``v``; ``0 * v``
and ``v - v`` are ``0``; a parameter-free op whose operands are all constants is a constant
(``tanh(1)`` is ``0.761594``). Each op's rules are declared in the op table
(``OpSpec.scalar``, ``neutral``, ``absorbing``); this module only applies them.

``0 * v`` is 0 whatever ``v`` is (an infinite or NaN ``v`` included: the cell's values
are finite wherever training goes on). A learned op is never folded: ``W c + b`` is a
learned vector even when ``c`` is a constant.
"""

from __future__ import annotations

import math

from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.cells.ops import OPS


def fold_constants(g: CellGraph) -> bool:
    """Fold ``g`` in place (one pass in topological order reaches the fixpoint: a node's
    operands are final before it is looked at). True if anything changed. Raises
    :class:`CellGraphError` when an output folds to a number (a constant cell)."""
    changed = False
    for n in g.internal_nodes():
        if n not in g.g:
            continue
        spec = OPS[g.op(n)]
        if spec.learned or g.op(n) == "const" or spec.scalar is None:
            continue
        operands = g.operands(n)
        values = [_const(g, u) for u in operands]
        if all(v is not None for v in values):
            folded = spec.scalar(*values)
            if math.isfinite(folded):
                _become_const(g, n, folded)
                changed = True
            continue
        same = spec.self_value is not None and len(operands) == 2 and operands[0] == operands[1]
        if same or (spec.absorbing is not None and spec.absorbing in values):
            _become_const(g, n, spec.self_value if same else spec.absorbing)
            changed = True
            continue
        for slot, value in spec.neutral:
            if values[slot] == value:
                (other,) = [u for k, u in enumerate(operands) if k != slot]
                _replace(g, n, other)
                changed = True
                break
    if changed:
        for out in g.outputs:
            if g.op(g.operands(out)[0]) == "const":
                raise CellGraphError(out, "output is constant (it folds to a number)")
        g.validate()  # prunes what no longer feeds an output
    return changed


def _const(g: CellGraph, n: str) -> float | None:
    return float(g.full_attrs(n)["value"]) if g.op(n) == "const" else None


def _become_const(g: CellGraph, n: str, value: float) -> None:
    g.g.remove_edges_from(list(g.g.in_edges(n, keys=True)))
    g.g.nodes[n]["op"] = "const"
    g.g.nodes[n]["attrs"] = {"value": float(value)}


def _replace(g: CellGraph, old: str, new: str) -> None:
    """Every reader of ``old`` reads ``new`` instead (same slots); ``old`` goes."""
    for _, v, slot in list(g.g.out_edges(old, data="slot")):
        g.g.add_edge(new, v, slot=slot)
    g.g.remove_node(old)
