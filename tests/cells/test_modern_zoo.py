"""The modern zoo (minGRU, minLSTM, SRU, sLSTM, QRNN) and Greff's FGR against independent
float64 references written from the published equations (tests/cells/reference.py):
outputs, final states and the gradients w.r.t. the input, the initial states and every
parameter (the compiled layer's backward vs autograd through the reference)."""

import pytest
import torch

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.cells.params import parameter_count

from .reference import REFERENCES, Params, slstm
from .test_compiler import _layer as compiled_layer

N, B, T = 8, 3, 7
MODERN = ("minGRU", "minLSTM", "SRU", "sLSTM", "QRNN-f", "QRNN-fo")
STATES = {
    "minGRU": ("h",),
    "minLSTM": ("h",),
    "SRU": ("h", "c"),
    "sLSTM": ("h", "c", "n", "m"),
    "QRNN-f": ("h",),
    "QRNN-fo": ("h", "c"),
}


def _layer(name: str, compile: str = "eager", dtype=torch.float64):
    return compiled_layer(name, N, compile, dtype)


def _inputs(name: str, start: str, steps: int = T):
    """x [steps, B, N] and the initial states: all zero, or random (for the sLSTM a
    positive normaliser n, as the cell keeps it from the zero state on)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(steps, B, N, dtype=torch.float64, generator=g)
    states = []
    for s in STATES.get(name, zoo.get(name).states):
        if start == "zero":
            states.append(torch.zeros(B, N, dtype=torch.float64))
        elif name == "sLSTM" and s == "n":
            states.append(0.5 + torch.rand(B, N, dtype=torch.float64, generator=g))
        else:
            states.append(torch.randn(B, N, dtype=torch.float64, generator=g) * 0.5)
    return x, tuple(states)


def _reference(name: str, layer, step=None):
    """The layer's forward as the reference computes it, step by step."""
    P = Params(layer)
    step = step or REFERENCES[name]

    def forward(x, states):
        outs, state = [], states
        for t in range(x.shape[0]):
            state = step(P, x[t], state)
            outs.append(state[0])
        return torch.stack(outs), tuple(state)

    return forward


def _outputs_and_gradients(forward, layer, x, states):
    """[outputs, final states..., d/dx, d/d initial states..., d/d parameters...] of one
    loss reading the outputs and the final states."""
    x = x.clone().requires_grad_(True)
    states = tuple(s.clone().requires_grad_(True) for s in states)
    out, final = forward(x, states)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * weights).sum() + sum((s * 0.3).sum() for s in final)
    wrt = [x, *states, *layer.parameters()]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(t) if d is None else d for d, t in zip(grads, wrt, strict=True)]
    return [out.detach(), *[s.detach() for s in final], *grads]


def _labels(layer) -> list[str]:
    states = list(layer.cell.states)
    return ["outputs", *[f"final {s}" for s in states], "d x", *[f"d {s}0" for s in states]] + [
        f"d {p}" for p, _ in layer.named_parameters()
    ]


def _assert_matches(layer, name, x, states, step=None, atol=1e-6, rtol=0.0):
    got = _outputs_and_gradients(layer, layer, x, states)
    want = _outputs_and_gradients(_reference(name, layer, step), layer, x, states)
    for label, a, b in zip(_labels(layer), got, want, strict=True):
        assert torch.isfinite(a).all(), label
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, label=label: f"{label}: {m}")
    return got


# -- the graphs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODERN)
def test_modern_cell_builds_validates_and_is_not_degenerate(name):
    graph = zoo.get(name)
    assert name in zoo.names()
    assert graph.states == STATES[name]
    assert graph.validate() is graph
    assert degeneracy(graph) is None
    assert zoo.lookup_name(graph) == name


@pytest.mark.parametrize("name", MODERN)
def test_describe_gives_the_builders_docstring(name):
    doc = zoo.describe(name)
    assert doc and doc == zoo.ZOO[name].__doc__
    assert "h' =" in doc


def test_modern_parameter_counts():
    n = N
    counts = {name: parameter_count(zoo.get(name), n) for name in MODERN}
    assert counts == {
        "minGRU": 2 * (n * n + n),
        "minLSTM": 3 * (n * n + n),
        "SRU": 3 * (n * n + n) + 2 * n,
        "sLSTM": 4 * (2 * n * n + n),
        "QRNN-f": 2 * (n * n + n),
        "QRNN-fo": 3 * (n * n + n),
    }
    assert counts["sLSTM"] == parameter_count(zoo.get("LSTM"), n)


# -- FGR ----------------------------------------------------------------------------------
def _terms_by_source(name: str) -> dict[str, list[tuple[str, int]]]:
    """The n x n terms of the compiled layer, keyed by the state (or x) each one reads."""
    graph = zoo.get(name)
    layer = compile_cell(graph, N, name=name)
    out: dict[str, list[tuple[str, int]]] = {}
    for node, slot in layer.layout.terms:
        out.setdefault(graph.operands(node)[slot], []).append((node, slot))
    return out


def test_fgr_adds_exactly_greffs_nine_gate_to_gate_matrices():
    fgr, peep = _terms_by_source("FGR"), _terms_by_source("PeepholeLSTM")
    recurrent = ("h", "c", "gi", "gf", "go")
    n_fgr = sum(len(v) for s, v in fgr.items() if s in recurrent)
    n_peep = sum(len(v) for s, v in peep.items() if s in recurrent)
    assert n_fgr - n_peep == 9
    from_gates = [t for s in ("gi", "gf", "go") for t in fgr.get(s, [])]
    assert len(from_gates) == 9
    # each gate reads each previous gate once; the block input z reads none of them
    assert sorted(node for node, _ in from_gates) == sorted(["Wi", "Wf", "Wo"] * 3)
    assert zoo.get("FGR").operands("Wz") == ["x", "h"]
    assert parameter_count(zoo.get("FGR"), N) - parameter_count(zoo.get("PeepholeLSTM"), N) == 9 * N * N


@pytest.mark.parametrize("start", ["zero", "random"])
def test_fgr_equals_greffs_equations(start):
    layer = _layer("FGR")
    x, states = _inputs("FGR", start)
    _assert_matches(layer, "FGR", x, states)


# -- each modern cell against its published equations ------------------------------------
@pytest.mark.parametrize("start", ["zero", "random"])
@pytest.mark.parametrize("name", MODERN)
def test_modern_cell_equals_its_published_equations(name, start):
    layer = _layer(name)
    x, states = _inputs(name, start)
    _assert_matches(layer, name, x, states)


# -- the sLSTM's stabiliser ---------------------------------------------------------------
LONG = 24  # steps: the sum of f̃ ~ 50 over them is far past float64's exp range (709)


def _large_preactivations(layer) -> None:
    """ĩ and f̃ around 50 (± ~10): biases at 50, their weights scaled up."""
    P = Params(layer)
    with torch.no_grad():
        for node in ("Wi", "Wf"):
            for slot in (0, 1):
                P.W(node, slot).mul_(10.0)
            P.b(node).add_(50.0)


@pytest.mark.parametrize("start", ["zero", "random"])
def test_slstm_stabiliser_keeps_large_gates_finite_and_exact(start):
    layer = _layer("sLSTM")
    _large_preactivations(layer)
    x, states = _inputs("sLSTM", start, steps=LONG)
    with torch.no_grad():
        P = Params(layer)
        pre_i = x[0] @ P.W("Wi", 0).T + states[0] @ P.W("Wi", 1).T + P.b("Wi")
        assert 30 < pre_i.mean() < 70  # the regime the test is about
        if start == "zero":  # the same cell without the stabiliser overflows
            naive = _reference("sLSTM", layer, lambda P, x, s: slstm(P, x, s, stabilised=False))
            assert not torch.isfinite(naive(x, states)[0]).all()
    got = _assert_matches(layer, "sLSTM", x, states, atol=1e-6, rtol=1e-6)
    h, _c, n, m = got[1:5]
    assert torch.isfinite(h).all() and (h.abs() <= 1e6).all()
    assert (m > 100).all()  # the stabiliser took the scale


@pytest.mark.parametrize("compile", ["eager", "native"])
def test_slstm_stabiliser_in_float32(compile):
    """In float32 exp overflows past 88: the stabilised cell (the Python step, and the C
    loop) still matches the float64 reference, outputs, states and gradients."""
    ref = _layer("sLSTM")
    _large_preactivations(ref)
    layer = compile_cell(zoo.get("sLSTM"), N, name="sLSTM", dtype=torch.float32, compile=compile)
    layer.load_state_dict(ref.state_dict())
    if compile == "native":
        from rnnsearch.cells.native import NativeLoop

        assert isinstance(layer.loop, NativeLoop)
    x, states = _inputs("sLSTM", "random", steps=LONG)
    got = _outputs_and_gradients(layer, layer, x.float(), tuple(s.float() for s in states))
    want = _outputs_and_gradients(_reference("sLSTM", ref), ref, x, states)
    for label, a, b in zip(_labels(layer), got, want, strict=True):
        assert torch.isfinite(a).all(), label
        tol = 1e-3 if label.startswith("d ") else 1e-4  # float32 rounding over 24 steps
        torch.testing.assert_close(a.double(), b, atol=tol, rtol=tol, msg=lambda m, label=label: f"{label}: {m}")
