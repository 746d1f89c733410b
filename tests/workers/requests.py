"""Small real requests for runner tests."""

from __future__ import annotations

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.tasks.api import EvalRequest, HParams
from rnnsearch.tasks.presets import get_preset


def smoke_request(rid: str, cell: str | CellGraph = "GRU", task: str = "memorize", seed: int = 0, **hp) -> EvalRequest:
    tp = get_preset("smoke").task(task)
    graph = zoo.get(cell) if isinstance(cell, str) else cell
    return EvalRequest(
        graph_json=graph.to_json(),
        task=task,
        hparams=HParams(param_budget=tp.param_budget, batch_size=tp.batch_size, unroll=tp.unroll, **hp),
        seed=seed,
        budget=tp.budget,
        task_options=tp.options,
        request_id=rid,
        threads=1,
    )


def exploding_cell() -> CellGraph:
    """h' = (W[x,h] + b)^2: the state squares every step and overflows: a real NaN."""
    g = CellGraph(("h",))
    a = g.add("linear", "x", "h", init="identity", gain=3.0, bias_init=2.0)
    g.set_output("h", g.add("mul", a, a))
    return g
