import pytest

from rnnsearch.workers import LocalRunner, RayRunner
from rnnsearch.workers.chaos import Chaos

from .requests import exploding_cell, smoke_request


def drain(runner, expected: int, timeout: float = 600):
    out = []
    while len(out) < expected:
        got = runner.wait(timeout=timeout)
        assert got, "runner returned nothing before the timeout"
        out += got
    return out


def test_n_requests_come_back_as_n_results(ray_local):
    runner = RayRunner(batch_members=False)
    assert runner.capacity == 2
    reqs = [smoke_request(f"r{i}", seed=i) for i in range(6)]
    for r in reqs:
        runner.submit(r)
    results = drain(runner, 6)
    assert sorted(r.request_id for r in results) == sorted(r.request_id for r in reqs)
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    assert len({r.worker for r in results}) >= 2  # two processes worked side by side
    assert runner.in_flight() == 0 and runner.wait(timeout=0.1) == []
    runner.shutdown()


def test_failures_are_results_and_the_rest_finish(ray_local):
    chaos = Chaos(raise_ids=frozenset({"boom"}), kill_ids=frozenset({"die"}))
    runner = RayRunner(evaluate_fn=chaos, max_retries=1)
    reqs = [
        smoke_request("boom"),
        smoke_request("nan", cell=exploding_cell(), task="xml"),
        smoke_request("die"),
        smoke_request("fine1", seed=1),
        smoke_request("fine2", seed=2),
    ]
    for r in reqs:
        runner.submit(r)
    results = {r.request_id: r for r in drain(runner, len(reqs))}
    assert results["boom"].status == "failed" and "chaos: injected exception" in results["boom"].error
    assert results["nan"].status == "diverged"
    assert results["die"].status == "failed" and "worker died" in results["die"].error
    assert results["fine1"].status == results["fine2"].status == "ok"
    runner.shutdown()


def test_a_dead_worker_is_retried(ray_local, tmp_path):
    runner = RayRunner(evaluate_fn=Chaos(kill_ids=frozenset({"once"}), marker_dir=str(tmp_path)), max_retries=2)
    runner.submit(smoke_request("once"))
    (result,) = drain(runner, 1)
    assert result.status == "ok"
    assert (tmp_path / "killed-once").exists()  # the first attempt really died
    runner.shutdown()


def test_time_limit_ends_a_hung_run(ray_local):
    runner = RayRunner(evaluate_fn=Chaos(hang_ids=frozenset({"hang"})), time_limit_s=8)
    runner.submit(smoke_request("hang"))
    runner.submit(smoke_request("ok", seed=3))
    results = {r.request_id: r for r in drain(runner, 2)}
    assert results["hang"].status == "failed" and "timeout" in results["hang"].error
    assert results["ok"].status == "ok"
    runner.shutdown()


def test_cancel_a_waiting_request(ray_local):
    runner = RayRunner(evaluate_fn=Chaos(hang_ids=frozenset({"h1", "h2", "queued"})))
    for rid in ("h1", "h2", "queued"):
        runner.submit(smoke_request(rid))
    runner.wait(timeout=2)  # h1 and h2 start (two slots); "queued" waits for a slot
    assert runner.cancel("queued")
    assert runner.cancel("h1") and runner.cancel("h2")
    results = {r.request_id: r for r in drain(runner, 3)}
    assert set(results) == {"h1", "h2", "queued"}
    assert all(r.status == "failed" and "cancelled" in r.error for r in results.values())
    runner.shutdown()


def test_local_and_ray_runners_agree(ray_local):
    reqs = [smoke_request(f"a{i}", task="xml", seed=i) for i in range(2)]
    local = LocalRunner()
    for r in reqs:
        local.submit(r)
    by_local = {r.request_id: r for r in drain(local, 2)}
    ray_runner = RayRunner(batch_members=False)
    for r in reqs:
        ray_runner.submit(r)
    by_ray = {r.request_id: r for r in drain(ray_runner, 2)}
    ray_runner.shutdown()
    for rid in by_local:
        assert (by_local[rid].val_accuracy, by_local[rid].steps) == (by_ray[rid].val_accuracy, by_ray[rid].steps)


def test_local_runner_turns_a_raising_function_into_failed():
    runner = LocalRunner(evaluate_fn=Chaos(raise_ids=frozenset({"x"})))
    runner.submit(smoke_request("x"))
    (result,) = runner.wait()
    assert result.status == "failed" and "injected" in result.error


def test_bad_resources_are_refused(ray_local):
    from rnnsearch.errors import UserError

    with pytest.raises(UserError):
        RayRunner(cpus_per_eval=0)
    with pytest.raises(UserError, match="no room"):
        RayRunner(gpus_per_eval=1)


def test_grouping_is_on_where_it_pays(ray_local, monkeypatch):
    monkeypatch.delenv("RNNSEARCH_LOOP", raising=False)
    with RayRunner() as cpu:  # the native loop on a CPU: one evaluation per task
        assert not cpu.batch_members and cpu.capacity == 2
    monkeypatch.setenv("RNNSEARCH_LOOP", "eager")  # the Python step: groups pay
    with RayRunner() as python_step:
        assert python_step.batch_members


def test_compatible_requests_train_as_one_model(ray_local):
    runner = RayRunner(batch_members=True)
    assert runner.capacity == 2 * 20
    same = [smoke_request(f"g{i}", task="xml", seed=i, learning_rate=0.2 + 0.1 * i) for i in range(5)]
    other = smoke_request("lone", cell="LSTM", task="memorize")
    for r in [*same, other]:
        runner.submit(r)
    results = {r.request_id: r for r in drain(runner, 6)}
    assert all(r.status == "ok" for r in results.values()), [r.error for r in results.values()]
    assert {dict(results[f"g{i}"].extras).get("group_size") for i in range(5)} == {5.0}
    assert "group_size" not in dict(results["lone"].extras)
    alone = {r.request_id: r for r in drain(_local(same), 5)}
    for rid, r in alone.items():
        assert results[rid].steps == r.steps
        assert results[rid].val_loss == pytest.approx(
            r.val_loss, rel=1e-3
        )  # float32 rounding; exact in float64 (tests/tasks)
    runner.shutdown()


def _local(reqs):
    runner = LocalRunner()
    for r in reqs:
        runner.submit(r)
    return runner


def test_ray_start_does_not_invite_turning_authentication_off():
    """Ray's own notice on every start says how to opt out of token authentication;
    rnnsearch hides that one line and keeps Ray's warning when authentication is off."""
    import logging

    from ray._private.authentication import authentication_token_setup as setup

    from rnnsearch.workers.ray_runner import _quiet_auth_notice

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    _quiet_auth_notice()
    keep = Keep()
    setup.logger.addHandler(keep)  # Ray's loggers do not propagate to pytest's capture
    try:
        setup._warn_token_auth_enabled()
        setup._warn_token_auth_disabled()
    finally:
        setup.logger.removeHandler(keep)
    assert not any("to opt out" in m for m in keep.messages)
    assert any(m.startswith("Token authentication is disabled") for m in keep.messages)
