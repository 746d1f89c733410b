"""The Python backend: a cell module's source from the cell's plan.

The source is the single truth for both the compiler (which executes it) and the
exporter (which writes it to a file): a ``<Name>Cell`` with the parameters, a
``prepare`` that runs everything that depends on ``x`` alone for the whole sequence
(one matrix multiply per source), a straight-line ``step`` with its ``step_save`` and
``step_back`` (the plan's IR, printed), a ``<Name>Recurrence`` that runs them, and a
``<Name>Layer`` that loops ``step`` over time.

Nothing a graph file names reaches the source: identifiers are generated from node
indices, state names are checked plain identifiers, numbers are ``repr`` of finite
floats, and the docstring is escaped.
"""

from __future__ import annotations

import re

from rnnsearch.cells.formula import formula_lines
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.ir import Apply, Elem, Num, Ref, kernels_used, render_py, render_stmt_py
from rnnsearch.cells.ops import KERNELS
from rnnsearch.cells.plan import CellLayout, CellPlan, build_plan
from rnnsearch.cells.recurrence import layer_class, recurrence_class

# The question the generated backward asks of autograd, at the top of every module.
KEEP_GRAPH = [
    "# whether this backward keeps the graph (retain_graph=True): then it may run again",
    "_keep_graph = getattr(torch._C._autograd, '_get_current_graph_task_keep_graph', lambda: True)",
]


def prelude(plan: CellPlan) -> list[str]:
    """What the kernels of this cell's step and reverse step define (aten aliases, helpers)."""
    used = kernels_used(plan.step.body + plan.reverse.body + tuple(Elem("", e) for e in plan.step.new))
    defs = [KERNELS[k].py_def for k in KERNELS if k in used and KERNELS[k].py_def]
    aliases = [d for d in defs if not d.startswith("def ")]
    functions = [line for d in defs if d.startswith("def ") for line in ["", "", *d.splitlines()]]
    return aliases + KEEP_GRAPH + functions


_DISPLAY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*")


def class_prefix(name: str) -> str:
    """A Python class-name prefix from a display name ('LSTM-b' -> 'LSTM_b'); any name
    that is not a plain word-and-dash name becomes 'Generated'."""
    if len(name) <= 40 and _DISPLAY_NAME.fullmatch(name):
        return name.replace("-", "_")
    return "Generated"


def generate(
    graph: CellGraph | CellPlan, name: str = "Generated", doc: str = "", members: bool = False
) -> tuple[str, CellLayout]:
    """Return the module source and the parameter layout for ``graph`` (or its plan).

    ``members``: the member-batched form, ``<Name>MemberCell``/``<Name>MemberLayer``, whose
    parameters have a leading member dimension K (one model per hyperparameter setting,
    trained together with batched matrix multiplies); inputs are ``[K, T, B, n]``.
    """
    plan = graph if isinstance(graph, CellPlan) else build_plan(graph)
    return _Emitter(plan, class_prefix(name), doc, members).source()


class _Emitter:
    def __init__(self, plan: CellPlan, prefix: str, doc: str, members: bool = False):
        self.p = plan
        self.g = plan.graph
        self.members = members
        self.prefix = prefix + ("Member" if members else "")
        self.doc = doc
        for field in (
            "linear",
            "diags",
            "terms",
            "loop_groups",
            "seq_groups",
            "blocks",
            "misc",
            "bias_row",
            "param_of",
        ):
            setattr(self, field, getattr(plan, field))

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

    # -- source -----------------------------------------------------------------------
    def source(self) -> tuple[str, CellLayout]:
        lines = ["import torch", "from torch import nn", "", *prelude(self.p), "", ""]
        lines += self._cell_class()
        lines += ["", ""]
        lines += recurrence_class(self.p, self.prefix, self.members)
        lines += ["", ""]
        lines += layer_class(self.p, self.prefix, self.members)
        return "\n".join(lines) + "\n", self.p.layout()

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
        out += [""] + self._reverse_methods()
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
        n = self.p.resolve(n)
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
            if self.misc and bi == len(self.blocks) - 1:
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
                if tuple(nodes) == block and only and not used_elsewhere:
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
            if self.p.kind[self.p.resolve(self.g.operands(n)[0])] == "const":  # u * 0.5: one row, made full
                return f"({diag_param(n)} * {args[0]}).expand({self._rows()}, n)"
            return f"{diag_param(n)} * {args[0]}"
        consts = [self.p.resolve(u) for u in self.g.operands(n)]
        exprs = [
            Num(self.p.value[u]) if self.p.kind[u] == "const" else Ref(a) for u, a in zip(consts, args, strict=True)
        ]
        return render_py(Apply(op, tuple(exprs)), KERNELS)

    def _body(self, stmts) -> list[str]:
        return [render_stmt_py(st, KERNELS, self.members) for st in stmts]

    def _step(self) -> list[str]:
        f = self.p.step
        return [
            "    @staticmethod",
            f"    def step({', '.join(f.args)}):",
            '        """One time step, straight-line: block slices at t, states, weights -> states."""',
            *self._body(f.body),
            f"        return {_tuple(render_py(e, KERNELS) for e in f.new)}",
        ]

    def _reverse_methods(self) -> list[str]:
        f, r = self.p.step, self.p.reverse
        grads_in = [f"go{i}" for i in range(len(self.g.states))]
        params = [a for a in f.args if a[0] in "wd"]
        returns = [v or "None" for v in r.returns]
        return [
            "    @staticmethod",
            f"    def step_save({', '.join(f.args)}):",
            '        """The step, also returning what step_back reads."""',
            *self._body(f.body),
            f"        return {_tuple(render_py(e, KERNELS) for e in f.new)}, {_tuple(r.saved)}",
            "",
            "    @staticmethod",
            f"    def step_back({', '.join(grads_in + list(r.saved) + params + list(r.slots))}):",
            '        """One reverse step: gradients of the new states in, of the old states and loop',
            "        diagonals out; those of the block slices (ob*) and of the loop matrix multiplies",
            '        that are no block (oa*) written into the slices given."""',
            *self._body(r.body),
            f"        return ({', '.join(returns)},)",
        ]


def _tuple(items) -> str:
    items = list(items)
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
