import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnsearch.cells import CellGraph, CellGraphError, canonical_hash, canonicalize, same_cell, zoo
from rnnsearch.cells.canonical import simplify
from rnnsearch.cells.formula import formula

from .randgraph import random_graph, relabelled

SEEDS = st.integers(0, 2**31 - 1)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _simple() -> CellGraph:
    g = CellGraph(("h",))
    a = g.add("linear", "x", "h", name="a")
    g.set_output("h", g.add("tanh", a, name="t"))
    return g


def _folds(g: CellGraph) -> bool:
    try:
        return simplify(g.copy())
    except CellGraphError:
        return True


@pytest.mark.parametrize(
    "mutate, rule",
    [
        (lambda g: g.g.add_edge("t", "a", slot=2), "cycle"),
        (lambda g: g.g.nodes["t"].update(op="softmax"), "unknown op"),
        (lambda g: g.g.add_edge("x", "t", slot=1), "wrong arity"),
        (lambda g: g.g.remove_edge("t", "h_next"), "missing output"),
    ],
)
def test_invalid_graphs_name_the_node_and_the_rule(mutate, rule):
    g = _simple()
    mutate(g)
    with pytest.raises(CellGraphError) as e:
        g.validate()
    assert rule in str(e.value)
    assert e.value.node is not None


def test_output_not_reached_from_inputs_is_an_error():
    g = CellGraph(("h",))
    g.set_output("h", g.add("tanh", g.add("const", value=1.0)))
    with pytest.raises(CellGraphError, match="not reached from the inputs"):
        g.validate()


def test_reading_an_output_or_a_fake_input_is_an_error():
    data = _simple().to_dict()
    data["nodes"].append({"id": "z", "op": "tanh", "inputs": ["h_next"]})
    data["outputs"]["h"] = "z"
    with pytest.raises(CellGraphError, match="reads the output"):
        CellGraph.from_dict(data)
    data = _simple().to_dict()
    data["nodes"][0]["op"] = "input"
    with pytest.raises(CellGraphError, match="unknown op"):
        CellGraph.from_dict(data)


def test_dead_nodes_are_pruned_not_an_error():
    g = _simple()
    g.add("sigmoid", "x", name="dead")
    g.validate()
    assert "dead" not in g.g


def test_json_round_trip_of_every_zoo_cell():
    for name in zoo.names():
        g = zoo.get(name)
        back = CellGraph.from_json(g.to_json())
        assert back.to_dict() == g.to_dict()
        assert canonical_hash(back) == canonical_hash(g)


def test_json_carries_a_schema_version_and_refuses_others():
    data = json.loads(_simple().to_json())
    assert data["schema"] == 1
    data["schema"] = 99
    with pytest.raises(CellGraphError, match="schema"):
        CellGraph.from_dict(data)


def test_formula_reads_like_the_equations():
    assert formula(zoo.get("Tanh")) == "h_next = tanh(W[x,h] + b)"
    assert formula(zoo.get("MUT1")).startswith("g1 = σ(W[x] + b); h_next = ")
    assert "h * (1 - g1)" in formula(zoo.get("MUT1"))
    # a new state used again in the cell is written once, under its own name
    assert formula(zoo.get("LSTM")).endswith("; h_next = σ(W[x,h] + b) * tanh(c_next)")


def test_zoo_cells_all_hash_differently_except_true_twins():
    hashes = {}
    for name in zoo.names():
        hashes.setdefault(canonical_hash(zoo.get(name)), []).append(name)
    twins = [v for v in hashes.values() if len(v) > 1]
    # Greff's NP (no peepholes) is exactly the paper's LSTM.
    assert twins == [["LSTM", "NP"]]


def test_identity_nodes_and_duplicate_parameter_free_nodes_are_no_ops():
    a = _simple()
    b = CellGraph(("h",))
    lin = b.add("linear", "x", "h")
    b.set_output("h", b.add("tanh", b.add("identity", lin)))
    assert canonical_hash(a) == canonical_hash(b)
    c = CellGraph(("h",))
    lin = c.add("linear", "x", "h")
    c.set_output("h", c.add("mul", c.add("tanh", lin), c.add("tanh", lin)))
    d = CellGraph(("h",))
    lin = d.add("linear", "x", "h")
    t = d.add("tanh", lin)
    d.set_output("h", d.add("mul", t, t))
    assert canonical_hash(c) == canonical_hash(d)
    assert len(canonicalize(c)) == len(d)


@FAST
@given(SEEDS, SEEDS)
def test_renaming_nodes_keeps_the_hash(seed, perm_seed):
    g = random_graph(seed)
    h = relabelled(g, perm_seed)
    assert canonical_hash(g) == canonical_hash(h)
    assert same_cell(g, h)


@FAST
@given(SEEDS, SEEDS)
def test_swapping_commuting_operands_keeps_the_hash(seed, pick):
    g = random_graph(seed)
    commuting = [
        n for n in g.internal_nodes() if g.op(n) in ("add", "mul") or (g.op(n) == "linear" and g.g.in_degree(n) > 1)
    ]
    if not commuting:
        return
    node = commuting[pick % len(commuting)]
    h = g.copy()
    edges = list(h.g.in_edges(node, keys=True, data="slot"))
    k = len(edges)
    for u, v, key, slot in edges:
        h.g.edges[u, v, key]["slot"] = (k - 1) - slot
    assert canonical_hash(g) == canonical_hash(h)


@FAST
@given(SEEDS, SEEDS)
def test_changing_an_op_changes_the_hash(seed, pick):
    g = random_graph(seed)
    nodes = [n for n in g.internal_nodes() if g.op(n) in ("tanh", "sigmoid", "relu", "add", "sub", "mul")]
    if not nodes:
        return
    node = nodes[pick % len(nodes)]
    swaps = {"tanh": "sigmoid", "sigmoid": "relu", "relu": "tanh", "add": "mul", "mul": "sub", "sub": "add"}
    h = g.copy()
    h.g.nodes[node]["op"] = swaps[g.op(node)]
    h.validate()
    if _folds(h):
        return  # e.g. x - 0 for x + 0: the same cell once folded (test_fold.py)
    assert not same_cell(g, h)
    assert canonical_hash(g) != canonical_hash(h)


@FAST
@given(SEEDS, SEEDS, SEEDS)
def test_hash_equality_is_isomorphism_for_sub_slots_and_rewiring(seed, pick, src_pick):
    g = random_graph(seed)
    h = g.copy()
    subs = [n for n in g.internal_nodes() if g.op(n) == "sub"]
    if subs and pick % 2:
        node = subs[pick % len(subs)]
        for u, v, key, slot in list(h.g.in_edges(node, keys=True, data="slot")):
            h.g.edges[u, v, key]["slot"] = 1 - slot
    else:
        edges = [e for e in h.g.edges(keys=True) if h.op(e[1]) != "output"]
        if not edges:
            return
        u, v, key = edges[pick % len(edges)]
        import networkx as nx

        allowed = [s for s in h.g.nodes if s != v and h.op(s) != "output" and v not in nx.ancestors(h.g, s)]
        new_src = allowed[src_pick % len(allowed)]
        slot = h.g.edges[u, v, key]["slot"]
        h.g.remove_edge(u, v, key)
        h.g.add_edge(new_src, v, slot=slot)
    try:
        canonicalize(h.validate())
    except CellGraphError:
        return  # invalid, or an output that folds to a number
    # Two graphs hash alike exactly when they are the same cell (isomorphic canonical forms).
    assert (canonical_hash(g) == canonical_hash(h)) == same_cell(g, h)


@FAST
@given(SEEDS)
def test_canonical_form_is_a_fixed_point(seed):
    g = random_graph(seed)
    c = canonicalize(g)
    assert canonicalize(c).to_dict() == c.to_dict()
    assert canonical_hash(c) == canonical_hash(g)


def test_the_readme_explains_every_term_of_the_legend():
    from pathlib import Path

    from rnnsearch.cells.formula import LEGEND

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for term, meaning in LEGEND:
        assert f"| `{term}` | {meaning} |" in readme


def test_formula_names_never_take_a_state_name():
    g = CellGraph(("h", "g1"))
    gate = g.add("sigmoid", g.add("linear", "x", "h", "g1"))
    g.set_output("h", g.add("mul", gate, "h"))
    g.set_output("g1", g.add("add", gate, "g1"))
    text = formula(g)
    assert text.startswith("g2 = σ(W[x,h,g1] + b); ") and "g1_next = g1 + g2" in text


def test_every_public_name_of_the_package_resolves():
    import rnnsearch.cells as cells

    for name in cells.__all__:
        assert callable(getattr(cells, name)), name
    assert cells.formula(zoo.get("Tanh")) == "h_next = tanh(W[x,h] + b)"  # the function, not its module
