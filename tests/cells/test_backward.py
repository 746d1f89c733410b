"""The backward generated from the graph equals autograd's, for every zoo cell and for
random graphs, in the single and the member-batched form (float64)."""

import pytest
import torch

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell, compile_members

from .gradients import outputs_and_gradients
from .randgraph import random_graph

N, B, T, K = 5, 3, 6, 3


def _layer(graph, members: bool, compile: bool = False, dtype=torch.float64):
    torch.manual_seed(0)
    if members:
        layer = compile_members(graph, N, K, name="C", dtype=dtype, compile=compile)
    else:
        layer = compile_cell(graph, N, name="C", dtype=dtype, compile=compile)
    with torch.no_grad():
        for p in layer.parameters():  # biases and diagonals away from their inits
            p.uniform_(-0.7, 0.7)
    return layer


def _inputs(layer, members: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    lead = (K,) if members else ()
    x = torch.randn(*lead, T, B, N, dtype=dtype, generator=g)
    states = tuple(torch.randn(*lead, B, N, dtype=dtype, generator=g) * 0.5 for _ in layer.cell.states)
    return x, states


def _run(layer, x, states, generated: bool):
    layer.generated_backward = generated
    return outputs_and_gradients(layer, x, states)


def _assert_same(graph, members: bool) -> bool:
    layer = _layer(graph, members)
    x, states = _inputs(layer, members)
    ref = _run(layer, x, states, generated=False)
    if not all(torch.isfinite(t).all() for t in ref):
        return False  # a cell that overflows on these inputs says nothing about the backward
    got = _run(layer, x, states, generated=True)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    return True


@pytest.mark.parametrize("members", [False, True], ids=["single", "members"])
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_generated_backward_equals_autograd(name, members):
    assert _assert_same(zoo.get(name), members)


@pytest.mark.parametrize("members", [False, True], ids=["single", "members"])
def test_random_graphs_generated_backward_equals_autograd(members):
    checked = sum(_assert_same(random_graph(seed), members) for seed in range(60))
    assert checked >= 50  # nearly all random cells stay finite on these inputs


def test_weight_gradient_is_one_matmul_over_all_steps():
    """Autograd makes one weight-gradient matmul per step; the generated backward one in all."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm):
                self.count += 1
            return func(*args, **(kwargs or {}))

    layer = compile_cell(zoo.get("LSTM"), N, name="LSTM")
    x = torch.randn(T, B, N, requires_grad=True)
    out, _ = layer(x)
    with Count() as backward:
        out.sum().backward()
    # per step: dh = dA @ W_h; then once: dW_h, and for x: dW_x and dx
    assert backward.count == T + 1 + 2


def test_compiled_step_and_backward_match_eager():
    graph = zoo.get("MUT1")
    eager = _layer(graph, False, dtype=torch.float32)
    compiled = _layer(graph, False, compile=True, dtype=torch.float32)
    compiled.load_state_dict(eager.state_dict())
    x, states = _inputs(eager, False, dtype=torch.float32)
    for a, b in zip(_run(compiled, x, states, True), _run(eager, x, states, True), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_no_grad_forward_saves_nothing():
    layer = _layer(zoo.get("GRU"), False)
    x, states = _inputs(layer, False)
    with torch.no_grad():
        out, _ = layer(x, states)
    assert out.grad_fn is None
    torch.testing.assert_close(out, _run(layer, x, states, True)[0])


def _twice_loss(layer, x, states):
    out, final = layer(x, states)
    return (out * out).sum() + sum(s.sum() for s in final)


@pytest.mark.parametrize("mode", ["eager", "native"])
@pytest.mark.parametrize("members", [False, True])
def test_backward_twice_behaves_as_torch_modules_do(mode, members):
    """With retain_graph=True a second backward gives the same gradients again (they add
    up, as nn.LSTM's do); without it, torch's usual error, not a crash inside the layer."""
    torch.manual_seed(0)
    if members:
        layer = compile_members(zoo.get("LSTM"), 6, 2, compile=mode)
        x, states = torch.randn(2, 5, 3, 6), (torch.randn(2, 3, 6), torch.randn(2, 3, 6))
    else:
        layer = compile_cell(zoo.get("LSTM"), 6, compile=mode)
        x, states = torch.randn(5, 3, 6), (torch.randn(3, 6), torch.randn(3, 6))
    twin = torch.nn.LSTM(6, 6)  # what torch's own module does, side by side
    tx = torch.randn(5, 3, 6)
    for module, loss in ((layer, _twice_loss(layer, x, states)), (twin, twin(tx)[0].sum())):
        loss.backward(retain_graph=True)
        once = [p.grad.clone() for p in module.parameters()]
        loss.backward()
        for p, g in zip(module.parameters(), once, strict=True):
            torch.testing.assert_close(p.grad, 2 * g)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()
