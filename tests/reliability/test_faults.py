"""Real faults: signals to the controller, a database restarted or locked under it."""

import os
import signal
import sqlite3
import subprocess
import threading
import time

from rnnsearch.cells import zoo
from rnnsearch.db import NewEvaluation, Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import Controller
from rnnsearch.tasks.api import EvalResult
from rnnsearch.workers import LocalRunner
from tests.launching import launch_command

FINAL = ("ok", "diverged", "failed")


def _launch(url, budget="architectures=12"):
    cmd = launch_command(url, budget)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished(url) -> int:
    try:
        with Store(url, create=False) as store:
            search = store.get_search("s")
            return sum(n for k, n in store.status_counts(search.id).items() if k in FINAL) if search else 0
    except Exception:
        return 0


def test_sigterm_stops_cleanly_and_a_relaunch_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'term.db'}"
    proc = _launch(url)
    deadline = time.time() + 300
    while time.time() < deadline and _finished(url) < 10:
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "interrupted" in out and "Traceback" not in out
    with Store(url) as store:
        assert store.get_search("s").status == "stopped"
    out, _ = _launch(url).communicate(timeout=600)
    with Store(url) as store:
        search = store.get_search("s")
        evs = store.evaluations(search.id)
        assert search.status == "finished"
        assert all(e.status in FINAL for e in evs)


def test_postgresql_restart_in_the_middle_of_a_search(pg_server):
    url = pg_server.create_database(f"restart{os.getpid()}")
    store = Store(url)
    config = config_for("s", "smoke", tasks=("arithmetic", "xml"), budget=SearchBudget(architectures=10))
    restarted = threading.Event()

    class RestartingRunner(LocalRunner):
        def wait(self, timeout=None):
            results = super().wait(timeout)
            if not restarted.is_set() and sum(1 for _ in results) and self._count() >= 8:
                pg_server.restart()  # every open connection dies here
                restarted.set()
            return results

        def _count(self):
            self.n = getattr(self, "n", 0) + 1
            return self.n

    view = Controller(store, RestartingRunner(), config).run()
    assert restarted.is_set()
    evs = store.evaluations(store.get_search("s").id)
    assert all(e.status in FINAL for e in evs) and sum(view.finished.values()) == len(evs)
    store.close()


def test_sqlite_writes_wait_for_another_writer_then_go_on(tmp_path):
    path = tmp_path / "locked.db"
    store = Store(f"sqlite:///{path}")
    search = store.create_search("s", {}, 0)
    arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
    (ev,) = store.create_evaluations(search.id, [NewEvaluation(arch.id, "xml", {"lr": 1}, 0, {})])
    held = threading.Event()

    def hold_the_write_lock():
        conn = sqlite3.connect(path)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(3)
        conn.rollback()
        conn.close()

    t = threading.Thread(target=hold_the_write_lock)
    t.start()
    held.wait()
    t0 = time.monotonic()
    assert store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=0.5, steps=1))
    waited = time.monotonic() - t0
    t.join()
    assert waited >= 2.0  # it waited for the lock instead of failing
    assert store.evaluations(search.id)[0].status == "ok"
    store.close()
