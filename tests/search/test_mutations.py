import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnsearch.cells import canonical_hash, compile_cell, zoo
from rnnsearch.search.mutations import OPERATORS, mutate

CHAIN = 10


@pytest.mark.parametrize("name", zoo.names())
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_chained_mutations_give_valid_cells_that_compile_and_run(name, seed):
    # 21 zoo cells x 12 examples x 10 links: thousands of mutations per run
    rng = np.random.default_rng(seed)
    graph = zoo.get(name)
    for _ in range(CHAIN):
        before = graph.to_json()
        child, applied = mutate(graph, rng)
        assert graph.to_json() == before  # pure: the parent is untouched
        assert applied and all(op[0] in OPERATORS for op in applied)
        assert child.states == graph.states
        assert set(child.inputs) <= set(child.g.nodes) and set(child.outputs) <= set(child.g.nodes)
        assert canonical_hash(child) != canonical_hash(graph)
        child.validate()
        layer = compile_cell(child, 4)
        out, state = layer(torch.randn(3, 2, 4))
        assert out.shape == (3, 2, 4) and len(state) == len(child.states)
        graph = child


def test_same_generator_same_mutation():
    a = mutate(zoo.get("LSTM"), np.random.default_rng(11))
    b = mutate(zoo.get("LSTM"), np.random.default_rng(11))
    assert a[0].to_json() == b[0].to_json() and a[1] == b[1]


def test_every_operator_is_used():
    rng = np.random.default_rng(0)
    seen = set()
    for name in ("LSTM", "GRU", "MUT1", "RHN"):
        for _ in range(60):
            _, applied = mutate(zoo.get(name), rng)
            seen |= {op[0] for op in applied}
    assert seen == set(OPERATORS)


def test_activation_replacements_include_linear_with_identity_gain():
    rng = np.random.default_rng(3)
    gains = set()
    for _ in range(300):
        child, applied = mutate(zoo.get("Tanh"), rng)
        for op in applied:
            if op[0] in ("replace_activation", "insert_activation") and str(op[2]).startswith("Linear("):
                gains.add(op[2])
    assert gains == {"Linear(0)", "Linear(1)", "Linear(0.9)", "Linear(1.1)"}
