import dataclasses

import numpy as np
import pytest

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.tasks import hparams
from rnnsearch.tasks.api import Budget, EvalRequest, EvalResult, HParams
from rnnsearch.tasks.presets import get_preset
from rnnsearch.tasks.train import evaluate


def _request(cell="LSTM", task="memorize", seed=0, **hp) -> EvalRequest:
    tp = get_preset("smoke").task(task)
    return EvalRequest(
        graph_json=zoo.get(cell).to_json() if isinstance(cell, str) else cell.to_json(),
        task=task,
        hparams=HParams(param_budget=tp.param_budget, batch_size=tp.batch_size, unroll=tp.unroll, **hp),
        seed=seed,
        budget=tp.budget,
        task_options=tp.options,
        request_id="r1",
    )


@pytest.mark.parametrize("task", ["memorize", "arithmetic", "xml", "ptb"])
def test_evaluate_trains_and_scores_each_task(task):
    r = evaluate(_request(task=task))
    assert r.status == "ok", r.error
    assert r.request_id == "r1"
    assert 0.0 <= r.val_accuracy <= 1.0 and 0.0 <= r.test_accuracy <= 1.0
    assert r.steps == get_preset("smoke").task(task).budget.max_steps
    assert r.tokens_per_s > 0 and r.param_count > 0 and r.hidden_size > 0
    assert r.param_count <= get_preset("smoke").task(task).param_budget
    assert r.val_perplexity is not None and r.val_perplexity > 1
    if task == "xml":
        assert r.extra("closing_accuracy") is not None


def test_same_seed_same_result():
    a, b = evaluate(_request(seed=3)), evaluate(_request(seed=3))
    assert (a.val_accuracy, a.test_accuracy, a.val_loss) == (b.val_accuracy, b.test_accuracy, b.val_loss)


def test_non_finite_loss_is_diverged():
    # h' = (W[x,h] + b)^2 squares the state each step: it overflows within the unroll
    g = CellGraph(("h",))
    a = g.add("linear", "x", "h", init="identity", gain=3.0, bias_init=2.0)
    g.set_output("h", g.add("mul", a, a))
    r = evaluate(_request(cell=g, task="xml", learning_rate=1.0))
    assert r.status == "diverged"
    assert r.error == "non-finite loss"


def test_an_exception_is_failed_with_its_traceback():
    req = dataclasses.replace(_request(), task_options=(("length", 0),))
    r = evaluate(req)
    assert r.status == "failed"
    assert "Traceback" in r.error and "memorize: length" in r.error


def test_results_are_plain_frozen_values():
    r = evaluate(_request())
    assert isinstance(r, EvalResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "x"  # type: ignore[misc]


def test_schedule_halves_then_stops_before_the_step_budget():
    # a rate so small nothing improves after the first evaluation: 3 bad evaluations,
    # then 4 halvings, then stop
    req = dataclasses.replace(
        _request(learning_rate=1e-9),
        budget=Budget(max_steps=10_000, max_seconds=120, eval_every=2, eval_batches=1, patience=3, decays=4),
    )
    r = evaluate(req)
    assert r.status == "ok"
    assert r.steps == 2 * (1 + 3 + 4)


def test_request_json_round_trip():
    req = _request()
    assert EvalRequest.from_json(req.to_json()) == req


def test_sampler_draws_from_the_paper_grids_with_a_seed():
    a = [hparams.sample(np.random.default_rng(5), 1000) for _ in range(3)]
    rng1, rng2 = np.random.default_rng(9), np.random.default_rng(9)
    draws1 = [hparams.sample(rng1, 1000) for _ in range(50)]
    draws2 = [hparams.sample(rng2, 1000) for _ in range(50)]
    assert draws1 == draws2 and a[0] == a[1]
    for hp in draws1:
        assert hp.init_scale in hparams.INIT_SCALES and hp.learning_rate in hparams.LEARNING_RATES
        assert hp.max_grad_norm in hparams.MAX_GRAD_NORMS and 1 <= hp.layers <= 4
    assert len({hp.learning_rate for hp in draws1}) > 3


def test_hparams_validate_their_values():
    with pytest.raises(ValueError):
        HParams(learning_rate=-1)
    with pytest.raises(ValueError):
        HParams(layers=0)
    assert hparams.parse_overrides(["lr=0.5", "layers=2"]) == {"learning_rate": 0.5, "layers": 2}
    with pytest.raises(ValueError):
        hparams.parse_overrides(["nope=1"])
