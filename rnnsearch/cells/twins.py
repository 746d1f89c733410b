"""torch's own LSTM and GRU weights in the compiled zoo LSTM and GRU (one layer).

torch.nn.LSTM orders its gates (input, forget, cell, output); the zoo's LSTM calls the
input gate j and the block input i. torch.nn.GRU's rows are (reset, update, new), with the
reset gate multiplying ``W_hn h + b_hn``, as the zoo GRU does.
"""

from __future__ import annotations

import torch
from torch import nn

_LSTM_ROWS = {"Wj": 0, "Wf": 1, "Wi": 2, "Wo": 3}
_GRU_IH = {("Wr", 0): 0, ("Wz", 0): 1, ("Wxn", 0): 2}
_GRU_HH = {("Wr", 1): 0, ("Wz", 1): 1, ("Whn", 0): 2}


def _block(layer: nn.Module, node: str, slot: int) -> torch.Tensor:
    name, row = layer.layout.terms[(node, slot)]
    n = layer.hidden_size
    weight = getattr(layer.cell, name)
    return weight[row * n : (row + 1) * n]


def _bias(layer: nn.Module, node: str) -> torch.Tensor:
    return layer.cell.bias[layer.layout.bias[node]]


@torch.no_grad()
def copy_from_torch(layer: nn.Module, ref: nn.LSTM | nn.GRU) -> None:
    """Set a compiled zoo LSTM or GRU layer's weights to those of torch's one-layer ``ref``."""
    n = layer.hidden_size
    if isinstance(ref, nn.LSTM):
        for node, r in _LSTM_ROWS.items():
            rows = slice(r * n, (r + 1) * n)
            _block(layer, node, 0).copy_(ref.weight_ih_l0[rows])
            _block(layer, node, 1).copy_(ref.weight_hh_l0[rows])
            _bias(layer, node).copy_(ref.bias_ih_l0[rows] + ref.bias_hh_l0[rows])
        return
    if isinstance(ref, nn.GRU):
        for table, weight in ((_GRU_IH, ref.weight_ih_l0), (_GRU_HH, ref.weight_hh_l0)):
            for (node, slot), r in table.items():
                _block(layer, node, slot).copy_(weight[r * n : (r + 1) * n])
        bi, bh = ref.bias_ih_l0.view(3, n), ref.bias_hh_l0.view(3, n)
        _bias(layer, "Wr").copy_(bi[0] + bh[0])
        _bias(layer, "Wz").copy_(bi[1] + bh[1])
        _bias(layer, "Wxn").copy_(bi[2])
        _bias(layer, "Whn").copy_(bh[2])
        return
    raise TypeError(f"copy_from_torch takes torch.nn.LSTM or torch.nn.GRU, not {type(ref).__name__}")
