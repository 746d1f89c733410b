"""The model around a cell: embedding (vocab -> n), L layers of the compiled cell, softmax."""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from rnnsearch.cells import CellGraph, compile_cell
from rnnsearch.cells.cbuild import NativeUnavailable
from rnnsearch.cells.compiler import compile_mode
from rnnsearch.cells.params import parameter_count, width_for_budget


def width_for(graph: CellGraph, param_budget: int, layers: int, vocab_size: int) -> int:
    """The width n at which the whole model fits the parameter budget."""
    # embedding V*n, softmax n*V + V
    return width_for_budget(graph, max(1, param_budget - vocab_size), layers, extra_per_unit=2 * vocab_size)


def model_parameter_count(graph: CellGraph, n: int, layers: int, vocab_size: int) -> int:
    return layers * parameter_count(graph, n) + 2 * vocab_size * n + vocab_size


def loop_for(device: torch.device, n: int | None = None, batch: int | None = None) -> str:
    """How the layers run their time loop on ``device``: ``RNNSEARCH_LOOP`` when set
    (eager, torch or native); on a GPU the Python step (torch's kernels are one launch per
    op there, and the C loop cannot run); on the CPU the faster of the C loop and the
    Python step for this width and batch, as measured on this machine
    (:func:`~rnnsearch.tasks.fastpath.loop_decision`; the C loop where no sizes are given)."""
    chosen = os.environ.get("RNNSEARCH_LOOP")
    if chosen:
        return compile_mode(chosen)
    if device.type != "cpu":
        return "eager"
    if n is None or batch is None:
        return "native"
    from rnnsearch.tasks.fastpath import loop_decision

    return loop_decision(n, batch).chosen


def build_layers(make, count: int, compile: bool | str) -> nn.ModuleList:
    """``count`` layers from ``make(compile)``; the native loop falls back to the Python
    step, with a warning, where no C compiler works."""
    try:
        return nn.ModuleList(make(compile) for _ in range(count))
    except NativeUnavailable as err:
        warnings.warn(f"the native loop is unavailable, running the Python step: {err}", stacklevel=3)
        return nn.ModuleList(make("eager") for _ in range(count))


def products_for(hidden_size: int, vocab_size: int, rows: int = 700):
    """The scope the model's own products (its softmax) run in: gemm.c's kernel
    (:func:`~rnnsearch.cells.matmul.fast_products`) or torch's, whichever is faster here
    for these sizes (on PTB the softmax over 10k words is most of a step); ``rows`` is
    batch x unroll (700: the paper's 20 x 35)."""
    from rnnsearch.tasks.fastpath import products_scope, softmax_decision

    return products_scope(softmax_decision(hidden_size, vocab_size, rows))


class CellModel(nn.Module):
    def __init__(
        self,
        graph: CellGraph,
        hidden_size: int,
        layers: int,
        vocab_size: int,
        name: str = "Cell",
        compile: bool | str = False,
    ):
        """``compile``: as :func:`compile_cell`'s; ``"native"`` falls back to the Python
        step, with a warning, where no C compiler works."""
        super().__init__()
        self.hidden_size = hidden_size
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.layers = build_layers(
            lambda mode: compile_cell(graph, hidden_size, name=name, compile=mode), layers, compile
        )
        self.softmax = nn.Linear(hidden_size, vocab_size)
        self.products = products_for(hidden_size, vocab_size)

    def reset_parameters(self, init_scale: float, generator: torch.Generator) -> None:
        """Everything U(-s/sqrt(n), s/sqrt(n)), except what a cell's graph says otherwise."""
        bound = init_scale / self.hidden_size**0.5
        with torch.no_grad():
            self.embed.weight.uniform_(-bound, bound, generator=generator)
            self.softmax.weight.uniform_(-bound, bound, generator=generator)
            self.softmax.bias.zero_()
        for layer in self.layers:
            layer.cell.reset_parameters(init_scale, generator)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> list[tuple[torch.Tensor, ...]]:
        return [layer.cell.initial_state(batch_size, device, dtype) for layer in self.layers]

    def forward(self, tokens: torch.Tensor, state: list[tuple[torch.Tensor, ...]]):
        y = self.embed(tokens)
        new_state = []
        for layer, s in zip(self.layers, state, strict=True):
            y, s = layer(y, s)
            new_state.append(s)
        with self.products():
            return self.softmax(y), new_state


def detach_state(state):
    return [tuple(t.detach() for t in s) for s in state]
