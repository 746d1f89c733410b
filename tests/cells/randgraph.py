"""Random valid cell graphs for property tests (seeded)."""

from __future__ import annotations

import numpy as np

from rnnsearch.cells.canonical import canonicalize
from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.cells.ops import drawable

# every op of the op table, the extended set included: a new op is drawn without a change here
_UNARY = ["linear", "diag", *drawable("activation", "extended")]
_BINARY = list(drawable("elementwise", "extended"))


def random_graph(seed: int, max_nodes: int = 14, with_constants: bool = False) -> CellGraph:
    """A valid graph whose canonical form exists; ``with_constants`` draws more constants,
    zeros and ones among them (what folding removes)."""
    rng = np.random.default_rng(seed)
    p_const, values = (0.3, [0.0, 1.0, 0.5, 2.0]) if with_constants else (0.08, [0.5, 1.0, 2.0])
    while True:
        states = ("h", "c") if rng.random() < 0.4 else ("h",)
        g = CellGraph(states)
        pool = list(g.inputs)
        for _ in range(int(rng.integers(2, max_nodes))):
            if rng.random() < 0.45:
                op = str(rng.choice(_BINARY))
                ins = [str(rng.choice(pool)), str(rng.choice(pool))]
            elif rng.random() < p_const:
                op, ins = "const", []
            else:
                op = str(rng.choice(_UNARY))
                k = int(rng.integers(1, 4)) if op == "linear" else 1
                ins = [str(rng.choice(pool)) for _ in range(k)]
            attrs = {"value": float(rng.choice(values))} if op == "const" else {}
            pool.append(g.add(op, *ins, **attrs))
        internal = pool[len(g.inputs) :]
        for s in states:
            g.set_output(s, str(rng.choice(internal)))
        try:
            canonicalize(g.validate())
            return g
        except CellGraphError:
            continue  # e.g. an output that only reads constants, or folds to one: draw again


def relabelled(g: CellGraph, seed: int) -> CellGraph:
    """The same graph with internal nodes renamed at random and nodes inserted in another order."""
    rng = np.random.default_rng(seed)
    internal = g.internal_nodes()
    perm = rng.permutation(len(internal))
    names = {n: f"q{int(p)}_{seed % 97}" for n, p in zip(internal, perm, strict=True)}
    data = g.to_dict()
    for node in data["nodes"]:
        node["id"] = names[node["id"]]
        node["inputs"] = [names.get(u, u) for u in node["inputs"]]
    data["outputs"] = {s: names.get(v, v) for s, v in data["outputs"].items()}
    order = rng.permutation(len(data["nodes"]))
    data["nodes"] = [data["nodes"][int(i)] for i in order]
    return CellGraph.from_dict(data)
