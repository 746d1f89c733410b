"""The generated time loop: the ``<Name>Layer`` (the cell over a sequence) and the
``<Name>Recurrence`` autograd.Function it runs with the generated reverse step (forward
with ``step_save``, backward with ``step_back``, each loop weight's gradient one matrix
multiply over all steps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnsearch.cells.plan import CellPlan


def recurrence_class(p: CellPlan, prefix: str, members: bool) -> list[str]:
    """The autograd.Function that runs the loop with the generated reverse step."""
    f, r = p.step, p.reverse
    P = prefix
    k, S = len(p.blocks), len(p.graph.states)
    blocks = [f"b{i}" for i in range(k)]
    states = [f"s{i}" for i in range(S)]
    weights = [f"w{i}" for i in range(len(p.loop_groups))]
    diags = [f"d{i}" for i in range(len(p.diags))]
    params = weights + diags
    tdim = 1 if members else 0
    tup = lambda xs: f"({', '.join(xs)}{',' if len(xs) == 1 else ''})"  # noqa: E731
    at_t = "".join(f"x{i}[t], " for i in range(k))
    g_diags = [f"gd{i}" for i in range(len(diags))]
    # whole-sequence gradient buffers that step_back writes into, one slice per step
    buffers = [(f"gb{i}", f"ctx.block_shapes[{i}]") for i in range(k)]
    buffers += [
        (f"ga{i}", f"(*g_out.shape[:-1], w{i}.shape[-1])")
        for i, s in enumerate(p.loop_groups)
        if s not in f.aligned_block
    ]
    at = "[:, t]" if members else "[t]"
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
        "        if kept is None:  # walked back once already: torch's own error for its modules",
        "            raise RuntimeError(",
        "                'Trying to backward through the graph a second time; specify retain_graph=True '",
        "                'the first time to backward through it again'",
        "            )",
        "        if not _keep_graph():  # free the steps' values now, as torch frees its own",
        "            ctx.kept = None",
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
    flat = "flatten(1, 2)" if members else "flatten(0, 1)"
    # each weight gradient as the transpose of a contiguous product: the parameter is the
    # transpose of the loop weight, so autograd accumulates it without a copy
    for i, src in enumerate(p.loop_groups):
        j = r.group_source[src]
        d_a = f"gb{f.aligned_block[src]}" if src in f.aligned_block else f"ga{i}"
        out.append(f"        src = torch.stack([kv[{j}] for kv in kept], {tdim}).{flat}")
        if members:
            out.append(f"        gw{i} = torch.bmm({d_a}.{flat}.transpose(1, 2), src).transpose(1, 2)")
        else:
            out.append(f"        gw{i} = torch.mm({d_a}.{flat}.t(), src).t()")
        grads.append(f"gw{i}")
    for i in range(len(diags)):
        if i not in r.diag_operand:
            grads.append("None")
            continue
        j = r.diag_operand[i]
        u = f"torch.stack([kv[{j}] for kv in kept], {tdim})"
        if members:
            out.append(f"        gd{i} = (torch.stack(gd{i}, 1) * {u}).sum((1, 2)).unsqueeze(1)")
        else:
            out.append(f"        gd{i} = (torch.stack(gd{i}) * {u}).sum((0, 1))")
        grads.append(f"gd{i}")
    out.append(f"        return None, None, None, {', '.join(grads)}")
    return out


def layer_class(p: CellPlan, prefix: str, members: bool) -> list[str]:
    """The layer: the cell over a sequence, by the C loop, the Recurrence or the plain step."""
    P = prefix
    k = len(p.blocks)
    blocks = ", ".join(f"b{i}" for i in range(k)) + ("," if k == 1 else "")
    at_t = "".join(f"b{i}[t], " for i in range(k))
    t_dim = 1 if members else 0
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
        f"    state is a tuple of {len(p.graph.states)} tensor(s) [batch, n] in the order {P}Cell.states; h first.",
        '    """',
        "",
        f"    def __init__(self, hidden_size: int{', members: int' if members else ''}):",
        "        super().__init__()",
        f"        self.cell = {P}Cell(hidden_size{', members' if members else ''})",
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
        f"        return torch.stack(outputs{', 1' if members else ''}), state",
    ]
