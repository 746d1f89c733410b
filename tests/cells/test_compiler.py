import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell

from .reference import REFERENCES, Params

N, B, T = 6, 3, 7


def _layer(name: str, n: int = N, compile: str = "eager", dtype=torch.float64):
    torch.manual_seed(0)
    layer = compile_cell(zoo.get(name), n, name=name, dtype=dtype, compile=compile)
    with torch.no_grad():
        for p in layer.parameters():  # biases and diagonals away from their inits
            p.uniform_(-0.6, 0.6)
    return layer


def _inputs(k: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, N, dtype=torch.float64, generator=g).to(dtype)
    s = tuple((torch.randn(B, N, dtype=torch.float64, generator=g) * 0.5).to(dtype) for _ in range(k))
    return x, s


# the Python step in float64; the native C loop in float32, the dtype it runs
LOOPS = pytest.mark.parametrize(
    "compile,dtype", [("eager", torch.float64), ("native", torch.float32)], ids=["python-f64", "native-f32"]
)


@LOOPS
def test_lstm_equals_torch_lstm_outputs_and_gradients(compile, dtype):
    layer = _layer("LSTM", compile=compile, dtype=dtype)
    ref = torch.nn.LSTM(N, N, dtype=dtype)
    P = Params(layer)
    # torch's gate order is (input, forget, cell, output); the paper's i is torch's g.
    rows = {"Wj": 0, "Wf": 1, "Wi": 2, "Wo": 3}
    with torch.no_grad():
        for node, r in rows.items():
            P.W(node, 0).copy_(ref.weight_ih_l0[r * N : (r + 1) * N])
            P.W(node, 1).copy_(ref.weight_hh_l0[r * N : (r + 1) * N])
            P.b(node).copy_(ref.bias_ih_l0[r * N : (r + 1) * N] + ref.bias_hh_l0[r * N : (r + 1) * N])
    x, (h0, c0) = _inputs(2, dtype)
    out, (h, c) = layer(x, (h0, c0))
    rout, (rh, rc) = ref(x, (h0[None], c0[None]))
    torch.testing.assert_close(out, rout, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, rc[0], atol=1e-5, rtol=0)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (rout * w).sum().backward()
    for node, r in rows.items():
        torch.testing.assert_close(_grad(layer, node, 0), ref.weight_ih_l0.grad[r * N : (r + 1) * N], atol=1e-5, rtol=0)
        torch.testing.assert_close(_grad(layer, node, 1), ref.weight_hh_l0.grad[r * N : (r + 1) * N], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            layer.cell.bias.grad[layer.layout.bias[node]], ref.bias_ih_l0.grad[r * N : (r + 1) * N], atol=1e-5, rtol=0
        )


@LOOPS
def test_gru_equals_torch_gru_outputs_and_gradients(compile, dtype):
    layer = _layer("GRU", compile=compile, dtype=dtype)
    ref = torch.nn.GRU(N, N, dtype=dtype)
    P = Params(layer)
    ih = {("Wr", 0): 0, ("Wz", 0): 1, ("Wxn", 0): 2}
    hh = {("Wr", 1): 0, ("Wz", 1): 1, ("Whn", 0): 2}
    with torch.no_grad():
        for (node, slot), r in ih.items():
            P.W(node, slot).copy_(ref.weight_ih_l0[r * N : (r + 1) * N])
        for (node, slot), r in hh.items():
            P.W(node, slot).copy_(ref.weight_hh_l0[r * N : (r + 1) * N])
        bi, bh = ref.bias_ih_l0.view(3, N), ref.bias_hh_l0.view(3, N)
        P.b("Wr").copy_(bi[0] + bh[0])
        P.b("Wz").copy_(bi[1] + bh[1])
        P.b("Wxn").copy_(bi[2])
        P.b("Whn").copy_(bh[2])
    x, (h0,) = _inputs(1, dtype)
    out, (h,) = layer(x, (h0,))
    rout, rh = ref(x, h0[None])
    torch.testing.assert_close(out, rout, atol=1e-5, rtol=0)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (rout * w).sum().backward()
    for (node, slot), r in ih.items():
        torch.testing.assert_close(
            _grad(layer, node, slot), ref.weight_ih_l0.grad[r * N : (r + 1) * N], atol=1e-5, rtol=0
        )
    for (node, slot), r in hh.items():
        torch.testing.assert_close(
            _grad(layer, node, slot), ref.weight_hh_l0.grad[r * N : (r + 1) * N], atol=1e-5, rtol=0
        )
    g = layer.cell.bias.grad
    torch.testing.assert_close(g[layer.layout.bias["Whn"]], ref.bias_hh_l0.grad[2 * N :], atol=1e-5, rtol=0)
    torch.testing.assert_close(g[layer.layout.bias["Wxn"]], ref.bias_ih_l0.grad[2 * N :], atol=1e-5, rtol=0)


def _grad(layer, node, slot):
    pname, r = layer.layout.terms[(node, slot)]
    return getattr(layer.cell, pname).grad[r * N : (r + 1) * N]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_zoo_cell_equals_its_published_equations(name):
    layer = _layer(name)
    k = len(layer.cell.states)
    x, s = _inputs(k)
    out, final = layer(x, s)
    P = Params(layer)
    state = s
    for t in range(T):
        state = REFERENCES[name](P, x[t], state)
        torch.testing.assert_close(out[t], state[0], atol=1e-6, rtol=0)
    for a, b in zip(final, state, strict=True):
        torch.testing.assert_close(a, b if torch.is_tensor(b) else torch.full_like(a, b), atol=1e-6, rtol=0)


def test_every_zoo_cell_has_a_reference_or_torch_twin():
    covered = set(REFERENCES) | {"GRU"}
    assert set(zoo.names()) <= covered


class _CountMatmuls(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in ("mm", "addmm", "bmm", "baddbmm", "matmul"):
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", zoo.names())
def test_one_matmul_per_source_before_and_inside_the_loop(name):
    graph = zoo.get(name)
    layer = compile_cell(graph, N, name=name)
    seq_sources, loop_sources = set(), set()
    for node in graph.g:
        if graph.op(node) != "linear":
            continue
        for u in graph.operands(node):
            depends_on_state = u in graph.states or any(
                s in graph.g.nodes and u in _descendants(graph, s) for s in graph.states
            )
            (loop_sources if depends_on_state else seq_sources).add(u)
    x = torch.randn(T, B, N)
    state = layer.cell.initial_state(B)
    with _CountMatmuls() as pre:
        blocks, params = layer.cell.prepare(x)
    with _CountMatmuls() as one_step:
        layer.cell.step(*[b[0] for b in blocks], *state, *params)
    # x-only terms: one multiply per x-only source for the whole sequence, not per step;
    # inside the loop: one multiply per source node, however many linear nodes read it.
    assert pre.count == len(seq_sources)
    assert one_step.count == len(loop_sources)


def _descendants(graph, node):
    import networkx as nx

    return nx.descendants(graph.g, node)


def test_lstm_step_is_one_matmul_and_sequence_input_one():
    layer = compile_cell(zoo.get("LSTM"), N, name="LSTM")
    x = torch.randn(T, B, N)
    with _CountMatmuls() as whole:
        layer(x)
    assert whole.count == 1 + T  # W_x for all of x at once, then W_h once per step


def test_compiled_step_matches_eager():
    torch.manual_seed(0)
    eager = compile_cell(zoo.get("MUT1"), N, name="MUT1")
    compiled = compile_cell(zoo.get("MUT1"), N, name="MUT1", compile=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(T, B, N)
    torch.testing.assert_close(compiled(x)[0], eager(x)[0], atol=1e-5, rtol=1e-5)


def test_seeded_reset_is_reproducible_and_honours_attributes():
    a = compile_cell(zoo.get("LSTM-b"), N, name="LSTM-b")
    b = compile_cell(zoo.get("LSTM-b"), N, name="LSTM-b")
    a.cell.reset_parameters(0.7, torch.Generator().manual_seed(3))
    b.cell.reset_parameters(0.7, torch.Generator().manual_seed(3))
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert torch.all(a.cell.bias[a.layout.bias["Wf"]] == 1.0)
    assert torch.all(a.cell.bias[a.layout.bias["Wi"]] == 0.0)
    assert a.cell.weight_x.abs().max() <= 0.7 / N**0.5
    rhn = compile_cell(zoo.get("RHN"), N, name="RHN")
    assert torch.all(rhn.cell.bias[rhn.layout.bias["WT1"]] == -2.0)
    ind = compile_cell(zoo.get("IndRNN"), N, name="IndRNN")
    assert 0 <= ind.cell.diag.min() and ind.cell.diag.max() <= 1


def test_identity_init_linear_starts_at_gain_times_identity():
    from rnnsearch.cells.graph import CellGraph

    g = CellGraph(("h",))
    a = g.add("linear", "h", name="lin", init="identity", gain=0.9)
    g.set_output("h", g.add("tanh", g.add("add", "x", a)))
    layer = compile_cell(g, N)
    P = Params(layer)
    torch.testing.assert_close(P.W("lin", 0), 0.9 * torch.eye(N))


def test_cell_forward_is_one_step_of_the_layer():
    layer = _layer("GRU")
    x, s = _inputs(1)
    h, state = layer.cell(x[0], s)
    out, _ = layer(x[:1], s)
    torch.testing.assert_close(h, out[0])
