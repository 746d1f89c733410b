"""A readable formula for a cell: ``h_next = tanh(W[x,h] + b) * z + h * (1 - z)`` style.

Nodes used more than once get a name of their own line (``z = σ(W[x,h] + b)``); names
from a graph file are used only when they are plain short identifiers, so a formula
never carries arbitrary text from a file.
"""

from __future__ import annotations

import re

from rnnsearch.cells.graph import CellGraph

_SAFE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
_ATOM, _PRODUCT, _SUM = 3, 2, 1


def _num(v: float) -> str:
    return f"{v:g}"


def formula_lines(graph: CellGraph) -> list[str]:
    order = graph.topological()
    reserved = graph.reserved
    shared = [n for n in order if n not in reserved and graph.op(n) != "const" and graph.g.out_degree(n) > 1]
    names: dict[str, str] = {}
    used = set(reserved) | {"W", "b", "u", "I"}
    for k, n in enumerate(shared):
        name = n if _SAFE.match(n) and n not in used else f"v{k}"
        while name in used:
            name = f"{name}_"
        used.add(name)
        names[n] = name
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
        op, a = graph.op(n), graph.full_attrs(n)
        args = [ref(u) for u in graph.operands(n)]
        if op == "const":
            out = (_num(a["value"]), _ATOM)
        elif op == "linear":
            w = "W" if a["init"] == "random" else f"W~{_num(a['gain'])}I"
            bias = "b" if a["bias_init"] == 0 else f"b({_num(a['bias_init'])})"
            out = (f"{w}[{','.join(s for s, _ in args)}] + {bias}", _SUM)
        elif op == "diag":
            out = (f"u * {_wrap(args[0], _PRODUCT)}", _PRODUCT)
        elif op in ("tanh", "relu"):
            out = (f"{op}({args[0][0]})", _ATOM)
        elif op == "sigmoid":
            out = (f"σ({args[0][0]})", _ATOM)
        elif op == "identity":
            out = args[0]
        elif op == "add":
            out = (f"{args[0][0]} + {args[1][0]}", _SUM)
        elif op == "sub":
            out = (f"{args[0][0]} - {_wrap(args[1], _PRODUCT)}", _SUM)
        elif op == "mul":
            out = (f"{_wrap(args[0], _PRODUCT)} * {_wrap(args[1], _PRODUCT)}", _PRODUCT)
        else:  # pragma: no cover - the op table and this function move together
            raise AssertionError(op)
        cache[n] = out
        return out

    lines = [f"{names[n]} = {expr(n)[0]}" for n in shared]
    for out in graph.outputs:
        lines.append(f"{out} = {ref(graph.operands(out)[0])[0]}")
    return lines


def formula(graph: CellGraph) -> str:
    return "; ".join(formula_lines(graph))


def _wrap(arg: tuple[str, int], level: int) -> str:
    text, prec = arg
    return f"({text})" if prec < level else text
