"""The reverse of a cell's time step, as IR (reverse mode at codegen time).

Autograd records a dozen small nodes per time step and walks them back one by one; on
the small matrices of a cell that bookkeeping, not arithmetic, sets the speed. Instead the
plan carries one straight-line reverse step: the gradients of the new states in (``go<i>``),
the gradients of the old states, of the block slices and of each loop matrix multiply out.
Each op's share of the gradient is its derivative in the op table; the values those
derivatives read are what the forward saves (``saved``). The Python emitter writes it as
``step_back`` (and the forward as ``step_save``), the C emitter as the native loop's
backward; everything x-only (``prepare``) stays with autograd.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnsearch.cells.ir import Apply, Elem, Expr, Gemm, Ref, Stmt, Write, call, names_in
from rnnsearch.cells.ops import OPS

if TYPE_CHECKING:
    from rnnsearch.cells.plan import CellPlan
    from rnnsearch.cells.step import StepIR


@dataclass(frozen=True)
class ReverseIR:
    """``saved``: the forward values the reverse reads, in the order the forward returns
    them; ``body``; ``returns``: the old states' gradients, then each diagonal's per-step
    gradient (None: no gradient); ``slots``: the output slices, ``ob<i>`` per block and
    ``oa<i>`` per group whose product is no block; ``group_source[src]``: the position of a
    loop source in ``saved``; ``diag_operand[i]``: that of diagonal i's operand."""

    saved: tuple[str, ...]
    body: tuple[Stmt, ...]
    returns: tuple[str | None, ...]
    slots: tuple[str, ...]
    group_source: dict[str, int]
    diag_operand: dict[int, int]


class _Sums:
    """Gradient contributions per forward name, written as one sum when the name is reached."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, Expr]]] = defaultdict(list)

    def add(self, target: Expr, expr: Expr) -> None:
        if not isinstance(target, Ref):  # a constant takes no gradient
            return
        sign = 1
        if isinstance(expr, Apply) and expr.kernel == "neg":
            sign, expr = -1, expr.args[0]
        self.parts[target.name].append((sign, expr))

    def total(self, name: str) -> Expr | None:
        parts = self.parts.get(name)
        if not parts:
            return None
        sign, out = parts[0]
        if sign < 0:
            out = call("neg", out)
        for sign, expr in parts[1:]:
            out = call("add" if sign > 0 else "sub", out, expr)
        return out


def reverse_step(p: CellPlan, f: StepIR) -> ReverseIR:
    g = p.graph
    sums = _Sums()
    out: list[Stmt] = []
    saved: list[str] = []
    defined: set[str] = set()
    diag_grad: dict[int, str] = {}
    diag_operand: dict[int, int] = {}
    zeros = call("zeros_like", Ref("go0"))
    groups = list(p.loop_groups)

    def need(names: list[str]) -> None:
        for name in names:
            if name not in saved:
                saved.append(name)

    for i, _ in enumerate(g.outputs):
        sums.add(f.new[i], Ref(f"go{i}"))

    def grad_of(name: str) -> Expr:
        return Ref(f"g_{name}") if f"g_{name}" in defined else zeros

    def group_back(s: str) -> None:
        # an aligned group's gradient is its block's gradient: one buffer serves both
        slot = f"ob{f.aligned_block[s]}" if s in f.aligned_block else f"oa{groups.index(s)}"
        out.append(Write(slot, tuple(grad_of(f.names[t.node]) for t in p.loop_groups[s])))
        src = f.ref(s)
        out.append(Gemm(f"gm{p.idx[s]}", slot, f.weight[s], transposed=True))
        sums.add(src, Ref(f"gm{p.idx[s]}"))
        need([src.name])

    for n in reversed(p.order):
        if p.kind.get(n) != "loop" or n in p.alias:
            continue
        key = f.names[n]
        if n in p.loop_groups:
            group_back(n)
        total = sums.total(key)
        if total is None:
            continue
        gk = f"g_{key}"
        out.append(Elem(gk, total))
        defined.add(gk)
        op = g.op(n)
        if op == "linear":
            if p.first_group[n] not in p.aligned:
                sums.add(Ref(f.pre_piece[n]), Ref(gk))
            continue
        args = [f.ref(u) for u in g.operands(n)]
        if op == "diag":
            i = p.diags.index(n)
            sums.add(args[0], call("mul", Ref(gk), Ref(f"d{i}")))
            need([args[0].name])
            diag_grad[i] = gk
            diag_operand[i] = saved.index(args[0].name)
            continue
        shares = OPS[op].grad(Ref(gk), Ref(key), *args)
        for arg, share in zip(args, shares, strict=True):
            if isinstance(arg, Ref) and share is not None:
                sums.add(arg, share)
                need([u for u in names_in(share) if u != gk])

    for s in g.states:
        if s in p.loop_groups:
            group_back(s)
    state_grads = []
    for i, s in enumerate(g.states):
        total = sums.total(f.names[s])
        state_grads.append(f"g_s{i}")
        out.append(Elem(f"g_s{i}", total if total is not None else zeros))
    if p.misc:
        out.append(Write(f"ob{len(p.blocks) - 1}", tuple(sums.total(f.pre_piece[m]) or zeros for m in p.misc)))
    slots = [f"ob{j}" for j in range(len(p.blocks))]
    slots += [f"oa{i}" for i, s in enumerate(groups) if s not in f.aligned_block]
    return ReverseIR(
        saved=tuple(saved),
        body=tuple(out),
        returns=tuple(state_grads) + tuple(diag_grad.get(i) for i in range(len(p.diags))),
        slots=tuple(slots),
        group_source={s: saved.index(f.ref(s).name) for s in p.loop_groups},
        diag_operand=diag_operand,
    )
