"""Worker processes killed from outside during a search: the search finishes, nothing is
lost or run twice (on SQLite and on PostgreSQL)."""

import os
import random
import signal
import subprocess
import threading
import time

from rnnsearch.db import Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import Controller
from rnnsearch.workers import RayRunner


def _worker_pids() -> list[int]:
    """This session's Ray workers running an evaluation: descendants of this process (its
    embedded Ray's raylet starts them), never another search's on the same machine."""
    out = subprocess.run(["pgrep", "-f", "ray::_run"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if _descends_from(int(p), os.getpid())]


def _descends_from(pid: int, root: int) -> bool:
    for _ in range(64):  # a chain of parents, never a loop
        if pid == root:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])  # the field after the name: ppid
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


def test_search_survives_killed_workers(ray_local, db_url):
    store = Store(db_url)
    runner = RayRunner(max_retries=3, batch_members=False)
    config = config_for("s", "smoke", tasks=("arithmetic", "xml"), budget=SearchBudget(architectures=12))
    kills: list[int] = []
    stop = threading.Event()
    rng = random.Random(0)

    def killer():
        # poll often (a smoke search can be short), and leave 1-3 s between kills
        while not stop.is_set() and len(kills) < 3:
            pids = _worker_pids()
            if not pids:
                time.sleep(0.1)
                continue
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills.append(1)
            except ProcessLookupError:
                continue
            time.sleep(rng.uniform(1.0, 3.0))

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    view = Controller(store, runner, config).run()
    stop.set()
    t.join(timeout=10)
    runner.shutdown()
    assert len(kills) >= 1, "no worker was killed: the test did not test anything"
    search = store.get_search("s")
    evs = store.evaluations(search.id)
    assert search.status == "finished"
    assert all(e.status in ("ok", "diverged", "failed") for e in evs)
    keys = [(e.architecture_id, e.task, tuple(sorted(e.hparams.items())), e.seed) for e in evs]
    assert len(keys) == len(set(keys))
    assert sum(view.finished.values()) == len(evs)
    store.close()
