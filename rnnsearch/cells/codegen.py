"""Generate the Python source of a cell module from a graph.

The source is the single truth for both the compiler (which executes it) and the
exporter (which writes it to a file): a ``<Name>Cell`` with the parameters, a
``prepare`` that runs everything that depends on ``x`` alone for the whole sequence
(one matrix multiply per source), a straight-line ``step``, and a ``<Name>Layer``
that loops ``step`` over time.

Nothing a graph file names reaches the source: identifiers are generated from node
indices, state names are checked plain identifiers, numbers are ``repr`` of finite
floats, and the docstring is escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rnnsearch.cells.formula import formula_lines
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.ops import OPS
from rnnsearch.cells.reverse import PRELUDE, ReverseEmitter

_UNARY = {"tanh": "torch.tanh({})", "sigmoid": "torch.sigmoid({})", "relu": "torch.relu({})"}
_BINARY = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}"}


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
class StepForm:
    """The generated step as the backward generator reads it.

    ``names[node]`` is the local a loop node or state has in ``body``; ``ref(node)`` is the
    expression a reader uses (a name, a block piece, or a literal for a constant);
    ``pre_piece[node]`` the block piece holding a node's x-only part; ``weight[src]`` the
    argument holding the transposed weights of a loop source; ``aligned_block[src]`` the
    block that a source's addmm adds in.
    """

    args: list[str]
    body: list[str]
    new: list[str]
    names: dict[str, str]
    ref: Callable[[str], str]
    pre_piece: dict[str, str]
    weight: dict[str, str]
    aligned_block: dict[str, int]


@dataclass
class _Term:
    node: str
    slot: int
    src: str


@dataclass
class _Plan:
    graph: CellGraph
    order: list[str]
    idx: dict[str, int]
    kind: dict[str, str] = field(default_factory=dict)  # const | seq | loop | input
    value: dict[str, float] = field(default_factory=dict)  # folded constants
    alias: dict[str, str] = field(default_factory=dict)  # identity -> operand


_DISPLAY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*")


def class_prefix(name: str) -> str:
    """A Python class-name prefix from a display name ('LSTM-b' -> 'LSTM_b'); any name
    that is not a plain word-and-dash name becomes 'Generated'."""
    if len(name) <= 40 and _DISPLAY_NAME.fullmatch(name):
        return name.replace("-", "_")
    return "Generated"


def generate(graph: CellGraph, name: str = "Generated", doc: str = "", members: bool = False) -> tuple[str, CellLayout]:
    """Return the module source and the parameter layout for ``graph``.

    ``members``: the member-batched form, ``<Name>MemberCell``/``<Name>MemberLayer``, whose
    parameters have a leading member dimension K (one model per hyperparameter setting,
    trained together with batched matrix multiplies); inputs are ``[K, T, B, n]``.
    """
    return emitter(graph, name, doc, members).source()


def emitter(graph: CellGraph, name: str = "Generated", doc: str = "", members: bool = False) -> _Emitter:
    """The code generator for ``graph``; after ``.source()`` its ``.reverse`` holds the
    step and reverse step that the native loop translates."""
    graph = graph.copy().validate()
    return _Emitter(_analyse(graph), class_prefix(name), doc, members)


def _resolve(plan: _Plan, n: str) -> str:
    while n in plan.alias:
        n = plan.alias[n]
    return n


def _analyse(graph: CellGraph) -> _Plan:
    order = graph.topological()
    plan = _Plan(graph, order, {n: i for i, n in enumerate(order)})
    for n in order:
        op = graph.op(n)
        if op == "input":
            plan.kind[n] = "seq" if n == "x" else "input"
            continue
        if op == "output":
            continue
        operands = [_resolve(plan, u) for u in graph.operands(n)]
        kinds = {plan.kind[u] for u in operands}
        if op == "identity":
            plan.alias[n] = operands[0]
            plan.kind[n] = plan.kind[operands[0]]
        elif op == "const":
            plan.kind[n] = "const"
            plan.value[n] = float(graph.full_attrs(n)["value"])
        elif kinds <= {"const"} and not OPS[op].learned:
            plan.kind[n] = "const"
            folded = OPS[op].scalar(*[plan.value[u] for u in operands])
            plan.value[n] = folded if math.isfinite(folded) else 0.0
        elif kinds & {"input", "loop"}:
            plan.kind[n] = "loop"
        else:
            plan.kind[n] = "seq"
    return plan


class _Emitter:
    def __init__(self, plan: _Plan, prefix: str, doc: str, members: bool = False):
        self.p = plan
        self.g = plan.graph
        self.members = members
        self.prefix = prefix + ("Member" if members else "")
        self.doc = doc
        g, p = self.g, plan
        self.linear = [n for n in p.order if g.op(n) == "linear"]
        self.diags = [n for n in p.order if g.op(n) == "diag"]
        self.terms: list[_Term] = []
        for n in self.linear:
            for slot, u in enumerate(g.operands(n)):
                self.terms.append(_Term(n, slot, _resolve(p, u)))
        # Loop groups: one per loop source, in the order the step computes the sources.
        loop_srcs = self._ordered_sources(lambda t: p.kind[t.src] in ("input", "loop"))
        self.loop_groups = {s: [t for t in self.terms if t.src == s] for s in loop_srcs}
        self.first_group: dict[str, str] = {}
        for s, ts in self.loop_groups.items():
            for t in ts:
                self.first_group.setdefault(t.node, s)
        self.aligned = {
            s
            for s, ts in self.loop_groups.items()
            if len({t.node for t in ts}) == len(ts) and all(self.first_group[t.node] == s for t in ts)
        }
        # Pre-loop blocks: each aligned group's nodes, then one "misc" block of pieces.
        self.blocks: list[list[str]] = [[t.node for t in self.loop_groups[s]] for s in loop_srcs if s in self.aligned]
        covered = {n for b in self.blocks for n in b}
        misc = [n for n in self.linear if p.kind[n] == "loop" and n not in covered]
        for n in p.order:  # sequence values read inside the loop by non-linear ops or outputs
            if p.kind.get(n) != "seq" or n in misc or n in p.alias:
                continue
            if any(p.kind.get(v) == "loop" and g.op(v) != "linear" or g.op(v) == "output" for v in self._readers(n)):
                misc.append(n)
        if misc:
            self.blocks.append(misc)
        self.misc = misc
        # Bias rows follow block order, so an aligned block's biases are one slice.
        bias_order = [n for b in self.blocks for n in b if g.op(n) == "linear"]
        bias_order += [n for n in self.linear if n not in bias_order]
        self.bias_row = {n: i for i, n in enumerate(bias_order)}
        # Sequence sources: one matrix multiply each, rows in block order where possible.
        pos = {n: i for i, n in enumerate(bias_order)}
        seq_srcs = self._ordered_sources(lambda t: p.kind[t.src] in ("seq", "const"))
        self.seq_groups = {
            s: sorted((t for t in self.terms if t.src == s), key=lambda t: (pos[t.node], t.slot)) for s in seq_srcs
        }
        self.param_of = {s: self._param_name(s) for s in list(self.seq_groups) + list(self.loop_groups)}

    # -- tensor idioms: the single and the member-batched form differ only here ---------
    def _mm(self, a: str, w: str) -> str:
        return f"torch.bmm({a}, {w})" if self.members else f"torch.mm({a}, {w})"

    def _addmm(self, c: str, a: str, w: str) -> str:
        return f"torch.baddbmm({c}, {a}, {w})" if self.members else f"torch.addmm({c}, {a}, {w})"

    def _t(self, param: str) -> str:
        return f"{param}.transpose(1, 2)" if self.members else f"{param}.t()"

    def _bias(self, i: int) -> str:
        return f"b[:, {i}:{i + 1}]" if self.members else f"b[{i}]"

    def _rows(self) -> str:
        """Rows of the flattened sequence (T*B), with the member dimension in front."""
        return "K, T * B" if self.members else "T * B"

    def _diag_row(self, i: int) -> str:
        return f"self.diag[:, {i}:{i + 1}]" if self.members else f"self.diag[{i}]"

    # -- helpers ----------------------------------------------------------------------
    def _readers(self, n: str) -> list[str]:
        out = []
        for v in self.g.consumers(n):
            if v in self.p.alias:
                out += self._readers(v)
            else:
                out.append(v)
        return out

    def _ordered_sources(self, keep) -> list[str]:
        srcs = {t.src for t in self.terms if keep(t)}
        return sorted(srcs, key=lambda s: self.p.idx[s])

    def _param_name(self, src: str) -> str:
        return f"weight_{src}" if src in self.g.inputs else f"weight_v{self.p.idx[src]}"

    def _layout(self) -> CellLayout:
        terms = {}
        rows = {}
        for groups in (self.seq_groups, self.loop_groups):
            for s, ts in groups.items():
                rows[self.param_of[s]] = len(ts)
                for r, t in enumerate(ts):
                    terms[(t.node, t.slot)] = (self.param_of[s], r)
        return CellLayout(terms, dict(self.bias_row), {n: i for i, n in enumerate(self.diags)}, rows)

    # -- source -----------------------------------------------------------------------
    def source(self) -> tuple[str, CellLayout]:
        self.reverse = ReverseEmitter(self, self.forward_step())
        lines = ["import torch", "from torch import nn", "", *PRELUDE, "", ""]
        lines += self._cell_class()
        lines += ["", ""]
        lines += self.reverse.recurrence_class()
        lines += ["", ""]
        lines += self._layer_class()
        return "\n".join(lines) + "\n", self._layout()

    def _docstring(self, indent: str) -> list[str]:
        text = "\n".join(formula_lines(self.g))
        if self.doc:
            text = self.doc.strip() + "\n\n" + text
        text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        body = [indent + ln if ln else "" for ln in text.splitlines()]
        return [f'{indent}"""'] + body + [f'{indent}"""']

    def _cell_class(self) -> list[str]:
        g, P = self.g, self.prefix
        states = ", ".join(repr(s) for s in g.states) + ("," if len(g.states) == 1 else "")
        out = [f"class {P}Cell(nn.Module):"]
        out += self._docstring("    ")
        K = "K, " if self.members else ""
        out += [
            "",
            f"    states = ({states})",
            "",
            f"    def __init__(self, hidden_size: int{', members: int' if self.members else ''}):",
            "        super().__init__()",
            "        n = self.hidden_size = int(hidden_size)",
        ]
        if self.members:
            out.append("        K = self.members = int(members)")
        for s in list(self.seq_groups) + list(self.loop_groups):
            ts = self.seq_groups.get(s) or self.loop_groups[s]
            out.append(f"        self.{self.param_of[s]} = nn.Parameter(torch.empty({K}{len(ts)} * n, n))")
        if self.linear:
            out.append(f"        self.bias = nn.Parameter(torch.empty({K}{len(self.linear)}, n))")
        if self.diags:
            out.append(f"        self.diag = nn.Parameter(torch.empty({K}{len(self.diags)}, n))")
        if self.members:
            out.append("        for k in range(K):")
            out.append("            self.reset_member(k)")
        else:
            out.append("        self.reset_parameters()")
        out += [""] + self._reset() + [""] + self._initial_state() + [""] + self._prepare() + [""] + self._step()
        out += [""] + self.reverse.methods()
        t_dim = 1 if self.members else 0
        lead = "K, " if self.members else ""
        out += [
            "",
            "    def forward(self, x, state=None):",
            f'        """One time step: x [{lead}batch, n] -> (h_next, state_next)."""',
            "        if state is None:",
            f"            state = self.initial_state(x.shape[{t_dim}], x.device, x.dtype)",
            f"        blocks, params = self.prepare(x.unsqueeze({t_dim}))",
            f"        state = self.step(*[b.select({t_dim}, 0) for b in blocks], *state, *params)",
            "        return state[0], state",
        ]
        return out

    def _reset(self) -> list[str]:
        if self.members:
            head = [
                "    def reset_member(self, k: int, init_scale: float = 1.0, generator=None):",
                '        """Member k exactly as the single cell\'s reset_parameters(init_scale, generator)."""',
            ]
            idx = "[k]"
        else:
            head = [
                "    def reset_parameters(self, init_scale: float = 1.0, generator=None):",
                '        """Weights U(-s/sqrt(n), s/sqrt(n)); identity-initialised terms a*I; biases their',
                '        bias_init (0 unless set); diagonals U(-s/sqrt(n), s/sqrt(n)) or U(0, 1)."""',
            ]
            idx = ""
        out = head + [
            "        n = self.hidden_size",
            "        bound = init_scale / n ** 0.5",
            "        with torch.no_grad():",
        ]
        body_start = len(out)
        # the draw order is the single cell's; the member form repeats it per member
        for s in list(self.seq_groups) + list(self.loop_groups):
            out.append(f"            self.{self.param_of[s]}{idx}.uniform_(-bound, bound, generator=generator)")
        for s in list(self.seq_groups) + list(self.loop_groups):
            ts = self.seq_groups.get(s) or self.loop_groups[s]
            for r, t in enumerate(ts):
                a = self.g.full_attrs(t.node)
                if a["init"] == "identity":
                    gain = repr(float(a["gain"]))
                    out.append(
                        f"            self.{self.param_of[s]}{idx}[{r} * n:{r + 1} * n].copy_("
                        f"{gain} * torch.eye(n, dtype=self.bias.dtype, device=self.bias.device))"
                    )
        if self.linear:
            out.append(f"            self.bias{idx}.zero_()")
            for n in self.linear:
                b = float(self.g.full_attrs(n)["bias_init"])
                if b != 0.0:
                    out.append(f"            self.bias{idx}[{self.bias_row[n]}].fill_({b!r})")
        for i, n in enumerate(self.diags):
            if self.g.full_attrs(n)["init"] == "uniform01":
                out.append(f"            self.diag{idx}[{i}].uniform_(0.0, 1.0, generator=generator)")
            else:
                out.append(f"            self.diag{idx}[{i}].uniform_(-bound, bound, generator=generator)")
        if len(out) == body_start:
            out.append("            pass")
        return out

    def _initial_state(self) -> list[str]:
        k = len(self.g.states)
        return [
            "    def initial_state(self, batch_size: int, device=None, dtype=None):",
            f"        z = torch.zeros({'self.members, ' if self.members else ''}batch_size, self.hidden_size, device=device, dtype=dtype)",
            f"        return ({', '.join(['z'] * k)}{',' if k == 1 else ''})",
        ]

    # Values inside prepare are named q<i> (node index) and p<i> (matmul of source i).
    def _q(self, n: str) -> str:
        n = _resolve(self.p, n)
        if self.p.kind[n] == "const":
            return repr(self.p.value[n])
        return f"q{self.p.idx[n]}"

    def _prepare(self) -> list[str]:
        p, g = self.p, self.g
        out = [
            "    def prepare(self, x_seq):",
            '        """Everything that depends on x alone, for the whole sequence at once."""',
            f"        {'K, ' if self.members else ''}T, B, n = x_seq.shape",
            f"        q{p.idx['x']} = x_seq.reshape({self._rows()}, n)",
        ]
        if self.linear:
            out.append("        b = self.bias")
        fast = self._fast_block()
        chunks: dict[tuple[str, int], str] = {}  # (node, slot) -> expression of its term
        emitted_src: set[str] = set()

        def emit_source(s: str) -> None:
            if s in emitted_src or s in fast:
                return
            emitted_src.add(s)
            ts = self.seq_groups[s]
            src = self._q(s)
            if p.kind[s] == "const":
                src = f"x_seq.new_full(({self._rows()}, n), {src})"
            name = f"p{p.idx[s]}"
            out.append(f"        {name} = {self._mm(src, self._t(f'self.{self.param_of[s]}'))}")
            if len(ts) == 1:
                chunks[(ts[0].node, ts[0].slot)] = name
            else:
                parts = [f"{name}_{k}" for k in range(len(ts))]
                out.append(f"        {', '.join(parts)} = {name}.chunk({len(ts)}, -1)")
                for t, part in zip(ts, parts, strict=True):
                    chunks[(t.node, t.slot)] = part

        for s in self.seq_groups:
            if p.kind[s] == "const":
                emit_source(s)
        for n in p.order:
            if p.kind.get(n) != "seq" or n == "x" or n in p.alias:
                if p.kind.get(n) == "seq" and n == "x" and "x" in self.seq_groups:
                    emit_source("x")
                continue
            out.append(f"        q{p.idx[n]} = {self._expr(n, self._q, chunks, self._prepared_diag)}")
            if n in self.seq_groups:
                emit_source(n)

        def pre_part(n: str) -> str:
            if g.op(n) != "linear" or p.kind[n] == "seq":
                return self._q(n)
            parts = [chunks[(t.node, t.slot)] for t in self.terms if t.node == n and p.kind[t.src] in ("seq", "const")]
            bias = self._bias(self.bias_row[n])
            if not parts:
                return f"{bias}.expand({self._rows()}, n)"
            return " + ".join(parts + [bias])

        names = []
        for bi, block in enumerate(self.blocks):
            name = f"blk{bi}"
            names.append(name)
            if bi in fast.values():
                s = next(k for k, v in fast.items() if v == bi)
                lo, hi = self.bias_row[block[0]], self.bias_row[block[-1]] + 1
                bias = f"b[:, {lo}:{hi}].reshape(K, 1, -1)" if self.members else f"b[{lo}:{hi}].reshape(-1)"
                out.append(f"        {name} = {self._addmm(bias, self._q(s), self._t(f'self.{self.param_of[s]}'))}")
            elif len(block) == 1:
                out.append(f"        {name} = {pre_part(block[0])}")
            else:
                out.append(f"        {name} = torch.cat([{', '.join(pre_part(m) for m in block)}], -1)")
        # transposed once per sequence: a contiguous right-hand side multiplies faster at every step
        params = [self._t(f"self.{self.param_of[s]}") + ".contiguous()" for s in self.loop_groups]
        for i, n in enumerate(self.diags):
            params.append(self._diag_param(i, n))
        shape = "K, T, B, -1" if self.members else "T, B, -1"
        blocks = ", ".join(f"{b}.view({shape})" for b in names)
        out.append(
            f"        return ({blocks}{',' if len(names) == 1 else ''}), ({', '.join(params)}{',' if len(params) == 1 else ''})"
        )
        return out

    def _fast_block(self) -> dict[str, int]:
        """Sources whose matmul is exactly one block (plus the block's biases): one addmm."""
        fast = {}
        for bi, block in enumerate(self.blocks):
            if block is self.misc:
                continue
            for s, ts in self.seq_groups.items():
                if self.p.kind[s] != "seq":
                    continue
                nodes = [t.node for t in ts]
                only = all(
                    [u.src for u in self.terms if u.node == m and self.p.kind[u.src] in ("seq", "const")] == [s]
                    for m in block
                )
                used_elsewhere = any(t.node not in block for t in ts)
                if nodes == block and only and not used_elsewhere:
                    fast[s] = bi
        return fast

    def _diag_param(self, i: int, n: str) -> str:
        bound = self.g.full_attrs(n)["bound"]
        if bound is None:
            return self._diag_row(i)
        return f"{self._diag_row(i)}.clamp({-float(bound)!r}, {float(bound)!r})"

    def _prepared_diag(self, n: str) -> str:
        return self._diag_param(self.diags.index(n), n)

    def _expr(self, n: str, ref, linear_terms: dict, diag_param) -> str:
        """The expression of a non-linear node, or of a linear node from its term parts."""
        op = self.g.op(n)
        args = [ref(u) for u in self.g.operands(n)]
        if op == "linear":
            parts = [linear_terms[(n, slot)] for slot in range(len(args))]
            return " + ".join(parts + [self._bias(self.bias_row[n])])
        if op == "diag":
            return f"{diag_param(n)} * {args[0]}"
        if op in _UNARY:
            return _UNARY[op].format(args[0])
        if op in _BINARY:
            return _BINARY[op].format(*args)
        raise AssertionError(op)

    def _step(self) -> list[str]:
        f = self.reverse.f  # the step the backward was generated from: built once
        return [
            "    @staticmethod",
            f"    def step({', '.join(f.args)}):",
            '        """One time step, straight-line: block slices at t, states, weights -> states."""',
            *f.body,
            f"        return ({', '.join(f.new)}{',' if len(f.new) == 1 else ''})",
        ]

    def forward_step(self) -> StepForm:
        """The step's straight-line body and the names it gives each value."""
        p, g = self.p, self.g
        block_args = [f"xb{i}" for i in range(len(self.blocks))]
        state_args = [f"s{i}" for i in range(len(g.states))]
        weight_args = [f"w{i}" for i in range(len(self.loop_groups))]
        diag_args = [f"d{i}" for i in range(len(self.diags))]
        out: list[str] = []
        names: dict[str, str] = {}
        for i, s in enumerate(g.states):
            names[s] = f"s{i}"
        # Pieces of the blocks: aligned blocks are consumed by their group's addmm.
        aligned_block = {}
        bi = 0
        for s in self.loop_groups:
            if s in self.aligned:
                aligned_block[s] = bi
                bi += 1
        pre_piece: dict[str, str] = {}
        if self.misc:
            mb = f"xb{len(self.blocks) - 1}"
            if len(self.misc) == 1:
                pre_piece[self.misc[0]] = mb
            else:
                parts = [f"m{k}" for k in range(len(self.misc))]
                out.append(f"        {', '.join(parts)} = {mb}.chunk({len(self.misc)}, -1)")
                pre_piece.update(zip(self.misc, parts, strict=True))
        term_part: dict[tuple[str, int], str] = {}
        wname = {s: f"w{i}" for i, s in enumerate(self.loop_groups)}

        def ref(u: str) -> str:
            u = _resolve(p, u)
            if p.kind[u] == "const":
                return repr(p.value[u])
            if p.kind[u] == "seq":
                return pre_piece[u]
            return names[u]

        def emit_group(s: str) -> None:
            ts = self.loop_groups[s]
            a = f"a{p.idx[s]}"
            if s in self.aligned:
                out.append(f"        {a} = {self._addmm(f'xb{aligned_block[s]}', ref(s), wname[s])}")
            else:
                out.append(f"        {a} = {self._mm(ref(s), wname[s])}")
            parts = [a] if len(ts) == 1 else [f"{a}_{k}" for k in range(len(ts))]
            if len(ts) > 1:
                out.append(f"        {', '.join(parts)} = {a}.chunk({len(ts)}, -1)")
            for t, part in zip(ts, parts, strict=True):
                term_part[(t.node, t.slot)] = part

        for s in g.states:
            if s in self.loop_groups:
                emit_group(s)
        for n in p.order:
            if p.kind.get(n) != "loop" or n in p.alias:
                continue
            name = f"v{p.idx[n]}"
            op = g.op(n)
            if op == "linear":
                parts = []
                for slot, u in enumerate(g.operands(n)):
                    u = _resolve(p, u)
                    if p.kind[u] in ("input", "loop"):
                        parts.append(term_part[(n, slot)])
                if self.first_group[n] not in self.aligned:
                    parts.insert(0, pre_piece[n])
                if len(parts) == 1:  # the group's chunk already is the node's value
                    names[n] = parts[0]
                    if n in self.loop_groups:
                        emit_group(n)
                    continue
                expr = " + ".join(parts)
            elif op == "diag":
                expr = f"d{self.diags.index(n)} * {ref(g.operands(n)[0])}"
            else:
                expr = self._expr(n, ref, {}, None)
            out.append(f"        {name} = {expr}")
            names[n] = name
            if n in self.loop_groups:
                emit_group(n)
        new = [ref(g.operands(o)[0]) for o in g.outputs]
        return StepForm(
            args=block_args + state_args + weight_args + diag_args,
            body=out,
            new=new,
            names=names,
            ref=ref,
            pre_piece=pre_piece,
            weight={s: wname[s] for s in self.loop_groups},
            aligned_block=aligned_block,
        )

    def _layer_class(self) -> list[str]:
        P = self.prefix
        k = len(self.blocks)
        blocks = ", ".join(f"b{i}" for i in range(k)) + ("," if k == 1 else "")
        at_t = "".join(f"b{i}[t], " for i in range(k))
        t_dim = 1 if self.members else 0
        unbound = ", ".join(f"b{i}.unbind({t_dim})" for i in range(k)) + ("," if k == 1 else "")
        unbind = (
            [
                "        # unbind once: indexing b[t] per step would make backward zero-fill the whole block T times",
                f"        ({blocks}) = ({unbound})",
            ]
            if k
            else []
        )
        return [
            f"class {P}Layer(nn.Module):",
            '    """The cell over a sequence: forward(x_seq [T, batch, n], state) -> (outputs [T, batch, n], state).',
            "",
            f"    state is a tuple of {len(self.g.states)} tensor(s) [batch, n] in the order {P}Cell.states; h first.",
            '    """',
            "",
            f"    def __init__(self, hidden_size: int{', members: int' if self.members else ''}):",
            "        super().__init__()",
            f"        self.cell = {P}Cell(hidden_size{', members' if self.members else ''})",
            "        self.hidden_size = self.cell.hidden_size",
            "        # False: let autograd record the steps instead of the generated backward",
            "        self.generated_backward = True",
            "        self._step, self._save, self._back = self.cell.step, self.cell.step_save, self.cell.step_back",
            "        # runs the whole layer when set and it accepts the input (rnnsearch's native C",
            "        # loop: loop(cell, x_seq, state) -> (outputs, state)); None: the Python step",
            "        self.loop = None",
            "",
            "    def compile_step(self, **options):",
            '        """Run the step and its reverse under torch.compile (the first calls compile)."""',
            "        self._step = torch.compile(self.cell.step, **options)",
            "        self._save = torch.compile(self.cell.step_save, **options)",
            "        self._back = torch.compile(self.cell.step_back, **options)",
            "        return self",
            "",
            "    def forward(self, x_seq, state=None):",
            "        if state is None:",
            f"            state = self.cell.initial_state(x_seq.shape[{t_dim + 1}], x_seq.device, x_seq.dtype)",
            "        if self.loop is not None and self.loop.accepts(x_seq):",
            "            return self.loop(self.cell, x_seq, state)",
            f"        ({blocks}), params = self.cell.prepare(x_seq)",
            "        if self.generated_backward and torch.is_grad_enabled():",
            f"            outputs, *state = {P}Recurrence.apply(",
            f"                self._save, self._back, x_seq.shape[{t_dim}], {''.join(f'b{i}, ' for i in range(k))}*state, *params",
            "            )",
            "            return outputs, tuple(state)",
            *unbind,
            "        step = self._step",
            "        outputs = []",
            f"        for t in range(x_seq.shape[{t_dim}]):",
            f"            state = step({at_t}*state, *params)",
            "            outputs.append(state[0])",
            f"        return torch.stack(outputs{', 1' if self.members else ''}), state",
        ]
