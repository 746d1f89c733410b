"""The cell's time step as IR: block slices at t, states and loop weights in, new states out.

Arguments: ``xb<i>`` the blocks' slices at t, ``s<i>`` the states, ``w<i>`` each loop
group's weight (transposed), ``d<i>`` the diagonals. Locals: ``a<k>`` a group's product
(``a<k>_<j>`` its pieces), ``m<j>`` the pieces of the misc block, ``v<k>`` a node's value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnsearch.cells.ir import Apply, Chunk, Elem, Expr, Gemm, Num, Ref, Stmt, call

if TYPE_CHECKING:
    from rnnsearch.cells.plan import CellPlan


@dataclass(frozen=True)
class StepIR:
    """The step, and the names it gives each value (what the reverse step reads).

    ``names[node]`` is the local a loop node or state has; ``ref(node)`` the expression a
    reader uses (a name, a block piece, or a number for a constant); ``pre_piece[node]`` the
    block piece holding a node's x-only part; ``weight[src]`` the index of a loop source's
    weight; ``aligned_block[src]`` the block that a source's product adds in.
    """

    args: tuple[str, ...]
    body: tuple[Stmt, ...]
    new: tuple[Expr, ...]
    names: dict[str, str]
    ref: Callable[[str], Expr]
    pre_piece: dict[str, str]
    weight: dict[str, int]
    aligned_block: dict[str, int]


def _sum(parts: list[str]) -> Expr:
    out: Expr = Ref(parts[0])
    for p in parts[1:]:
        out = call("add", out, Ref(p))
    return out


def forward_step(p: CellPlan) -> StepIR:
    g = p.graph
    out: list[Stmt] = []
    names: dict[str, str] = {s: f"s{i}" for i, s in enumerate(g.states)}
    aligned_block = {s: i for i, s in enumerate(s for s in p.loop_groups if s in p.aligned)}
    weight = {s: i for i, s in enumerate(p.loop_groups)}
    pre_piece: dict[str, str] = {}
    if p.misc:
        mb = f"xb{len(p.blocks) - 1}"
        if len(p.misc) == 1:
            pre_piece[p.misc[0]] = mb
        else:
            parts = tuple(f"m{k}" for k in range(len(p.misc)))
            out.append(Chunk(parts, mb))
            pre_piece.update(zip(p.misc, parts, strict=True))
    term_part: dict[tuple[str, int], str] = {}

    def ref(u: str) -> Expr:
        u = p.resolve(u)
        if p.kind[u] == "const":
            return Num(p.value[u])
        if p.kind[u] == "seq":
            return Ref(pre_piece[u])
        return Ref(names[u])

    def emit_group(s: str) -> None:
        ts = p.loop_groups[s]
        a = f"a{p.idx[s]}"
        src = ref(s).name
        add = f"xb{aligned_block[s]}" if s in p.aligned else None
        out.append(Gemm(a, src, weight[s], add=add))
        parts = [a] if len(ts) == 1 else [f"{a}_{k}" for k in range(len(ts))]
        if len(ts) > 1:
            out.append(Chunk(tuple(parts), a))
        for t, part in zip(ts, parts, strict=True):
            term_part[(t.node, t.slot)] = part

    for s in g.states:
        if s in p.loop_groups:
            emit_group(s)
    for n in p.order:
        if p.kind.get(n) != "loop" or n in p.alias:
            continue
        name = f"v{p.idx[n]}"
        op = g.op(n)
        if op == "linear":
            loop_slots = [k for k, u in enumerate(g.operands(n)) if p.kind[p.resolve(u)] in ("input", "loop")]
            parts = [term_part[(n, k)] for k in loop_slots]
            if p.first_group[n] not in p.aligned:
                parts.insert(0, pre_piece[n])
            if len(parts) == 1:  # the group's chunk already is the node's value
                names[n] = parts[0]
                if n in p.loop_groups:
                    emit_group(n)
                continue
            expr = _sum(parts)
        elif op == "diag":
            expr = call("mul", Ref(f"d{p.diags.index(n)}"), ref(g.operands(n)[0]))
        else:
            expr = Apply(op, tuple(ref(u) for u in g.operands(n)))
        out.append(Elem(name, expr))
        names[n] = name
        if n in p.loop_groups:
            emit_group(n)
    args = [f"xb{i}" for i in range(len(p.blocks))]
    args += [f"s{i}" for i in range(len(g.states))]
    args += [f"w{i}" for i in range(len(p.loop_groups))]
    args += [f"d{i}" for i in range(len(p.diags))]
    return StepIR(
        args=tuple(args),
        body=tuple(out),
        new=tuple(ref(g.operands(o)[0]) for o in g.outputs),
        names=names,
        ref=ref,
        pre_piece=pre_piece,
        weight=weight,
        aligned_block=aligned_block,
    )
