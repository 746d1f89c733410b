"""Functional equivalence checking (cells/fingerprint.py): what it merges, what it keeps
apart, determinism, and the index."""

import itertools
import json

import numpy as np
import pytest
import torch

from rnnsearch.cells import CellGraph, canonical_hash, zoo
from rnnsearch.cells.fingerprint import ATOL, RTOL, FunctionIndex, fingerprint, matches


def _wrap(base: CellGraph, node: str, build) -> CellGraph:
    """``base`` with ``node``'s readers reading ``build(g, node)`` instead: one internal node
    wrapped, every other node keeping its name (as a mutation does)."""
    g = base.copy()
    readers = list(g.g.out_edges(node, data="slot", keys=True))
    new = build(g, node)
    for u, v, key, slot in readers:
        g.g.remove_edge(u, v, key=key)
        g.g.add_edge(new, v, slot=slot)
    return g.validate()


def _const(g: CellGraph, value: float) -> str:
    return g.add("const", value=value)


def _with_op(base: CellGraph, node: str, op: str) -> CellGraph:
    g = base.copy()
    g.g.nodes[node]["op"] = op
    return g.validate()


def _gru_output(combine) -> CellGraph:
    """The GRU with h' = combine(g, zn, zh) in place of h' = zn + zh."""
    g = zoo.gru()
    g.g.remove_node("h2")
    g.set_output("h", combine(g, "zn", "zh"))
    return g.validate()


GRU, LSTM, TANH = zoo.gru(), zoo.lstm(), zoo.tanh_rnn()

# Pairs that compute the same function but that the canonical form (which drops identities,
# sorts commuting operands and folds 1*v, v+0, v-0, v/1, 0*v, v-v: cells/fold.py) leaves
# apart: FEC is what finds them.
EQUAL = {
    "relu(relu(v)) ~ relu(v)": (
        _wrap(GRU, "n", lambda g, v: g.add("relu", g.add("relu", v))),
        _wrap(GRU, "n", lambda g, v: g.add("relu", v)),
    ),
    "relu(σ(v)) ~ σ(v)": (_wrap(GRU, "z", lambda g, v: g.add("relu", v)), GRU),
    "max(v, v) ~ v": (_wrap(GRU, "n", lambda g, v: g.add("max", v, v)), GRU),
    "v + v ~ 2 * v": (
        _wrap(GRU, "n", lambda g, v: g.add("add", v, v)),
        _wrap(GRU, "n", lambda g, v: g.add("mul", _const(g, 2.0), v)),
    ),
    "a - (0 - b) ~ a + b": (_gru_output(lambda g, a, b: g.add("sub", a, g.add("sub", _const(g, 0.0), b))), GRU),
    "0 - (0 - v) ~ v": (
        _wrap(GRU, "n", lambda g, v: g.add("sub", _const(g, 0.0), g.add("sub", _const(g, 0.0), v))),
        GRU,
    ),
    "(a * b) * c ~ a * (b * c)": (
        _wrap(LSTM, "h2", lambda g, v: g.add("mul", g.add("mul", v, "tc"), "o")),
        _wrap(LSTM, "h2", lambda g, v: g.add("mul", v, g.add("mul", "tc", "o"))),
    ),
    "tanh: relu(relu(v)) ~ relu(v)": (
        _wrap(TANH, "hn", lambda g, v: g.add("relu", g.add("relu", v))),
        _wrap(TANH, "hn", lambda g, v: g.add("relu", v)),
    ),
}

# Pairs that differ: one node's op, an operand order, an initialisation, a learned matrix.
DIFFERENT = {
    "tanh ~ σ on one node": (GRU, _with_op(GRU, "n", "sigmoid")),
    "sub(a, b) ~ sub(b, a)": (
        _gru_output(lambda g, a, b: g.add("sub", a, b)),
        _gru_output(lambda g, a, b: g.add("sub", b, a)),
    ),
    "1 - z ~ z - 1": (GRU, _wrap(GRU, "omz", lambda g, v: g.add("sub", "z", "one"))),
    "LSTM ~ LSTM with forget bias 1": (zoo.lstm(), zoo.lstm(forget_bias=1.0)),
    # relu(σ(v)) is σ(v), but relu(tanh(v)) is not tanh(v)
    "relu(tanh(v)) ~ tanh(v)": (_wrap(GRU, "n", lambda g, v: g.add("relu", v)), GRU),
    # a learned matrix that starts at the identity is v at initialisation only: the
    # fingerprint perturbs the initial weights, so it is not merged with v
    "Linear(1, v) ~ v": (_wrap(GRU, "n", lambda g, v: g.add("linear", v, init="identity", gain=1.0)), GRU),
    "Linear(1, v) ~ Linear(1.1, v)": (
        _wrap(GRU, "n", lambda g, v: g.add("linear", v, init="identity", gain=1.0)),
        _wrap(GRU, "n", lambda g, v: g.add("linear", v, init="identity", gain=1.1)),
    ),
}


@pytest.mark.parametrize("pair", EQUAL)
def test_fec_finds_equal_cells_that_the_canonical_form_keeps_apart(pair):
    a, b = EQUAL[pair]
    assert canonical_hash(a) != canonical_hash(b)
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa is not None and fb is not None
    assert matches(fa, fb)
    index = FunctionIndex()
    index.add(7, fb)
    assert index.find(fa) == 7


def test_b_plus_a_through_an_identity_is_already_the_canonical_form():
    # the example, a + b written as b + a through an identity: the canonical form
    # drops identities and sorts commuting operands, so the hash already unifies it (and
    # the fingerprint agrees); FEC is for the pairs above
    swapped = _gru_output(lambda g, a, b: g.add("add", b, g.add("identity", a)))
    assert canonical_hash(swapped) == canonical_hash(GRU)
    assert matches(fingerprint(swapped), fingerprint(GRU))


@pytest.mark.parametrize("node", [n for n in GRU.internal_nodes() if GRU.op(n) != "const"])
def test_a_no_op_wrapped_around_any_node_of_the_gru_is_found(node):
    # max(v, v) is v wherever it is put: the wrapped cell keeps every other node's name, so
    # its parameters are laid out as the GRU's and get the same weights
    wrapped = _wrap(GRU, node, lambda g, v: g.add("max", v, v))
    assert canonical_hash(wrapped) != canonical_hash(GRU)
    assert matches(fingerprint(wrapped), fingerprint(GRU))


@pytest.mark.parametrize("pair", DIFFERENT)
def test_fec_keeps_different_cells_apart(pair):
    a, b = DIFFERENT[pair]
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa is not None and fb is not None
    assert not matches(fa, fb)
    index = FunctionIndex()
    index.add(1, fa)
    assert index.find(fb) is None


def test_every_pair_of_zoo_cells_has_different_fingerprints():
    fps = {name: fingerprint(zoo.get(name)) for name in zoo.names()}
    assert all(fp is not None for fp in fps.values()), [k for k, v in fps.items() if v is None]
    merged = [(a, b) for a, b in itertools.combinations(fps, 2) if matches(fps[a], fps[b])]
    assert merged == []
    index = FunctionIndex()
    for key, name in enumerate(fps):
        assert index.find(fps[name]) is None, name
        index.add(key, fps[name])
    assert len(index) == len(fps)
    for key, name in enumerate(fps):
        assert index.find(fps[name]) == key


def test_the_initial_state_is_not_zero():
    # c carried unchanged, h' = tanh(W x) * c against h' = tanh(W x) * relu(c): with a zero
    # initial state both would output 0 at every step
    def cell(gate) -> CellGraph:
        g = CellGraph(("h", "c"))
        g.set_output("h", g.add("mul", g.add("tanh", g.add("linear", "x", name="w")), gate(g)))
        g.set_output("c", "c")
        return g.validate()

    a, b = cell(lambda g: "c"), cell(lambda g: g.add("relu", "c"))
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa is not None and fb is not None
    assert any(v != 0.0 for v in fa)
    assert not matches(fa, fb)


def test_fingerprint_shape_and_rounding():
    fp = fingerprint(LSTM, n=4, steps=3, batch=2)
    assert isinstance(fp, tuple) and len(fp) == 3 * 2 * 4 + 2 * 2 * 4  # h per step, then h and c
    assert all(isinstance(v, float) for v in fp)
    assert all(float(f"{v:.6g}") == v for v in fp)
    assert tuple(json.loads(json.dumps(fp))) == fp  # stored as JSON, read back the same
    # h at the last step is the final h
    assert fp[2 * 2 * 4 : 3 * 2 * 4] == fp[3 * 2 * 4 : 4 * 2 * 4]


def test_fingerprint_is_deterministic_and_leaves_the_global_rng_and_threads_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = fingerprint(GRU)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    assert fingerprint(GRU) == first
    assert fingerprint(GRU.copy()) == first
    assert fingerprint(GRU, seed=1) != first


def test_a_non_finite_cell_has_no_fingerprint_and_is_never_merged():
    g = CellGraph(("h",))
    g.set_output("h", g.add("exp", g.add("exp", g.add("exp", g.add("add", "x", "h")))))
    g.validate()
    assert fingerprint(g) is None
    index = FunctionIndex()
    index.add(1, None)
    assert len(index) == 0
    assert index.find(None) is None
    index.add(2, (1.0, float("nan")))
    index.add(3, (1.0, float("inf")))
    assert len(index) == 0
    assert index.find((1.0, float("nan"))) is None


def test_function_index_find_and_add():
    rng = np.random.default_rng(0)
    rows = [tuple(rng.standard_normal(24).tolist()) for _ in range(40)]
    index = FunctionIndex()
    assert len(index) == 0 and index.find(rows[0]) is None
    for key, row in enumerate(rows):
        index.add(100 + key, row)
    assert len(index) == 40
    assert [index.find(row) for row in rows] == [100 + k for k in range(40)]
    index.add(999, rows[5])  # a second cell with the same function: the first key stays
    assert index.find(rows[5]) == 105
    assert len(index) == 41
    assert index.find(rows[5][:-1]) is None  # another length never matches
    assert index.find(rows[5] + (0.0,)) is None
    index.add(7, rows[5][:-1])  # lengths are kept apart
    assert index.find(rows[5][:-1]) == 7
    assert index.find(tuple(rng.standard_normal(24).tolist())) is None


def test_function_index_tolerance():
    base = (1.0, -2.0, 300.0, 0.0, 1e-3)
    index = FunctionIndex()
    index.add(1, base)

    def scaled(f):
        return tuple(v * f for v in base)

    assert index.find(scaled(1 + 0.5 * RTOL)) == 1
    assert index.find(scaled(1 - 0.5 * RTOL)) == 1
    assert index.find(scaled(1 + 3 * RTOL)) is None
    # one value off is enough
    assert index.find(base[:2] + (300.0 * (1 + 3 * RTOL),) + base[3:]) is None
    # near zero, atol decides
    assert index.find(base[:3] + (0.5 * ATOL,) + base[4:]) == 1
    assert index.find(base[:3] + (5 * ATOL,) + base[4:]) is None
    assert matches(base, scaled(1 + 0.5 * RTOL)) and not matches(base, scaled(1 + 3 * RTOL))
    assert not matches(base, base[:-1])


def test_function_index_grows_past_its_first_block():
    index = FunctionIndex()
    for key in range(100):
        index.add(key, (float(key), 1.0, 2.0))
    assert len(index) == 100
    assert index.find((63.0, 1.0, 2.0)) == 63
    assert index.find((63.5, 1.0, 2.0)) is None
