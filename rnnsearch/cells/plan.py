"""The plan of a cell: what is computed where, built once from the graph.

Every backend emits from this plan: the Python module (``codegen``), its generated
backward, the member-batched form and the C loop (``native_c``). It says

- which nodes depend on ``x`` alone (``seq``: computed for the whole sequence before the
  loop), which on a state (``loop``), which are constants (folded) or aliases (identity);
- the loop products: the ``linear`` terms that read one loop value are one matrix multiply
  (a *group*), and the group's pre-loop *block* is added in by that multiply where the
  group's nodes line up with a block (*aligned*);
- the pre-loop blocks, and where each learned quantity lives (:class:`CellLayout`);
- the step (:class:`~rnnsearch.cells.step.StepIR`) and the reverse step with the values it
  needs (:class:`~rnnsearch.cells.reverse.ReverseIR`), as IR statements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.ops import OPS


@dataclass(frozen=True)
class CellLayout:
    """Where each learned quantity of a graph node lives in the module's parameters.

    ``terms[(node, slot)] = (param, row)``: the term's n x n block is
    ``getattr(cell, param)[row * n:(row + 1) * n]``; ``bias[node] = row`` of ``cell.bias``;
    ``diag[node] = row`` of ``cell.diag``.
    """

    terms: dict[tuple[str, int], tuple[str, int]]
    bias: dict[str, int]
    diag: dict[str, int]
    weight_rows: dict[str, int]  # parameter name -> number of n-row blocks


@dataclass(frozen=True)
class Term:
    """One ``W v`` of a linear node: the node, the operand's slot, the source value."""

    node: str
    slot: int
    src: str


@dataclass(frozen=True)
class CellPlan:
    graph: CellGraph
    order: tuple[str, ...]
    idx: dict[str, int]
    kind: dict[str, str]  # const | seq | loop | input
    value: dict[str, float]  # folded constants
    alias: dict[str, str]  # identity -> operand
    linear: tuple[str, ...]
    diags: tuple[str, ...]
    terms: tuple[Term, ...]
    loop_groups: dict[str, tuple[Term, ...]]  # loop source -> its terms, in step order
    first_group: dict[str, str]  # linear node -> the first group that reads into it
    aligned: frozenset[str]  # groups whose product adds their block in
    blocks: tuple[tuple[str, ...], ...]  # pre-loop blocks: each aligned group's nodes, then misc
    misc: tuple[str, ...]
    bias_row: dict[str, int]
    seq_groups: dict[str, tuple[Term, ...]]  # sequence source -> its terms
    param_of: dict[str, str]  # source -> weight parameter name
    step: object = None  # StepIR, set by build_plan
    reverse: object = None  # ReverseIR

    def resolve(self, n: str) -> str:
        while n in self.alias:
            n = self.alias[n]
        return n

    def readers(self, n: str) -> list[str]:
        """The nodes that read ``n``, looking through aliases."""
        out = []
        for v in self.graph.consumers(n):
            out += self.readers(v) if v in self.alias else [v]
        return out

    def layout(self) -> CellLayout:
        terms, rows = {}, {}
        for groups in (self.seq_groups, self.loop_groups):
            for s, ts in groups.items():
                rows[self.param_of[s]] = len(ts)
                for r, t in enumerate(ts):
                    terms[(t.node, t.slot)] = (self.param_of[s], r)
        return CellLayout(terms, dict(self.bias_row), {n: i for i, n in enumerate(self.diags)}, rows)


def build_plan(graph: CellGraph) -> CellPlan:
    """The plan of a validated graph (the graph is copied, never changed)."""
    from rnnsearch.cells.reverse import reverse_step
    from rnnsearch.cells.step import forward_step

    graph = graph.copy().validate()
    order = tuple(graph.topological())
    idx = {n: i for i, n in enumerate(order)}
    kind, value, alias = _kinds(graph, order)
    plan = CellPlan(graph, order, idx, kind, value, alias, **_groups(graph, order, idx, kind, alias))
    step = forward_step(plan)
    object.__setattr__(plan, "step", step)
    object.__setattr__(plan, "reverse", reverse_step(plan, step))
    return plan


def _kinds(graph: CellGraph, order) -> tuple[dict, dict, dict]:
    kind: dict[str, str] = {}
    value: dict[str, float] = {}
    alias: dict[str, str] = {}

    def resolve(u: str) -> str:
        while u in alias:
            u = alias[u]
        return u

    for n in order:
        op = graph.op(n)
        if op == "input":
            kind[n] = "seq" if n == "x" else "input"
            continue
        if op == "output":
            continue
        operands = [resolve(u) for u in graph.operands(n)]
        kinds = {kind[u] for u in operands}
        if op == "identity":
            alias[n] = operands[0]
            kind[n] = kind[operands[0]]
        elif op == "const":
            kind[n] = "const"
            value[n] = float(graph.full_attrs(n)["value"])
        elif kinds <= {"const"} and not OPS[op].learned:
            kind[n] = "const"
            folded = OPS[op].scalar(*[value[u] for u in operands])
            value[n] = folded if math.isfinite(folded) else 0.0
        elif kinds & {"input", "loop"}:
            kind[n] = "loop"
        else:
            kind[n] = "seq"
    return kind, value, alias


def _groups(graph: CellGraph, order, idx, kind, alias) -> dict:
    def resolve(u: str) -> str:
        while u in alias:
            u = alias[u]
        return u

    def readers(n: str) -> list[str]:
        out = []
        for v in graph.consumers(n):
            out += readers(v) if v in alias else [v]
        return out

    def sources(keep) -> list[str]:
        return sorted({t.src for t in terms if keep(t)}, key=lambda s: idx[s])

    linear = tuple(n for n in order if graph.op(n) == "linear")
    diags = tuple(n for n in order if graph.op(n) == "diag")
    terms = tuple(Term(n, slot, resolve(u)) for n in linear for slot, u in enumerate(graph.operands(n)))
    # Loop groups: one per loop source, in the order the step computes the sources.
    loop_srcs = sources(lambda t: kind[t.src] in ("input", "loop"))
    loop_groups = {s: tuple(t for t in terms if t.src == s) for s in loop_srcs}
    first_group: dict[str, str] = {}
    for s, ts in loop_groups.items():
        for t in ts:
            first_group.setdefault(t.node, s)
    aligned = frozenset(
        s
        for s, ts in loop_groups.items()
        if len({t.node for t in ts}) == len(ts) and all(first_group[t.node] == s for t in ts)
    )
    # Pre-loop blocks: each aligned group's nodes, then one "misc" block of pieces.
    blocks = [tuple(t.node for t in loop_groups[s]) for s in loop_srcs if s in aligned]
    covered = {n for b in blocks for n in b}
    misc = [n for n in linear if kind[n] == "loop" and n not in covered]
    for n in order:  # sequence values read inside the loop by non-linear ops or outputs
        if kind.get(n) != "seq" or n in misc or n in alias:
            continue
        if any(kind.get(v) == "loop" and graph.op(v) != "linear" or graph.op(v) == "output" for v in readers(n)):
            misc.append(n)
    if misc:
        blocks.append(tuple(misc))
    # Bias rows follow block order, so an aligned block's biases are one slice.
    bias_order = [n for b in blocks for n in b if graph.op(n) == "linear"]
    bias_order += [n for n in linear if n not in bias_order]
    bias_row = {n: i for i, n in enumerate(bias_order)}
    # Sequence sources: one matrix multiply each, rows in block order where possible.
    seq_srcs = sources(lambda t: kind[t.src] in ("seq", "const"))
    seq_groups = {
        s: tuple(sorted((t for t in terms if t.src == s), key=lambda t: (bias_row[t.node], t.slot))) for s in seq_srcs
    }
    param_of = {
        s: (f"weight_{s}" if s in graph.inputs else f"weight_v{idx[s]}") for s in list(seq_groups) + list(loop_groups)
    }
    return dict(
        linear=linear,
        diags=diags,
        terms=terms,
        loop_groups=loop_groups,
        first_group=first_group,
        aligned=aligned,
        blocks=tuple(blocks),
        misc=tuple(misc),
        bias_row=bias_row,
        seq_groups=seq_groups,
        param_of=param_of,
    )
