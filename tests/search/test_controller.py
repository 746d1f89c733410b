import os
import signal
import subprocess
import time

import pytest

from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.db import Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import COMPLETE, Controller
from rnnsearch.workers import LocalRunner, RayRunner
from tests.launching import launch_command


def smoke_config(name="s", budget="architectures=20", tasks=("arithmetic", "xml"), seed=0):
    return config_for(name, "smoke", tasks=tasks, seed=seed, budget=SearchBudget.parse(budget))


def test_smoke_search_end_to_end_on_ray_and_sqlite(ray_local, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'search.db'}")
    runner = RayRunner()
    controller = Controller(store, runner, smoke_config(budget="architectures=22"))
    view = controller.run()
    runner.shutdown()
    search = store.get_search("s")
    gru = store.lookup(__import__("rnnsearch.cells", fromlist=["zoo"]).zoo.get("GRU"))
    lstm = store.lookup(__import__("rnnsearch.cells", fromlist=["zoo"]).zoo.get("LSTM"))
    assert controller.fitness_of(gru.id) == 1.0  # by construction
    assert controller.fitness_of(lstm.id) is not None and controller.fitness_of(lstm.id) > 0
    mutated = [a for a in store.architectures(search_id=search.id) if a.origin == "mutation"]
    trained = [a for a in mutated if a.stage != "degenerate"]
    assert len(trained) >= 20  # degenerate candidates do not count against the budget
    for a in mutated:
        assert a.parent_id is not None and a.mutation_ops, "lineage recorded"
        assert a.stage in (
            "degenerate",
            "filtered_memorize",
            "stopped_task1",
            "complete",
            "memorize",
            "task1",
            "other_tasks",
        )
        assert (degeneracy(a.graph()) is not None) == (a.stage == "degenerate")
    assert len({a.hash for a in mutated}) == len(mutated)  # never the same cell twice
    assert search.duplicates == view.duplicates  # duplicates skipped are counted in the database
    assert search.status == "finished"
    # every evaluation finished, each (architecture, task, hparams, seed) once
    evs = store.evaluations(search.id)
    assert all(e.status in ("ok", "diverged", "failed") for e in evs)
    keys = [(e.architecture_id, e.task, tuple(sorted(e.hparams.items())), e.seed) for e in evs]
    assert len(keys) == len(set(keys))
    # the stages a candidate went through are the ones its evaluations show
    for a in mutated:
        stages = {e.stage for e in evs if e.architecture_id == a.id} - {"reeval"}  # members get new settings too
        if a.stage == "complete":
            assert stages == {"memorize", "task1", "other_tasks"}
        if a.stage == "filtered_memorize":
            assert stages == {"memorize"}
        if a.stage == "degenerate":
            assert stages == set()  # refused before any training
    assert view.busy_fraction > 0
    store.close()


def _trace(url):
    with Store(url) as store:
        search = store.get_search("s")
        archs = [(a.hash, a.stage) for a in store.architectures(search_id=search.id)]
        evs = [(e.request_id, e.status, e.val_accuracy) for e in store.evaluations(search.id)]
    return archs, evs


def test_same_seed_same_search_with_local_runner(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'{i}.db'}" for i in range(2)]
    for url in urls:
        with Store(url) as store:
            Controller(store, LocalRunner(), smoke_config(budget="architectures=5")).run()
    assert _trace(urls[0]) == _trace(urls[1])
    with Store(urls[0]) as store:
        other = Controller(store, LocalRunner(), smoke_config(name="other", seed=1, budget="architectures=5"))
        other.run()
        a = {x.hash for x in store.architectures(search_id=store.get_search("s").id)}
        b = {x.hash for x in store.architectures(search_id=store.get_search("other").id)}
    assert a != b


def test_time_budget_hands_unstarted_work_back(ray_local, tmp_path):
    with Store(f"sqlite:///{tmp_path / 't.db'}") as store:
        runner = RayRunner()
        view = Controller(store, runner, smoke_config(budget="minutes=0.15")).run()
        runner.shutdown()
        assert "time budget" in view.stopping
        evs = store.evaluations(store.get_search("s").id)
        assert not [e for e in evs if e.status == "running"]  # unstarted ones went back to pending
        assert sum(view.finished.values()) == sum(1 for e in evs if e.status in ("ok", "diverged", "failed"))


def test_evaluation_budget_ends_the_search(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        view = Controller(store, LocalRunner(), smoke_config(budget="evaluations=12")).run()
        assert sum(view.finished.values()) == 12
        assert "evaluation budget" in view.stopping
        # what was queued beyond the budget is pending, for a relaunch with more budget
        more = Controller(store, LocalRunner(), smoke_config(budget="evaluations=20")).run()
        assert sum(more.finished.values()) == 20


def _launch(url, budget):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = launch_command(url, budget)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_sigkill_and_relaunch_loses_nothing_and_repeats_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    proc = _launch(url, "architectures=30")
    deadline = time.time() + 300
    finished = []
    while time.time() < deadline:
        time.sleep(0.5)
        if not os.path.exists(tmp_path / "kill.db"):
            continue
        try:
            with Store(url, create=False) as store:
                search = store.get_search("s")
                finished = (
                    [e for e in store.evaluations(search.id) if e.status in ("ok", "diverged", "failed")]
                    if search
                    else []
                )
        except Exception:
            continue
        if len(finished) >= 25:
            break
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with Store(url) as store:
        search = store.get_search("s")
        before = {e.request_id: e for e in store.evaluations(search.id) if e.status in ("ok", "diverged", "failed")}
        unfinished = [e.request_id for e in store.evaluations(search.id) if e.status in ("pending", "running")]
    assert len(before) >= 25
    out, _ = _launch(url, "architectures=30").communicate(timeout=600)
    assert "resuming s" in out or not unfinished, out
    with Store(url) as store:
        after = {e.request_id: e for e in store.evaluations(store.get_search("s").id)}
    for rid, ev in before.items():
        assert after[rid] == ev, "a finished evaluation changed after the relaunch"
    for rid in unfinished:
        assert after[rid].status in ("ok", "diverged", "failed"), "a pending evaluation was not run again"
    keys = [(e.architecture_id, e.task, tuple(sorted(e.hparams.items())), e.seed) for e in after.values()]
    assert len(keys) == len(set(keys))
    assert all(e.status in ("ok", "diverged", "failed") for e in after.values())


def test_bad_search_settings_are_clear(tmp_path):
    from rnnsearch.errors import UserError

    with pytest.raises(UserError, match="yardstick"):
        config_for("x", "smoke", seeds=("LSTM",))
    with pytest.raises(UserError, match="unknown search task"):
        config_for("x", "smoke", tasks=("memorize",))
    with pytest.raises(UserError, match="budget"):
        SearchBudget.parse("evaluations=abc")
    assert SearchBudget.parse("50") == SearchBudget(evaluations=50)
    assert COMPLETE == "complete"
