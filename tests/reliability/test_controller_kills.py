"""SIGKILL the controller at random moments, many rounds, on SQLite and on PostgreSQL; every
relaunch resumes, and at the end the database is consistent."""

import random
import signal
import subprocess
import time

from rnnsearch.db import Store
from tests.launching import launch_command

FINAL = ("ok", "diverged", "failed")


def _finished(url):
    try:
        with Store(url, create=False) as store:
            search = store.get_search("s")
            if search is None:
                return {}
            return {
                e.request_id: (e.status, e.val_accuracy, e.steps, e.finished_at)
                for e in store.evaluations(search.id)
                if e.status in FINAL
            }
    except Exception:
        return {}


def test_many_kills_lose_nothing_and_repeat_nothing(db_url):
    url = db_url
    # a budget the kills cannot outlast: a round is at most 4 s, and 40 architectures take
    # longer than the few rounds that reach the kills wanted
    cmd = launch_command(url, "architectures=40")
    rng = random.Random(1)
    seen: dict = {}
    kills = 0
    for _ in range(12):
        if kills >= 4:
            break
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))  # at start-up, mid-submission, mid-write: wherever it is
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        now = _finished(url)
        for rid, row in seen.items():
            assert now.get(rid) == row, "a finished evaluation was lost or changed"
        seen = now
    assert kills >= 4
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    with Store(url) as store:
        search = store.get_search("s")
        evs = store.evaluations(search.id)
        assert search.status == "finished"
        assert all(e.status in FINAL for e in evs), "an evaluation left running without a live search"
        keys = [(e.architecture_id, e.task, tuple(sorted(e.hparams.items())), e.seed) for e in evs]
        assert len(keys) == len(set(keys))
        for rid, row in seen.items():
            assert (lambda e: (e.status, e.val_accuracy, e.steps, e.finished_at))(
                next(e for e in evs if e.request_id == rid)
            ) == row
