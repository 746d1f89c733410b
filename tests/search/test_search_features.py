"""The search's strategies, early stopping, functional dedup and its one-launch lease, each
through the real loop (LocalRunner: in-process, deterministic)."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from rnnsearch.cells import zoo
from rnnsearch.cells.fingerprint import fingerprint, matches
from rnnsearch.db import Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import Controller
from rnnsearch.search.early_stop import trail
from rnnsearch.search.lease import LeaseHeld
from rnnsearch.states import Stage, Status
from rnnsearch.workers import LocalRunner
from tests.launching import launch_command


def config(name="s", budget="architectures=6", **kw):
    kw.setdefault("tasks", ("arithmetic",))
    return config_for(name, "smoke", budget=SearchBudget.parse(budget), **kw)


def trace(store: Store, name: str):
    search = store.get_search(name)
    archs = [(a.hash, a.stage, a.parent_id) for a in store.architectures(search_id=search.id)]
    evs = [(e.request_id, e.status, e.val_accuracy) for e in store.evaluations(search.id)]
    return archs, evs


@pytest.mark.parametrize("strategy", ["regularized", "random"])
def test_each_strategy_repeats_with_its_seed_and_differs_from_the_paper(tmp_path, strategy):
    runs = []
    for i, strat in enumerate([strategy, strategy, "paper"]):
        with Store(f"sqlite:///{tmp_path / f'{i}.db'}") as store:
            view = Controller(store, LocalRunner(), config(strategy=strat)).run()
            assert view.strategy == strat
            runs.append(trace(store, "s"))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_random_search_mutates_only_the_seeds(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        Controller(store, LocalRunner(), config(strategy="random", budget="architectures=8")).run()
        search = store.get_search("s")
        archs = store.architectures(search_id=search.id)
        seeds = {a.id for a in archs if a.origin.startswith("zoo:")}
        assert {a.parent_id for a in archs if a.origin == "mutation"} <= seeds


def test_settings_that_trail_the_grus_curve_stop_early_and_keep_their_curve(tmp_path):
    # smoke trains the GRU on 2 settings; a trail needs 3 of its curves
    with Store(f"sqlite:///{tmp_path / 'e.db'}") as store:
        cfg = config(baseline_settings=4, budget="architectures=10", tasks=("arithmetic", "xml"))
        first = Controller(store, LocalRunner(), cfg)
        first.run()
        again = Controller(store, LocalRunner(), cfg)  # a relaunch learns the same bars
        assert again.trails == first.trails and again.trails
        again.run()
        search = store.get_search("s")
        evs = store.evaluations(search.id)
        gru = store.lookup(zoo.get("GRU"))
        bars = {}
        for task in cfg.tasks:
            curves = [e.curve for e in evs if e.architecture_id == gru.id and e.task == task]
            budget = next(e.budget for e in evs if e.task == task)
            bars[task] = trail(curves, budget["eval_every"], budget["max_steps"])
        assert bars["arithmetic"], "the GRU's four curves give at least one rung"
        assert {t: b for t, b in bars.items() if b} == first.trails
        # the seeds are the yardstick; a candidate past task 1 trains every setting to the end
        assert all(not e.budget.get("trail") for e in evs if e.stage in (Stage.SEED, Stage.OTHER))
        judged = [e for e in evs if e.stage in (Stage.TASK1, Stage.REEVAL)]
        assert judged and all(tuple(map(tuple, e.budget["trail"])) == bars[e.task] for e in judged)
        stopped = [e for e in evs if e.status == Status.STOPPED]
        assert stopped, "some settings trail the GRU's"
        for e in stopped:
            rungs = dict(bars[e.task])
            step, _ = e.curve[-1]
            assert step in rungs and max(a for _, a in e.curve) < rungs[step]
            assert e.steps == step and e.test_accuracy is None
        assert store.status_counts(search.id)[Status.STOPPED] == len(stopped)

        off = config("off", baseline_settings=4, budget="architectures=10", early_stop=False)
        Controller(store, LocalRunner(), off).run()
        evs = store.evaluations(store.get_search("off").id)
        assert not any(e.budget.get("trail") for e in evs)
        assert not any(e.status == Status.STOPPED for e in evs)


def _twin(graph):
    """``graph`` with its first sigmoid σ(v) written relu(σ(v)): a different graph, the same
    function, every other node keeping its name (as a mutation leaves them)."""
    g = graph.copy()
    gate = next(n for n in sorted(g.internal_nodes()) if g.op(n) == "sigmoid")
    readers = list(g.g.out_edges(gate, data="slot", keys=True))
    wrapped = g.add("relu", gate)
    for u, v, key, slot in readers:
        g.g.remove_edge(u, v, key=key)
        g.g.add_edge(wrapped, v, slot=slot)
    return g.validate()


def test_a_functional_duplicate_is_recorded_and_never_trained(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    with Store(url) as store:
        controller = Controller(store, LocalRunner(), config(budget="architectures=1"))
        gru = controller.gru_id
        twin = _twin(store.get_architecture(gru).graph())  # mutations start from the stored form
        assert store.lookup(twin) is None  # the canonical form keeps it apart
        assert controller._admit(twin, gru, ["test"]) is None  # recorded; the step draws again
        dup = store.lookup(twin)
        assert dup.stage == Stage.DUPLICATE and dup.duplicate_of == gru
        assert matches(dup.fingerprint, fingerprint(twin))
        assert controller.view().functional_duplicates == 1
        other = zoo.get("MUT1")  # a different function is admitted and trained
        assert controller._admit(other, gru, ["test"]) is True
        assert store.lookup(other).stage == Stage.MEMORIZE
        view = controller.run()
        search = store.get_search("s")
        assert search.functional_duplicates == 1 == view.functional_duplicates
        assert not store.evaluations(search.id, architecture_id=dup.id)
        n, saved = store.functional_savings(search.id)
        gru_seconds = sum(e.wall_s or 0 for e in store.evaluations(search.id, architecture_id=gru))
        assert n == 1 and saved == pytest.approx(gru_seconds)
    with Store(url) as store:  # a relaunch knows it, from the stored fingerprints
        again = Controller(store, LocalRunner(), config(budget="architectures=1"))
        assert again.stage[dup.id] == Stage.DUPLICATE
        assert again.dedup.index.find(fingerprint(twin)) == gru
        again.run()


def test_a_second_controller_of_a_live_search_is_refused(db_url):
    with Store(db_url) as store:
        first = Controller(store, LocalRunner(), config(budget="architectures=1"))
        with pytest.raises(LeaseHeld, match=r"already running: held by .* pid \d+ since"):
            Controller(store, LocalRunner(), config(budget="architectures=1"))
        first.run()  # releases it
        Controller(store, LocalRunner(), config(budget="architectures=2")).run()


def test_a_second_launch_is_refused_and_kill_9_then_relaunch_takes_over(db_url):
    cmd = launch_command(db_url, "architectures=200")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # until it holds the search
            time.sleep(0.5)
            try:
                with Store(db_url, create=False) as store:
                    s = store.get_search("s")
                    if s is not None and s.lease_pid == first.pid:
                        break
            except Exception:
                continue
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "already running" in lines[0], second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    relaunch = subprocess.run(launch_command(db_url, "architectures=3"), capture_output=True, text=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
    with Store(db_url) as store:
        s = store.get_search("s")
        assert s.status == "finished" and s.lease_pid is None  # released at the end
