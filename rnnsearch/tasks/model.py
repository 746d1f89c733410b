"""The model around a cell: embedding (vocab -> n), L layers of the compiled cell, softmax."""

from __future__ import annotations

import torch
from torch import nn

from rnnsearch.cells import CellGraph, compile_cell
from rnnsearch.cells.params import parameter_count, width_for_budget


def width_for(graph: CellGraph, param_budget: int, layers: int, vocab_size: int) -> int:
    """The width n at which the whole model fits the parameter budget."""
    # embedding V*n, softmax n*V + V
    return width_for_budget(graph, max(1, param_budget - vocab_size), layers, extra_per_unit=2 * vocab_size)


def model_parameter_count(graph: CellGraph, n: int, layers: int, vocab_size: int) -> int:
    return layers * parameter_count(graph, n) + 2 * vocab_size * n + vocab_size


class CellModel(nn.Module):
    def __init__(
        self,
        graph: CellGraph,
        hidden_size: int,
        layers: int,
        vocab_size: int,
        name: str = "Cell",
        compile: bool = False,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.layers = nn.ModuleList(compile_cell(graph, hidden_size, name=name, compile=compile) for _ in range(layers))
        self.softmax = nn.Linear(hidden_size, vocab_size)

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
        return self.softmax(y), new_state


def detach_state(state):
    return [tuple(t.detach() for t in s) for s in state]
