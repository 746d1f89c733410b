"""Soak: kill the search controller with SIGKILL at random moments and relaunch it, for N
minutes; then count what a user cares about. Prints kills and restarts per minute,
evaluations completed, evaluations lost (a finished row that vanished or changed: must be
0) and duplicates (an (architecture, task, hyperparameters, seed) run twice: must be 0).

    python bench/soak.py --minutes 30 [--db sqlite:///soak.db] [--ray]

The controller runs evaluations in-process (--local) unless --ray is given; with --ray a
killed controller's Ray processes are stopped with it.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from rnnsearch.db import Store

FINAL = ("ok", "diverged", "failed")


def snapshot(url: str) -> dict[str, tuple]:
    try:
        with Store(url, create=False) as store:
            search = store.get_search("soak")
            if search is None:
                return {}
            return {
                e.request_id: (e.status, e.val_accuracy, e.test_accuracy, e.steps, e.finished_at)
                for e in store.evaluations(search.id)
                if e.status in FINAL
            }
    except Exception:
        return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--db", default=None)
    ap.add_argument("--ray", action="store_true", help="run evaluations on a local Ray instead of in-process")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    url = args.db or f"sqlite:///{os.path.join(tempfile.mkdtemp(prefix='rnnsearch-soak-'), 'soak.db')}"
    rng = random.Random(args.seed)
    cmd = [
        sys.executable,
        "-m",
        "rnnsearch.cli",
        "launch",
        "--db",
        url,
        "--preset",
        "smoke",
        "--name",
        "soak",
        "--tasks",
        "arithmetic,xml",
        "--budget",
        "architectures=100000",
    ]
    if not args.ray:
        cmd.append("--local")
    end = time.time() + 60 * args.minutes
    kills = restarts = lost = 0
    seen: dict[str, tuple] = {}
    while time.time() < end:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        restarts += 1
        time.sleep(rng.uniform(2.0, 12.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the controller and anything it started
        proc.wait()
        kills += 1
        now = snapshot(url)
        lost += sum(1 for rid, row in seen.items() if now.get(rid) != row)
        seen = now
        print(f"kill {kills}: {len(now)} evaluations finished so far, lost {lost}", flush=True)
    with Store(url) as store:
        evs = store.evaluations(store.get_search("soak").id)
    keys = [(e.architecture_id, e.task, tuple(sorted(e.hparams.items())), e.seed) for e in evs]
    duplicates = len(keys) - len(set(keys))
    minutes = args.minutes
    print(f"soak: {minutes:g} minutes, {kills / minutes:.1f} kills/min and {restarts / minutes:.1f} restarts/min")
    print(
        f"evaluations completed {sum(1 for e in evs if e.status in FINAL)}, left pending {sum(1 for e in evs if e.status not in FINAL)}"
    )
    print(f"evaluations lost {lost} (must be 0), duplicates {duplicates} (must be 0)")
    if lost or duplicates:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
