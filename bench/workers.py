"""8 identical short evaluations: LocalRunner one after another vs RayRunner with 2 workers
(1 CPU and 1 torch thread each), in one run. Prints the speed-up and Ray's overhead per
evaluation (wall time x workers minus the training time the workers report, per
evaluation), with cold workers (first batch: processes start and import torch) and warm.

    python bench/workers.py [--evaluations 8] [--steps 800] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from rnnsearch.cells import zoo
from rnnsearch.tasks.api import EvalRequest, HParams
from rnnsearch.tasks.presets import get_preset
from rnnsearch.workers import LocalRunner, RayRunner, init_ray


def requests(n: int, steps: int, tag: str) -> list[EvalRequest]:
    tp = get_preset("laptop").task("memorize")
    budget = dataclasses.replace(tp.budget, max_steps=steps, eval_every=steps)
    hp = HParams(learning_rate=0.5, param_budget=tp.param_budget)
    graph = zoo.get("LSTM").to_json()
    return [EvalRequest(graph, "memorize", hp, 0, budget, tp.options, f"{tag}{i}", threads=1) for i in range(n)]


def run(runner, reqs) -> tuple[float, list]:
    t0 = time.perf_counter()
    for r in reqs:
        runner.submit(r)
    results = []
    while len(results) < len(reqs):
        results += runner.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"evaluation failed: {bad[0].error}")
    return elapsed, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluations", type=int, default=8)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n = args.evaluations

    local_s, local_results = run(LocalRunner(), requests(n, args.steps, "local"))
    t0 = time.perf_counter()
    init_ray(num_cpus=args.workers)
    ray_init_s = time.perf_counter() - t0
    runner = RayRunner(cpus_per_eval=1, batch_members=False)  # one evaluation per task: Ray itself is measured
    cold_s, cold = run(runner, requests(n, args.steps, "cold"))
    warm_s, warm = run(runner, requests(n, args.steps, "warm"))
    runner.shutdown()

    def overhead_ms(elapsed: float, results) -> float:
        return 1000 * (elapsed * args.workers - sum(r.wall_s for r in results)) / len(results)

    per_eval = sum(r.wall_s for r in local_results) / n
    print(f"{n} evaluations of LSTM on memorize, {args.steps} steps each (~{per_eval:.2f}s of training each)")
    print(f"LocalRunner, one after another   {local_s:7.2f} s")
    print(f"ray.init (once)                  {ray_init_s:7.2f} s")
    print(
        f"RayRunner, {args.workers} workers, cold       {cold_s:7.2f} s   speed-up {local_s / cold_s:5.2f}x   overhead {overhead_ms(cold_s, cold):6.0f} ms/evaluation"
    )
    print(
        f"RayRunner, {args.workers} workers, warm       {warm_s:7.2f} s   speed-up {local_s / warm_s:5.2f}x   overhead {overhead_ms(warm_s, warm):6.0f} ms/evaluation"
    )


if __name__ == "__main__":
    main()
