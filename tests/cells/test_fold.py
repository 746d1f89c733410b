"""Constant folding (cells/fold.py) and degenerate cells (cells/degenerate.py)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnsearch.cells import CellGraph, CellGraphError, canonical_hash, canonicalize, formula, zoo
from rnnsearch.cells.canonical import simplify
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.cells.degenerate import degeneracy, informative_states
from rnnsearch.cells.fold import fold_constants

from .randgraph import random_graph
from .reference import Params


def _rnn(wrap=None) -> CellGraph:
    """h_next = tanh(W[x,h] + b), with ``wrap(g, node) -> node`` around the tanh."""
    g = CellGraph(("h",))
    t = g.add("tanh", g.add("linear", "x", "h", name="a"), name="t")
    g.set_output("h", wrap(g, t) if wrap else t)
    return g


def _const(g, v):
    return g.add("const", value=v)


FOLDS = {
    "1 * v": lambda g, t: g.add("mul", _const(g, 1.0), t),
    "v * 1": lambda g, t: g.add("mul", t, _const(g, 1.0)),
    "v + 0": lambda g, t: g.add("add", t, _const(g, 0.0)),
    "0 + v": lambda g, t: g.add("add", _const(g, 0.0), t),
    "v - 0": lambda g, t: g.add("sub", t, _const(g, 0.0)),
    "v + 0 * h": lambda g, t: g.add("add", t, g.add("mul", _const(g, 0.0), "h")),
    "v * σ(0) * 2": lambda g, t: g.add("mul", t, g.add("mul", g.add("sigmoid", _const(g, 0.0)), _const(g, 2.0))),
    "v * (2 - 1)": lambda g, t: g.add("mul", t, g.add("sub", _const(g, 2.0), _const(g, 1.0))),
    "v + (h - h)": lambda g, t: g.add("add", t, g.add("sub", "h", "h")),
    "v + (tanh(h) - tanh(h))": lambda g, t: g.add("add", t, g.add("sub", g.add("tanh", "h"), g.add("tanh", "h"))),
}


@pytest.mark.parametrize("rule", FOLDS)
def test_trivial_algebra_folds_to_the_plain_cell(rule):
    plain, wrapped = _rnn(), _rnn(FOLDS[rule])
    assert canonical_hash(wrapped) == canonical_hash(plain)
    assert formula(canonicalize(wrapped)) == formula(canonicalize(plain))
    assert formula(canonicalize(wrapped)) in ("h_next = tanh(W[x,h] + b)", "h_next = tanh(W[h,x] + b)")


def test_a_constant_activation_becomes_a_number_in_the_formula():
    g = CellGraph(("h",))
    g.set_output("h", g.add("mul", g.add("tanh", _const(g, 1.0)), g.add("linear", "x", "h")))
    assert formula(canonicalize(g)).startswith("h_next = 0.761594 * (W[")


def test_what_does_not_fold_stays():
    for rule in (
        lambda g, t: g.add("sub", _const(g, 0.0), t),  # 0 - v is -v, not v
        lambda g, t: g.add("mul", t, _const(g, 2.0)),
        lambda g, t: g.add("add", t, g.add("linear", _const(g, 0.0))),  # a learned bias is not 0
    ):
        assert canonical_hash(_rnn(rule)) != canonical_hash(_rnn())


def test_an_output_that_folds_to_a_number_is_an_invalid_cell():
    g = _rnn(lambda g, t: g.add("mul", t, _const(g, 0.0)))
    with pytest.raises(CellGraphError, match="output is constant"):
        canonicalize(g)


def test_zoo_cells_do_not_change_when_folded():
    for name in zoo.names():
        g = zoo.get(name).validate()
        assert not fold_constants(g.copy()), name


def _same_parameters(src, dst) -> None:
    """Copy ``src``'s learned values into ``dst`` by node name (the nodes folding keeps)."""
    P, Q = Params(src), Params(dst)
    with torch.no_grad():
        for p in dst.parameters():
            p.zero_()
        for node, slot in dst.layout.terms:
            Q.W(node, slot).copy_(P.W(node, slot))
        for node in dst.layout.bias:
            Q.b(node).copy_(P.b(node))
        for node in dst.layout.diag:
            Q.u(node).copy_(P.u(node))


def _with_trivial_algebra(graph: CellGraph, seed: int) -> CellGraph:
    """``graph`` with the folding patterns spliced into some of its edges: ``u`` read as
    ``1 * u``, ``u + 0 * h``, ``u - (x - x)``, ... (what it computes is unchanged)."""
    rng = np.random.default_rng(seed)
    g = graph.copy()
    patterns = [*FOLDS.values(), lambda g, u: g.add("add", u, g.add("mul", _const(g, 0.0), "x"))]
    edges = sorted(g.g.edges(keys=True, data="slot"), key=str)
    for k in rng.choice(len(edges), size=min(len(edges), int(rng.integers(1, 4))), replace=False):
        u, v, key, slot = edges[int(k)]
        g.g.remove_edge(u, v, key)
        g.g.add_edge(patterns[int(rng.integers(len(patterns)))](g, u), v, slot=slot)
    return g.validate()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_folding_never_changes_what_the_compiled_cell_computes(seed):
    graph = _with_trivial_algebra(random_graph(seed, with_constants=True), seed)
    folded = graph.copy()
    try:
        changed = simplify(folded)
    except CellGraphError:
        assume(False)  # an output became a number: no cell to compare
    assert changed
    torch.manual_seed(seed % 1000)
    n, T, B = 5, 4, 3
    a = compile_cell(graph, n, dtype=torch.float64)
    b = compile_cell(folded, n, dtype=torch.float64)
    with torch.no_grad():
        for p in a.parameters():
            p.uniform_(-0.7, 0.7)
    _same_parameters(a, b)
    x = torch.randn(T, B, n, dtype=torch.float64)
    s = tuple(torch.randn(B, n, dtype=torch.float64) * 0.5 for _ in graph.states)
    out_a, s_a = a(x, s)
    out_b, s_b = b(x, s)
    # 0 * v folds to 0 on the premise that v is finite: an overflowing cell (exp) says nothing.
    # Folding reorders sums (W[h,x] is W[x,h]); a division near its pole amplifies that
    # last-bit difference, so the tolerance is float64's rounding amplified, far below any
    # value a wrong fold would change.
    assume(all(torch.isfinite(t).all() for t in (out_b, *s_b)))
    torch.testing.assert_close(out_b, out_a, rtol=1e-7, atol=1e-9)
    for u, v in zip(s_b, s_a, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-7, atol=1e-9)


# -- degenerate cells -------------------------------------------------------------------
def test_no_zoo_cell_is_degenerate():
    for name in zoo.names():
        assert degeneracy(zoo.get(name)) is None, name
    for name in ("RHN-1", "RHN-5", "IndRNN-T10"):
        assert degeneracy(zoo.get(name)) is None, name


def _cell(states, build) -> CellGraph:
    g = CellGraph(states)
    for s, node in build(g).items():
        g.set_output(s, node)
    return g


DEGENERATE = {
    # the smoke search's old favourites: no state read at all
    "h = tanh(1) * x": (("h",), lambda g: {"h": g.add("mul", g.add("tanh", _const(g, 1.0)), "x")}, "not recurrent"),
    "h = 1 * x": (("h",), lambda g: {"h": g.add("mul", _const(g, 1.0), "x")}, "not recurrent"),
    "h = tanh(W x)": (("h",), lambda g: {"h": g.add("tanh", g.add("linear", "x"))}, "not recurrent"),
    "h = W x + 0 * h": (
        ("h",),
        lambda g: {"h": g.add("add", g.add("linear", "x"), g.add("mul", _const(g, 0.0), "h"))},
        "not recurrent",
    ),
    # reads a state that never changes: c starts at 0 and stays there
    "h = tanh(W[x,c]), c = c * σ(W x)": (
        ("h", "c"),
        lambda g: {
            "h": g.add("tanh", g.add("linear", "x", "c")),
            "c": g.add("mul", "c", g.add("sigmoid", g.add("linear", "x"))),
        },
        "not recurrent",
    ),
    # input-free
    "h = tanh(W h)": (("h",), lambda g: {"h": g.add("tanh", g.add("linear", "h"))}, "ignores x"),
    "h = h * 2": (("h",), lambda g: {"h": g.add("mul", "h", _const(g, 2.0))}, "ignores x"),
    "h = tanh(W[h,c]), c = W[h,c]": (
        ("h", "c"),
        lambda g: {"h": g.add("tanh", g.add("linear", "h", "c")), "c": g.add("linear", "h", "c")},
        "ignores x",
    ),
    # a state that stays 0: every term of its next value is multiplied by it
    "h = h * σ(W x)": (
        ("h",),
        lambda g: {"h": g.add("mul", "h", g.add("sigmoid", g.add("linear", "x")))},
        "constant output: h_next stays 0",
    ),
    "h = tanh(h * W x + h)": (
        ("h",),
        lambda g: {"h": g.add("tanh", g.add("add", g.add("mul", "h", g.add("linear", "x")), "h"))},
        "constant output: h_next stays 0",
    ),
    # a constant output
    "LSTM-like with c = tanh(c)": (
        ("h", "c"),
        lambda g: {"h": g.add("tanh", g.add("linear", "x", "h", "c")), "c": g.add("tanh", "c")},
        "constant output: c_next",
    ),
}


@pytest.mark.parametrize("name", DEGENERATE)
def test_state_free_input_free_and_constant_cells_are_degenerate(name):
    states, build, reason = DEGENERATE[name]
    why = degeneracy(_cell(states, build))
    assert why is not None and why.startswith(reason), why


def test_a_state_that_carries_x_makes_the_cell_recurrent():
    # h reads x only through c: h_next = tanh(W[h,c]), c_next = W[x,c]
    g = _cell(("h", "c"), lambda g: {"h": g.add("tanh", g.add("linear", "h", "c")), "c": g.add("linear", "x", "c")})
    assert degeneracy(g) is None


def test_informative_states_follow_the_recurrence():
    # c carries x only through h: h_next = tanh(W[x,c]), c_next = h
    g = _cell(("h", "c"), lambda g: {"h": g.add("tanh", g.add("linear", "x", "c")), "c": g.add("identity", "h")})
    assert informative_states(g) == {"h", "c"}
    assert degeneracy(g) is None
