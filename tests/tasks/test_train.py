import dataclasses

import numpy as np
import pytest

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.tasks import hparams
from rnnsearch.tasks.api import Budget, EvalRequest, EvalResult, HParams
from rnnsearch.tasks.presets import get_preset
from rnnsearch.tasks.train import evaluate, loss_rise


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
        grid = hparams.PAPER_GRID
        assert hp.init_scale in grid.init_scales and hp.learning_rate in grid.learning_rates
        assert hp.max_grad_norm in grid.max_grad_norms and 1 <= hp.layers <= 4
    assert len({hp.learning_rate for hp in draws1}) > 3


def test_hparams_validate_their_values():
    with pytest.raises(ValueError):
        HParams(learning_rate=-1)
    with pytest.raises(ValueError):
        HParams(layers=0)
    assert hparams.parse_overrides(["lr=0.5", "layers=2"]) == {"learning_rate": 0.5, "layers": 2}
    with pytest.raises(ValueError):
        hparams.parse_overrides(["nope=1"])


def test_a_loss_that_rises_far_above_its_start_stops_as_diverged():
    # lr 50 on the summed loss throws the weights far: the loss climbs within one evaluation
    req = _request(cell="GRU", task="arithmetic", learning_rate=50.0, max_grad_norm=1000.0, init_scale=2.0)
    req = dataclasses.replace(req, budget=dataclasses.replace(req.budget, max_steps=400, eval_every=20))
    r = evaluate(req)
    assert r.status == "diverged", (r.status, r.val_accuracy, r.error)
    assert r.error.startswith("training loss ") and "x the first step's" in r.error
    assert r.steps < 400  # stopped at the evaluation that saw it, not at the step budget


def test_stop_at_ends_training_once_the_accuracy_is_reached():
    req = _request(task="memorize")
    steps = req.budget.eval_every
    low = dataclasses.replace(req, budget=dataclasses.replace(req.budget, stop_at=1e-9))
    r = evaluate(low)
    assert r.status == "ok" and r.steps == steps  # the first evaluation already reaches it
    never = dataclasses.replace(req, budget=dataclasses.replace(req.budget, stop_at=1.01))
    assert evaluate(never).steps == req.budget.max_steps


def test_xml_scored_on_closing_tags_keeps_every_character_s_accuracy():
    opts = dict(get_preset("smoke").task("xml").options)
    chars = dataclasses.replace(_request(task="xml"), task_options=tuple(sorted({**opts, "score": "chars"}.items())))
    closing = dataclasses.replace(chars, task_options=tuple(sorted({**opts, "score": "closing"}.items())))
    a, b = evaluate(chars), evaluate(closing)
    assert a.status == b.status == "ok"
    assert b.val_accuracy == b.extra("closing_accuracy") and b.extra("all_accuracy") is not None
    assert a.extra("all_accuracy") is None and a.extra("closing_accuracy") is not None


def test_a_grid_bounds_the_sampled_settings():
    grid = hparams.Grid(init_scales=(0.7,), learning_rates=(0.1, 0.2), max_grad_norms=(5.0,), layers=(1, 2))
    rng = np.random.default_rng(0)
    seen = {hparams.sample(rng, 1000, max_layers=4, grid=grid).learning_rate for _ in range(50)}
    assert seen == {0.1, 0.2}
    assert all(hparams.sample(rng, 1000, max_layers=1, grid=grid).layers == 1 for _ in range(20))


def test_training_flushes_denormals_and_gives_the_caller_its_mode_back():
    import torch

    from rnnsearch.tasks.train import training_settings

    tiny = torch.tensor([1e-40])
    assert float(tiny * 1.0) != 0.0
    with training_settings():
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) != 0.0


def test_the_diverged_rule():
    assert loss_rise(None, 1e9, 1e9, 10) is None  # nothing scored yet
    assert loss_rise(3.0, 2.0, 2.5, 10) is None  # learning
    assert loss_rise(3.0, 4.4, 4.4, 10) is None  # worse, but under 1.5x
    assert loss_rise(3.0, 4.6, 1.0, 10).startswith("training loss 4.6 at step 10")
    # a sure-of-itself model that learns: the validation loss alone is not the test
    assert loss_rise(3.3, 0.8, 6.8, 10) is None
    assert loss_rise(9.2, 9.5, 64.0, 80).startswith("validation loss 64 at step 80")


def _short(req: EvalRequest, **budget) -> EvalRequest:
    return dataclasses.replace(req, budget=dataclasses.replace(req.budget, **budget))


def test_an_impossible_bar_at_the_first_evaluation_stops_the_run_there():
    req = _request(task="memorize")
    first = req.budget.eval_every
    r = evaluate(_short(req, trail=((first, 1.0),)))
    assert r.status == "stopped" and r.error == ""
    assert r.steps == first and len(r.curve) == 1 and r.curve[0][0] == first
    assert r.val_accuracy == r.curve[0][1] and r.val_loss is not None
    assert r.test_accuracy is None and r.test_perplexity is None and r.weights is None


def test_bars_of_zero_change_nothing_and_the_curve_has_a_point_per_evaluation():
    req = _short(_request(task="memorize"), max_steps=20, eval_every=5)
    plain = evaluate(req)
    trailed = evaluate(_short(req, trail=((5, 0.0), (15, 0.0))))
    assert plain.status == trailed.status == "ok"
    assert [s for s, _ in plain.curve] == [5, 10, 15, 20]
    assert plain.val_accuracy == max(a for _, a in plain.curve)
    for field in ("val_accuracy", "test_accuracy", "val_loss", "steps", "curve"):
        assert getattr(plain, field) == getattr(trailed, field), field


def test_a_bar_between_evaluations_applies_only_at_its_own_step():
    req = _short(_request(task="memorize"), max_steps=20, eval_every=5)
    r = evaluate(_short(req, trail=((7, 1.0), (10, 1.0))))  # 7 is no evaluation step
    assert r.status == "stopped" and r.steps == 10 and [s for s, _ in r.curve] == [5, 10]


def test_a_trail_survives_the_json_round_trip():
    req = _short(_request(), trail=((15, 0.25), (45, 0.5)))
    back = EvalRequest.from_json(req.to_json())
    assert back == req and hash(back) == hash(req)
    assert back.budget.trail == ((15, 0.25), (45, 0.5))
    assert Budget(trail=[[15, 0.25], [45, 1]]).trail == ((15, 0.25), (45, 1.0))
    assert isinstance(Budget(trail=[[15.0, 1]]).trail[0][0], int)
