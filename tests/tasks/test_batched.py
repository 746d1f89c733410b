"""K settings of a cell trained as one member-batched model equal K runs alone."""

import dataclasses

import pytest
import torch

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.cells.compiler import compile_cell, compile_members
from rnnsearch.tasks.api import Budget, EvalRequest, HParams
from rnnsearch.tasks.batched import evaluate_group
from rnnsearch.tasks.train import evaluate


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def leaky_cell() -> CellGraph:
    """h' = tanh(W[x,h] + b) + u * h: smooth, and it overflows once training pushes |u| past 1."""
    g = CellGraph(("h",))
    g.set_output("h", g.add("add", g.add("tanh", g.add("linear", "x", "h")), g.add("diag", "h", init="uniform01")))
    return g


def _requests(graph, task, settings, budget, options):
    return [
        EvalRequest(
            graph.to_json(),
            task,
            HParams(init_scale=s, learning_rate=lr, max_grad_norm=mn, param_budget=3000),
            seed,
            budget,
            options,
            f"m{i}",
            threads=1,
        )
        for i, (s, lr, mn, seed) in enumerate(settings)
    ]


def _assert_same(group, alone):
    for g, a in zip(group, alone, strict=True):
        assert (g.request_id, g.status, g.steps) == (a.request_id, a.status, a.steps)
        for field in ("val_accuracy", "test_accuracy", "val_loss", "test_perplexity"):
            x, y = getattr(g, field), getattr(a, field)
            assert (x is None and y is None) or x == pytest.approx(y, abs=1e-5), field


def test_each_member_equals_its_run_alone_with_divergence_and_early_stop(float64):
    budget = Budget(max_steps=300, max_seconds=600, eval_every=25, eval_batches=2, patience=3, decays=4)
    settings = [
        (0.3, 0.1, 2.5, 1),  # trains to the end
        (1.0, 0.2, 1.0, 4),  # trains, its schedule halving the rate
        (1.0, 5.0, 20.0, 2),  # diverges within a few steps while the others go on
        (0.3, 1e-9, 5.0, 3),  # never improves: stops early (3 bad evaluations, 4 halvings)
    ]
    reqs = _requests(leaky_cell(), "xml", settings, budget, (("train_chars", 20000), ("eval_chars", 4000)))
    group = evaluate_group(reqs)
    alone = [evaluate(r) for r in reqs]
    _assert_same(group, alone)
    assert [r.status for r in group] == ["ok", "ok", "diverged", "ok"]
    assert group[0].steps == 300 and group[2].steps < 20 and group[3].steps == 25 * (1 + 3 + 4)
    assert all(dict(r.extras).get("group_size") == 4.0 and "batched_fallback" not in dict(r.extras) for r in group)


def test_sequence_task_members_with_different_lengths(float64):
    budget = Budget(max_steps=60, max_seconds=600, eval_every=20, eval_batches=2)
    reqs = _requests(
        zoo.get("GRU"),
        "arithmetic",
        [(1.0, 0.5, 5.0, 0), (0.7, 1.0, 2.5, 1), (1.4, 0.3, 10.0, 2)],
        budget,
        (("max_digits", 3),),
    )
    _assert_same(evaluate_group(reqs), [evaluate(r) for r in reqs])


def test_member_layer_matches_single_cells_with_the_same_draws(float64):
    for name in ("LSTM", "MUT1", "FGR", "IndRNN-T5", "RHN"):
        graph, K, n = zoo.get(name), 3, 5
        members = compile_members(graph, n, K, name=name)
        alone = [compile_cell(graph, n, name=name) for _ in range(K)]
        for k in range(K):
            members.cell.reset_member(k, 0.5 + k, torch.Generator().manual_seed(k))
            alone[k].cell.reset_parameters(0.5 + k, torch.Generator().manual_seed(k))
        x = torch.randn(K, 4, 2, n)
        out, _ = members(x)
        for k in range(K):
            torch.testing.assert_close(out[k], alone[k](x[k])[0], atol=1e-12, rtol=0)


def test_incompatible_requests_are_refused():
    budget = Budget(max_steps=5, eval_every=5)
    a, b = _requests(zoo.get("GRU"), "memorize", [(1.0, 1.0, 5.0, 0), (1.0, 1.0, 5.0, 1)], budget, ())
    with pytest.raises(ValueError):
        evaluate_group([a, dataclasses.replace(b, task="xml")])


def test_a_member_below_the_trail_is_stopped_like_its_run_alone(float64):
    budget = Budget(max_steps=60, max_seconds=600, eval_every=20, eval_batches=2)
    settings = [(1.0, 0.5, 5.0, 0), (0.7, 1.0, 2.5, 1), (1.4, 0.3, 10.0, 2)]
    plain = _requests(zoo.get("GRU"), "arithmetic", settings, budget, (("max_digits", 3),))
    firsts = sorted(evaluate(r).curve[0][1] for r in plain)
    assert firsts[0] < firsts[-1]
    bar = (firsts[0] + firsts[-1]) / 2  # the worst member trails, the best does not
    reqs = [dataclasses.replace(r, budget=dataclasses.replace(budget, trail=((20, bar),))) for r in plain]
    group, alone = evaluate_group(reqs), [evaluate(r) for r in reqs]
    _assert_same(group, alone)
    assert "stopped" in [r.status for r in group] and "ok" in [r.status for r in group]
    for g, a in zip(group, alone, strict=True):
        assert [s for s, _ in g.curve] == [s for s, _ in a.curve]
        assert [x for _, x in g.curve] == pytest.approx([x for _, x in a.curve], abs=1e-5)
        if g.status == "stopped":
            assert g.steps == 20 and len(g.curve) == 1 and g.test_accuracy is None
