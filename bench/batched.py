"""K hyperparameter settings of a cell trained as one member-batched model vs the same K
settings trained one after another, in one run: GRU and MUT1 at n = 128 on `arithmetic`,
K = 1, 5, 20, plain SGD with each setting's own rate, clipping and schedule.

Prints training tokens per second (all settings together) and the speed-up.

    python bench/batched.py [--steps 60] [--threads 2] [--device cpu|cuda] [--ks 1,5,20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnnsearch.cells import zoo
from rnnsearch.tasks import hparams
from rnnsearch.tasks.api import Budget, EvalRequest
from rnnsearch.tasks.batched import evaluate_group
from rnnsearch.tasks.model import model_parameter_count
from rnnsearch.tasks.registry import get_task
from rnnsearch.tasks.train import evaluate


def requests(cell: str, k: int, steps: int, n: int, device: str, threads: int) -> list[EvalRequest]:
    graph = zoo.get(cell)
    vocab = get_task("arithmetic").vocab_size
    budget_params = model_parameter_count(graph, n, 1, vocab)  # the width is exactly n
    rng = np.random.default_rng(0)
    budget = Budget(max_steps=steps, max_seconds=3600, eval_every=steps, eval_batches=1)
    out = []
    for i in range(k):
        hp = hparams.sample(rng, budget_params, max_layers=1)
        out.append(EvalRequest(graph.to_json(), "arithmetic", hp, i, budget, (), f"{cell}-{i}", device, threads))
    return out


def tokens_per_second(results) -> float:
    extras = [dict(r.extras) for r in results]
    return sum(e["train_tokens"] for e in extras) / sum({e["train_seconds"] for e in extras})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ks", default="1,5,20")
    ap.add_argument("--cells", default="GRU,MUT1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    print(
        f"arithmetic, n = {args.hidden}, batch 20, {args.steps} steps per setting, {args.threads} threads, device {args.device}"
    )
    print(
        f"{'cell':5} {'K':>3} {'one after another':>18} {'batched':>12} {'speed-up':>9}   (training tokens/s, all settings)"
    )
    for cell in args.cells.split(","):
        for k in ks:
            reqs = requests(cell, k, args.steps, args.hidden, args.device, args.threads)
            evaluate(reqs[0])  # warm: data generation and allocator
            t0 = time.perf_counter()
            alone = [evaluate(r) for r in reqs]
            t_alone = time.perf_counter() - t0
            t0 = time.perf_counter()
            grouped = evaluate_group(reqs)
            t_group = time.perf_counter() - t0
            bad = [r.error for r in alone + grouped if r.status == "failed"]
            if bad:
                raise SystemExit(bad[0])
            a, b = tokens_per_second(alone), tokens_per_second(grouped) if k > 1 else tokens_per_second(alone)
            print(f"{cell:5} {k:>3} {a:>18,.0f} {b:>12,.0f} {b / a:>8.2f}x   (wall {t_alone:.1f}s vs {t_group:.1f}s)")


if __name__ == "__main__":
    main()
