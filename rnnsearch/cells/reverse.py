"""Generate the backward of a cell's time loop from its graph (reverse mode at codegen time).

Autograd records a dozen small nodes per time step and walks them back one by one; on
the small matrices of a cell that bookkeeping, not arithmetic, sets the speed. Instead
the generator writes, next to ``step``:

- ``step_save``: the step, also returning the values its backward reads (activations'
  outputs, the factors of products, the sources of matrix multiplies);
- ``step_back``: one straight-line reverse step: the gradients of the new states in, the
  gradients of the old states, of the block slices and of each loop matrix multiply out;
- ``<Name>Recurrence``: an ``autograd.Function`` that runs ``step_save`` over the
  sequence without recording anything, runs ``step_back`` in reverse, and computes each
  loop weight's gradient as one matrix multiply over all steps (where autograd makes one
  small one per step).

Everything x-only (``prepare``) stays with autograd. Double backward is not supported:
the time loop is differentiated once.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnsearch.cells.codegen import StepForm

# One kernel each, where the composite formula would be three.
_ACTIVATION_BACKWARD = {
    "tanh": "_tanh_backward({g}, {y})",
    "sigmoid": "_sigmoid_backward({g}, {y})",
    "relu": "_relu_backward({g}, {y}, 0)",
}

PRELUDE = [
    "_tanh_backward = torch.ops.aten.tanh_backward.default",
    "_sigmoid_backward = torch.ops.aten.sigmoid_backward.default",
    "_relu_backward = torch.ops.aten.threshold_backward.default",
]


class _Sums:
    """Gradient contributions per forward name, written as one sum when the name is reached."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, str]]] = defaultdict(list)

    def add(self, name: str, expr: str, sign: int = 1) -> None:
        if name.isidentifier():  # a literal constant takes no gradient
            self.parts[name].append((sign, expr))

    def total(self, name: str) -> str | None:
        parts = self.parts.get(name)
        if not parts:
            return None
        text = ""
        for i, (sign, expr) in enumerate(parts):
            if i == 0:
                text = expr if sign > 0 else f"-{expr}"
            else:
                text += (" + " if sign > 0 else " - ") + expr
        return text


class ReverseEmitter:
    """Writes ``step_save``, ``step_back`` and the Recurrence class for one emitter."""

    def __init__(self, em, form: StepForm):
        self.em = em
        self.f = form
        self.saved: list[str] = []
        self.back_body: list[str] = []
        self.back_returns: list[str] = []
        self.slots: list[str] = []  # step_back's output slices: ob* per block, oa* per unaligned group
        # positions in the saved tuple: the source of each loop group, the operand of each loop diag
        self.group_source: dict[str, int] = {}
        self.diag_operand: dict[int, int] = {}
        self._reverse()

    # -- the reverse step -----------------------------------------------------------
    def _need(self, name: str) -> None:
        if name.isidentifier() and name not in self.saved:
            self.saved.append(name)

    def _reverse(self) -> None:
        em, f, p, g = self.em, self.f, self.em.p, self.em.g
        sums = _Sums()
        out = self.back_body
        defined: set[str] = set()
        d_a: dict[str, str] = {}
        diag_grad: dict[int, str] = {}
        zeros = "torch.zeros_like(go0)"

        for i, _ in enumerate(g.outputs):
            sums.add(f.new[i], f"go{i}")

        def grad_of(name: str) -> str:
            return f"g_{name}" if f"g_{name}" in defined else zeros

        groups = list(em.loop_groups)

        def write(slot: str, parts: list[str]) -> None:
            """Into the caller's slice of the whole-sequence buffer: no stacking afterwards."""
            if len(parts) == 1:
                out.append(f"        {slot}.copy_({parts[0]})")
            else:
                out.append(f"        torch.cat([{', '.join(parts)}], -1, out={slot})")

        def group_back(s: str) -> None:
            ts = em.loop_groups[s]
            # an aligned group's gradient is its block's gradient: one buffer serves both
            d_a[s] = f"ob{f.aligned_block[s]}" if s in f.aligned_block else f"oa{groups.index(s)}"
            write(d_a[s], [grad_of(f.names[t.node]) for t in ts])
            src = f.ref(s)
            sums.add(src, em._mm(d_a[s], em._t(f.weight[s])))
            self._need(src)

        for n in reversed(p.order):
            if p.kind.get(n) != "loop" or n in p.alias:
                continue
            key = f.names[n]
            if n in em.loop_groups:
                group_back(n)
            total = sums.total(key)
            if total is None:
                continue
            gk = f"g_{key}"
            out.append(f"        {gk} = {total}")
            defined.add(gk)
            op = g.op(n)
            args = [] if op == "linear" else [f.ref(u) for u in g.operands(n)]
            if op == "linear":
                if em.first_group[n] not in em.aligned:
                    sums.add(f.pre_piece[n], gk)
            elif op in _ACTIVATION_BACKWARD:
                self._need(key)
                sums.add(args[0], _ACTIVATION_BACKWARD[op].format(g=gk, y=key))
            elif op == "add":
                sums.add(args[0], gk)
                sums.add(args[1], gk)
            elif op == "sub":
                sums.add(args[0], gk)
                sums.add(args[1], gk, -1)
            elif op == "mul":
                a, b = args
                if a.isidentifier():
                    sums.add(a, f"{gk} * {b}")
                    self._need(b)
                if b.isidentifier():
                    sums.add(b, f"{gk} * {a}")
                    self._need(a)
            elif op == "diag":
                i = em.diags.index(n)
                sums.add(args[0], f"{gk} * d{i}")
                self._need(args[0])
                diag_grad[i] = gk
                self.diag_operand[i] = self.saved.index(args[0])
            else:  # pragma: no cover - the op table is closed
                raise AssertionError(op)

        for s in g.states:
            if s in em.loop_groups:
                group_back(s)
        state_grads = []
        for i, s in enumerate(g.states):
            total = sums.total(f.names[s])
            state_grads.append(f"g_s{i}")
            out.append(f"        g_s{i} = {total if total is not None else zeros}")
        if em.misc:
            write(f"ob{len(em.blocks) - 1}", [sums.total(f.pre_piece[m]) or zeros for m in em.misc])
        self.group_source = {s: self.saved.index(f.ref(s)) for s in em.loop_groups}
        self.back_returns = state_grads + [diag_grad.get(i, "None") for i in range(len(em.diags))]
        self.slots = [f"ob{j}" for j in range(len(em.blocks))]
        self.slots += [f"oa{i}" for i, s in enumerate(groups) if s not in f.aligned_block]

    # -- source ---------------------------------------------------------------------
    def methods(self) -> list[str]:
        f, em = self.f, self.em
        new = f"({', '.join(f.new)}{',' if len(f.new) == 1 else ''})"
        saved = f"({', '.join(self.saved)}{',' if len(self.saved) == 1 else ''})"
        grads_in = [f"go{i}" for i in range(len(em.g.states))]
        params = [a for a in f.args if a[0] in "wd"]
        return [
            "    @staticmethod",
            f"    def step_save({', '.join(f.args)}):",
            '        """The step, also returning what step_back reads."""',
            *f.body,
            f"        return {new}, {saved}",
            "",
            "    @staticmethod",
            f"    def step_back({', '.join(grads_in + self.saved + params + self.slots)}):",
            '        """One reverse step: gradients of the new states in, of the old states and loop',
            "        diagonals out; those of the block slices (ob*) and of the loop matrix multiplies",
            '        that are no block (oa*) written into the slices given."""',
            *self.back_body,
            f"        return ({', '.join(self.back_returns)},)",
        ]

    def recurrence_class(self) -> list[str]:
        em = self.em
        P = em.prefix
        k, S = len(em.blocks), len(em.g.states)
        blocks = [f"b{i}" for i in range(k)]
        states = [f"s{i}" for i in range(S)]
        weights = [f"w{i}" for i in range(len(em.loop_groups))]
        diags = [f"d{i}" for i in range(len(em.diags))]
        params = weights + diags
        tdim = 1 if em.members else 0
        tup = lambda xs: f"({', '.join(xs)}{',' if len(xs) == 1 else ''})"  # noqa: E731
        at_t = "".join(f"x{i}[t], " for i in range(k))
        g_diags = [f"gd{i}" for i in range(len(diags))]
        # whole-sequence gradient buffers that step_back writes into, one slice per step
        buffers = [(f"gb{i}", f"ctx.block_shapes[{i}]") for i in range(k)]
        buffers += [
            (f"ga{i}", f"(*g_out.shape[:-1], w{i}.shape[-1])")
            for i, s in enumerate(em.loop_groups)
            if s not in self.f.aligned_block
        ]
        at = "[:, t]" if em.members else "[t]"
        out = [
            f"class {P}Recurrence(torch.autograd.Function):",
            '    """The time loop with its backward generated from the graph: the forward keeps what',
            "    step_back reads, the backward runs the steps in reverse and computes each loop weight's",
            '    gradient as one matrix multiply over all steps."""',
            "",
            "    @staticmethod",
            f"    def forward(ctx, save, back, T, {', '.join(blocks + states + params)}):",
            *[f"        x{i} = b{i}.unbind({tdim})" for i in range(k)],
            f"        state = {tup(states)}",
            "        outputs, saved = [], []",
            "        for t in range(T):",
            f"            state, kept = save({at_t}*state, {', '.join(params)})",
            "            outputs.append(state[0])",
            "            saved.append(kept)",
            "        ctx.back, ctx.kept, ctx.T = back, saved, T",
            f"        ctx.block_shapes = {tup([f'b{i}.shape' for i in range(k)])}",
            f"        ctx.save_for_backward({', '.join(params)})",
            "        # a state passed through unchanged must not leave as a view of an input",
            f"        inputs = {tup(blocks + states)}",
            "        state = tuple(s.clone() if s._base is not None or any(s is a for a in inputs) else s for s in state)",
            f"        return (torch.stack(outputs, {tdim}),) + state",
            "",
            "    @staticmethod",
            f"    def backward(ctx, g_out, {', '.join('g' + s for s in states)}):",
            f"        {tup(params)} = ctx.saved_tensors",
            "        back, kept, T = ctx.back, ctx.kept, ctx.T",
            "        ctx.kept = None",
            *[f"        {name} = g_out.new_empty({shape})" for name, shape in buffers],
            *[f"        {name} = [None] * T" for name in g_diags],
            f"        g_out = g_out.unbind({tdim})",
            "        for t in range(T - 1, -1, -1):",
            f"            ({', '.join(['g' + s for s in states] + [f'{d}[t]' for d in g_diags])},) = back(",
            f"                {', '.join(['g' + states[0] + ' + g_out[t]'] + ['g' + s for s in states[1:]])},",
            f"                *kept[t], {', '.join(params + [name + at for name, _ in buffers])}",
            "            )",
        ]
        grads = [f"gb{i}" for i in range(k)] + ["g" + s for s in states]
        flat = "flatten(1, 2)" if em.members else "flatten(0, 1)"
        # each weight gradient as the transpose of a contiguous product: the parameter is the
        # transpose of the loop weight, so autograd accumulates it without a copy
        for i, src in enumerate(em.loop_groups):
            j = self.group_source[src]
            d_a = f"gb{self.f.aligned_block[src]}" if src in self.f.aligned_block else f"ga{i}"
            out.append(f"        src = torch.stack([kv[{j}] for kv in kept], {tdim}).{flat}")
            if em.members:
                out.append(f"        gw{i} = torch.bmm({d_a}.{flat}.transpose(1, 2), src).transpose(1, 2)")
            else:
                out.append(f"        gw{i} = torch.mm({d_a}.{flat}.t(), src).t()")
            grads.append(f"gw{i}")
        for i in range(len(diags)):
            if i not in self.diag_operand:
                grads.append("None")
                continue
            j = self.diag_operand[i]
            u = f"torch.stack([kv[{j}] for kv in kept], {tdim})"
            if em.members:
                out.append(f"        gd{i} = (torch.stack(gd{i}, 1) * {u}).sum((1, 2)).unsqueeze(1)")
            else:
                out.append(f"        gd{i} = (torch.stack(gd{i}) * {u}).sum((0, 1))")
            grads.append(f"gd{i}")
        out.append(f"        return None, None, None, {', '.join(grads)}")
        return out
