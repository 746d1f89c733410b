"""The store under a big search: 100k evaluations over 1,000 architectures on SQLite.

Prints results recorded per second (one per transaction, as the controller records them
as they arrive, and batched), pending-evaluation creation rate, and the time of the
leaderboard query and of "is this graph known?" at 100k evaluations.

    python bench/db.py [--evaluations 100000] [--architectures 1000] [--db sqlite:///bench.db]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from rnnsearch.cells import CellGraph
from rnnsearch.db import NewEvaluation, Store
from rnnsearch.tasks.api import EvalResult

TASKS = ("memorize", "arithmetic", "xml", "ptb")


def distinct_graph(i: int) -> CellGraph:
    """A different cell for each i: tanh(W[x,h] + b) followed by a chain of activations
    spelled by i's base-3 digits."""
    g = CellGraph(("h",))
    v = g.add("tanh", g.add("linear", "x", "h"))
    while True:
        v = g.add(("tanh", "sigmoid", "relu")[i % 3], v)
        i //= 3
        if i == 0:
            break
    g.set_output("h", g.add("add", v, "h"))
    return g.validate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluations", type=int, default=100_000)
    ap.add_argument("--architectures", type=int, default=1_000)
    ap.add_argument("--single", type=int, default=3_000, help="results recorded one per transaction (timed)")
    ap.add_argument("--db", default=None, help="database URL (default: a new SQLite file in a temp folder)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="rnnsearch-bench-")
    url = args.db or f"sqlite:///{os.path.join(folder, 'bench.db')}"
    store = Store(url)
    search = store.create_search(f"bench-{time.time_ns()}", {"bench": True}, 0)

    t0 = time.perf_counter()
    archs = [
        store.add_architecture(distinct_graph(i), "mutation", search_id=search.id)[0] for i in range(args.architectures)
    ]
    t_arch = time.perf_counter() - t0

    per_arch = max(1, args.evaluations // len(archs))
    items = [
        NewEvaluation(a.id, TASKS[k % 4], {"learning_rate": 0.1 * (k + 1), "init_scale": 1.0}, k, {"max_steps": 100})
        for a in archs
        for k in range(per_arch)
    ]
    t0 = time.perf_counter()
    evs = []
    for i in range(0, len(items), 5000):
        evs += store.create_evaluations(search.id, items[i : i + 5000])
    t_create = time.perf_counter() - t0

    def result(i: int, ev) -> EvalResult:
        return EvalResult(
            ev.request_id,
            "ok",
            val_accuracy=(i * 7919 % 1000) / 1000,
            test_accuracy=0.5,
            steps=100,
            wall_s=1.0,
            tokens_per_s=1e4,
        )

    single = evs[: args.single]
    t0 = time.perf_counter()
    for i, ev in enumerate(single):
        store.record_result(result(i, ev))
    t_single = time.perf_counter() - t0
    rest = evs[args.single :]
    t0 = time.perf_counter()
    for i in range(0, len(rest), 1000):
        store.record_results([result(args.single + i + j, ev) for j, ev in enumerate(rest[i : i + 1000])])
    t_batch = time.perf_counter() - t0

    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        scores = store.task_scores(search.id)
        times.append(time.perf_counter() - t0)
    known = []
    for i in range(0, len(archs), max(1, len(archs) // 50)):
        t0 = time.perf_counter()
        assert store.lookup(distinct_graph(i)) is not None
        known.append(time.perf_counter() - t0)

    print(f"database: {store.dialect}, {len(evs):,} evaluations over {len(archs):,} architectures")
    print(
        f"architectures added           {len(archs) / t_arch:10.0f} /s  (canonical hash and isomorphism check included)"
    )
    print(f"pending evaluations created   {len(evs) / t_create:10.0f} /s")
    print(
        f"results recorded, one by one  {len(single) / t_single:10.0f} /s  ({1000 * t_single / len(single):.2f} ms each)"
    )
    print(f"results recorded, batched     {len(rest) / max(t_batch, 1e-9):10.0f} /s")
    print(f"leaderboard query (task scores, {len(scores):,} rows)  median {1000 * statistics.median(times):.0f} ms")
    print(f"'is this graph known?'        median {1000 * statistics.median(known):.2f} ms")
    store.close()


if __name__ == "__main__":
    main()
