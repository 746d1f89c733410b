"""The graph loader takes anything: every input is a valid graph or a CellGraphError."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnsearch.cells import CellGraph, CellGraphError, compile_cell, zoo
from rnnsearch.cells.export import export_source
from rnnsearch.cells.ops import OPS as TABLE

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=30,
)
NAMES = st.sampled_from(["x", "h", "c", "h_next", "a", "b", "n1", "__import__('os')", '\'\n"""', ""])
OPS = st.sampled_from([*TABLE, "exec", 7])
NODE = st.fixed_dictionaries(
    {"id": NAMES | st.text(max_size=8), "op": OPS, "inputs": st.lists(NAMES, max_size=3)},
    optional={
        "attrs": st.dictionaries(
            st.sampled_from(["value", "bias_init", "init", "gain", "bound", "evil"]), JSONISH, max_size=3
        )
    },
)
GRAPHISH = st.fixed_dictionaries(
    {
        "schema": st.sampled_from([1, 1, 1, 2, "1", None]),
        "nodes": st.lists(NODE, max_size=8),
        "outputs": st.dictionaries(NAMES, NAMES, max_size=3),
    },
    optional={"states": st.lists(NAMES, max_size=3)},
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(data) -> CellGraph | None:
    try:
        return CellGraph.from_dict(data)
    except CellGraphError as e:
        assert str(e)  # a message that says what is wrong
        return None


@FUZZ
@given(JSONISH)
def test_any_json_value(data):
    _load(data)


@FUZZ
@given(GRAPHISH)
def test_graph_shaped_json(data):
    g = _load(data)
    if g is not None:  # what loads, compiles and runs, and its source carries nothing from the file
        src = export_source(g)
        assert "__import__" not in src and "evil" not in src
        import torch

        compile_cell(g, 3)(torch.zeros(2, 1, 3))


@FUZZ
@given(st.sampled_from(zoo.names()), st.integers(0, 2**32 - 1))
def test_truncated_and_corrupted_real_files(name, seed):
    text = zoo.get(name).to_json().encode()
    rng = np.random.default_rng(seed)
    for _ in range(4):
        data = bytearray(text[: int(rng.integers(0, len(text) + 1))] if rng.random() < 0.3 else text)
        for _ in range(int(rng.integers(1, 6))):
            if data:
                data[int(rng.integers(len(data)))] = int(rng.integers(32, 127))
        try:
            CellGraph.from_json(bytes(data))
        except CellGraphError:
            pass


def test_bounded_inputs_are_refused_quickly():
    deep = "[" * 100_000 + "]" * 100_000
    for text in (
        deep,
        json.dumps(
            {"schema": 1, "nodes": [{"id": f"n{i}", "op": "tanh", "inputs": ["x"]} for i in range(5000)], "outputs": {}}
        ),
    ):
        try:
            CellGraph.from_json(text)
            raise AssertionError("accepted")
        except CellGraphError:
            pass
