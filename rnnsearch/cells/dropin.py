"""The exported file's drop-in for ``torch.nn.GRU``: ``<P>Layer`` modules stacked behind
nn.GRU's constructor and ``forward``, and the file's header that says how to use it.

The class is named ``P`` itself (``GRU``, ``MUT1``, ``Arch42``), so that swapping it in is
one line; where ``P`` would shadow a name the file defines or imports (``torch``, ``nn``,
``<P>Layer``, a kernel alias), a Python keyword or a builtin the file's code calls
(``super``, ``tuple``...), it is ``<P>RNN`` instead.
"""

from __future__ import annotations

import ast
import builtins
import keyword


def dropin_name(prefix: str, body: str) -> str:
    """``prefix`` where it is free in the generated ``body``, else ``prefix + 'RNN'``."""
    taken = {"torch", "nn"}
    for node in ast.parse(body).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            taken.add(node.name)
        elif isinstance(node, ast.Assign):
            taken.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            taken.update((a.asname or a.name).split(".")[0] for a in node.names)
    if prefix in taken or keyword.iskeyword(prefix) or hasattr(builtins, prefix):
        return prefix + "RNN"
    return prefix


def _usage(name: str, states: tuple[str, ...]) -> tuple[str, str]:
    """How forward is called, and what hx and h_n are, for a cell with these states."""
    if len(states) == 1:
        return "output, h_n = rnn(input, h_0)", "hx and h_n are [num_layers, B, hidden_size]"
    outs = ", ".join(f"{s}_n" for s in states)
    ins = ", ".join(f"{s}_0" for s in states)
    return (
        f"output, ({outs}) = rnn(input, ({ins}))",
        f"hx and h_n are tuples ({outs}) in the order {name}.states (as nn.LSTM's (h_n, c_n)),\n"
        "each [num_layers, B, hidden_size]",
    )


def header(prefix: str, name: str, states: tuple[str, ...]) -> str:
    """The file's docstring: the one-line swap, the pieces, and loading a search's weights."""
    call, hx = _usage(name, states)
    renamed = f"({name}, not {prefix}: that name is taken in this file or by Python.)\n" if name != prefix else ""
    return (
        f'"""{prefix}: a recurrent cell exported by rnnsearch (needs only torch).\n'
        "\n"
        f"{name} is a drop-in for torch.nn.GRU, with its constructor and forward; one line swaps it in:\n"
        "\n"
        f"    rnn = {name}(input_size, hidden_size, num_layers=2, dropout=0.2)\n"
        f"    {call}   # input [T, B, input_size] -> output [T, B, hidden_size]\n"
        "\n"
        f"{hx}; batch_first=True as nn.GRU's. Where input_size != hidden_size,\n"
        "a learned nn.Linear(input_size, hidden_size, bias=False) (rnn.proj) first projects the input.\n"
        f"{renamed}"
        "\n"
        "The pieces it stacks (in rnn.layers, one per layer):\n"
        "\n"
        f"    layer = {prefix}Layer(hidden_size)            # forward(x_seq [T, B, n], state) -> (outputs, state)\n"
        f"    cell = {prefix}Cell(hidden_size)              # forward(x [B, n], state) -> (h, state)\n"
        f"    layer.load_state_dict(torch.load(...))   # weights saved from rnnsearch's compiled module\n"
        "\n"
        "A search's trained weights: `rnnsearch export ID -o cell.py --weights` also writes cell.pt,\n"
        "the best kept evaluation's {'hidden_size', 'layers': one layer's state_dict per layer,\n"
        "'task', 'evaluation', 'val_accuracy', 'hparams'}. The search fed each layer hidden_size\n"
        "wide inputs (no projection); into the drop-in:\n"
        "\n"
        "    w = torch.load('cell.pt', weights_only=True)\n"
        f"    rnn = {name}(w['hidden_size'], w['hidden_size'], num_layers=len(w['layers']))\n"
        "    for layer, state in zip(rnn.layers, w['layers']): layer.load_state_dict(state)\n"
        '"""\n\n'
    )


def dropin_class(prefix: str, name: str, states: tuple[str, ...]) -> str:
    """The drop-in class's source (it follows ``<prefix>Cell`` and ``<prefix>Layer``)."""
    P = prefix
    call, hx = _usage(name, states)
    hx = hx.replace("\n", "\n    ")
    lines = [
        f"class {name}(nn.Module):",
        f'    """{P}Layer modules stacked behind torch.nn.GRU\'s interface: a drop-in for it.',
        "",
        f"        {call}",
        "",
        "    input [T, B, input_size] ([B, T, input_size] with batch_first; [T, input_size] unbatched);",
        "    output [T, B, hidden_size] (batch_first: [B, T, hidden_size]), the last layer's h per step;",
        f"    {hx} (hx None: zeros). The layers are self.layers,",
        f"    {P}Layer modules: a compiled module's state_dict loads into each. Dropout between the",
        "    layers (not after the last), in training mode only. Where input_size != hidden_size,",
        "    self.proj = nn.Linear(input_size, hidden_size, bias=False) projects the input to the",
        "    hidden width (the cell's own biases follow it); None where they are equal. bias=False",
        "    zeroes each layer's cell.bias and freezes it (requires_grad False).",
        '    """',
        "",
        f"    states = {P}Cell.states",
        "",
        "    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0):",
        "        super().__init__()",
        "        if int(input_size) < 1 or int(hidden_size) < 1 or int(num_layers) < 1:",
        "            raise ValueError(",
        "                'input_size, hidden_size and num_layers must be positive, not '",
        "                f'{input_size}, {hidden_size}, {num_layers}'",
        "            )",
        "        if not 0.0 <= float(dropout) <= 1.0:",
        "            raise ValueError(f'dropout must be in [0, 1], not {dropout}')",
        "        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)",
        "        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)",
        "        self.bidirectional = False",
        "        n = self.hidden_size",
        "        self.proj = nn.Linear(self.input_size, n, bias=False) if self.input_size != n else None",
        f"        self.layers = nn.ModuleList({P}Layer(n) for _ in range(self.num_layers))",
        "        self._drop_biases()",
        "",
        "    def _drop_biases(self):",
        "        if self.bias:",
        "            return",
        "        for layer in self.layers:",
        "            b = getattr(layer.cell, 'bias', None)",
        "            if b is not None:",
        "                with torch.no_grad():",
        "                    b.zero_()",
        "                b.requires_grad_(False)",
        "",
        "    def reset_parameters(self):",
        "        if self.proj is not None:",
        "            self.proj.reset_parameters()",
        "        for layer in self.layers:",
        "            layer.cell.reset_parameters()",
        "        self._drop_biases()",
        "",
        "    def flatten_parameters(self):",
        '        """nn.GRU\'s cuDNN weight packing: nothing to do here."""',
        "",
        "    def forward(self, input, hx=None):",
        "        if input.dim() not in (2, 3):",
        "            raise ValueError(f'{type(self).__name__}: input must be 2-D or 3-D, not {input.dim()}-D')",
        "        batched = input.dim() == 3",
        "        x = input if batched else input.unsqueeze(1)",
        "        if batched and self.batch_first:",
        "            x = x.transpose(0, 1)",
        "        if x.shape[-1] != self.input_size:",
        "            raise ValueError(f'{type(self).__name__}: input_size {self.input_size}, got input {tuple(input.shape)}')",
        "        if self.proj is not None:",
        "            x = self.proj(x)",
        "        S = len(self.states)",
        "        if hx is None:",
        "            per_layer = [None] * self.num_layers",
        "        else:",
        "            hs = (hx,) if isinstance(hx, torch.Tensor) else tuple(hx)",
        "            if len(hs) != S:",
        "                raise ValueError(f'{type(self).__name__}: hx is {S} tensor(s) in the order {self.states}')",
        "            if not batched:",
        "                hs = tuple(h.unsqueeze(1) for h in hs)",
        "            want = (self.num_layers, x.shape[1], self.hidden_size)",
        "            for h in hs:",
        "                if tuple(h.shape) != want:",
        "                    raise ValueError(f'{type(self).__name__}: hx tensors must be {want}, got {tuple(h.shape)}')",
        "            per_layer = [tuple(h[i] for h in hs) for i in range(self.num_layers)]",
        "        last = []",
        "        for i, layer in enumerate(self.layers):",
        "            if i and self.dropout and self.training:",
        "                x = nn.functional.dropout(x, self.dropout, True)",
        "            x, state = layer(x, per_layer[i])",
        "            last.append(state)",
        "        h_n = tuple(torch.stack([s[k] for s in last]) for k in range(S))",
        "        if not batched:",
        "            x, h_n = x.squeeze(1), tuple(h.squeeze(1) for h in h_n)",
        "        elif self.batch_first:",
        "            x = x.transpose(0, 1)",
        "        return x, (h_n[0] if S == 1 else h_n)",
    ]
    return "\n".join(lines) + "\n"
