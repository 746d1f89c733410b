"""A readable formula for a cell, one text per cell wherever it is printed.

The formula is read off the canonical form, so a zoo cell, the same cell from a graph
file and the same cell in the database print alike, whatever their node names. A value
used more than once gets a line of its own: a new state keeps its name (``c_next``), a
sigmoid is a gate ``g1, g2, ...``, anything else ``v1, v2, ...``; commuting operands are
shown inputs first (``W[x,h]``). The notation is explained by :data:`LEGEND`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reading a stored formula's legend needs no graph library
    from rnnsearch.cells.graph import CellGraph

_ATOM, _PRODUCT, _SUM = 3, 2, 1

LEGEND = (
    ("x", "the input at this step; h, c: the states the cell carries"),
    ("h_next, c_next", "the new states; h_next is also the cell's output"),
    ("W[x,h] + b", "a learned matrix times the concatenation [x,h], plus a learned bias (each W, b its own)"),
    ("b(1)", "a bias initialised to 1 (the forget-gate bias of Jozefowicz et al.)"),
    ("W~0.9I[x]", "a matrix initialised to 0.9 times the identity"),
    ("u * v", "a learned vector u times v, element by element (a diagonal matrix)"),
    ("σ(p), tanh(p), ...", "an activation, element by element (`rnnsearch show --legend` lists every op)"),
    ("p * q, p + q, p - q", "element by element; a number is a constant"),
    ("g1 = ...", "a gate (a sigmoid) used more than once, written once"),
    ("v1 = ...", "any other value used more than once, written once"),
)


def legend_lines() -> list[str]:
    """The notation, then every op of the op table as the formula writes it."""
    from rnnsearch.cells.ops import OPS

    ops = [
        (_op_text(s), f"{s.meaning} ({s.name}{', extended set' if s.draw == 'extended' else ''})")
        for s in OPS.values()
        if s.meaning
    ]
    width = max(len(k) for k, _ in [*LEGEND, *ops])
    lines = [f"{k:<{width}}  {v}" for k, v in LEGEND]
    return lines + ["", "ops:"] + [f"{k:<{width}}  {v}" for k, v in ops]


def _op_text(spec) -> str:
    names = ("p", "q")[: spec.max_arity]
    if spec.infix:
        return f" {spec.symbol} ".join(names)
    return f"{spec.symbol}({', '.join(names)})"


def _num(v: float) -> str:
    return f"{v:g}"


def weight_text(attrs: dict) -> str:
    """A linear node's matrix: ``W``, or ``W~0.9I`` when it starts at 0.9 times the identity."""
    return "W" if attrs["init"] == "random" else f"W~{_num(attrs['gain'])}I"


def bias_text(attrs: dict) -> str:
    """A linear node's bias: ``b``, or ``b(1)`` when it starts at 1."""
    return "b" if attrs["bias_init"] == 0 else f"b({_num(attrs['bias_init'])})"


def formula_lines(graph: CellGraph, *, canonical: bool = False) -> list[str]:
    """The formula as lines, shared values first. ``canonical``: ``graph`` is already in
    canonical form (a stored architecture), so it is not canonicalised again."""
    if not canonical:
        from rnnsearch.cells.canonical import canonicalize
        from rnnsearch.cells.graph import CellGraphError

        try:
            graph = canonicalize(graph)
        except CellGraphError:  # an output folds to a number: show the graph as it is
            pass
    return _render(graph)


def formula(graph: CellGraph, *, canonical: bool = False) -> str:
    return "; ".join(formula_lines(graph, canonical=canonical))


def _render(graph: CellGraph) -> list[str]:
    order = graph.topological()
    position = {n: i for i, n in enumerate(order)}
    reserved = graph.reserved
    rank = {x: (0, i) for i, x in enumerate(graph.inputs)}

    def display_order(nodes: list[str]) -> list[str]:
        return sorted(nodes, key=lambda u: rank.get(u, (1, position[u])))

    shared = [n for n in order if n not in reserved and graph.op(n) != "const" and graph.g.out_degree(n) > 1]
    names: dict[str, str] = {}
    for out in graph.outputs:  # a new state used again inside the cell is named by its state
        src = graph.operands(out)[0]
        if src in shared and src not in names:
            names[src] = out
    counters = {"g": 0, "v": 0}
    for n in shared:
        if n not in names:
            kind = "g" if graph.op(n) == "sigmoid" else "v"
            counters[kind] += 1
            while f"{kind}{counters[kind]}" in reserved:  # a state may be called g1 (FGR's gi, gf, go)
                counters[kind] += 1
            names[n] = f"{kind}{counters[kind]}"
    cache: dict[str, tuple[str, int]] = {}

    def ref(n: str) -> tuple[str, int]:
        if n in graph.inputs:
            return n, _ATOM
        if n in names:
            return names[n], _ATOM
        return expr(n)

    def expr(n: str) -> tuple[str, int]:
        if n in cache:
            return cache[n]
        from rnnsearch.cells.ops import OPS, SUM

        op, a = graph.op(n), graph.full_attrs(n)
        operands = graph.operands(n)
        if OPS[op].commutative:
            operands = display_order(operands)
        args = [ref(u) for u in operands]
        sym = OPS[op].symbol  # the op table says how each op is written
        if op == "const":
            out = (_num(a["value"]), _ATOM)
        elif op == "linear":
            out = (f"{weight_text(a)}[{','.join(s for s, _ in args)}] + {bias_text(a)}", _SUM)
        elif op == "diag":
            out = (f"{sym} * {_wrap(args[0], _PRODUCT)}", _PRODUCT)
        elif op == "identity":
            out = args[0]
        elif OPS[op].infix:  # left to right: a right operand of equal precedence is bracketed
            prec = _SUM if OPS[op].infix == SUM else _PRODUCT
            right = prec + 1 if not OPS[op].commutative else prec
            out = (f"{_wrap(args[0], prec)} {sym} {_wrap(args[1], right)}", prec)
        else:
            out = (f"{sym}({', '.join(text for text, _ in args)})", _ATOM)
        cache[n] = out
        return out

    lines = [f"{names[n]} = {expr(n)[0]}" for n in shared]
    for out in graph.outputs:
        src = graph.operands(out)[0]
        if names.get(src) != out:
            lines.append(f"{out} = {ref(src)[0]}")
    return lines


def _wrap(arg: tuple[str, int], level: int) -> str:
    text, prec = arg
    return f"({text})" if prec < level else text
