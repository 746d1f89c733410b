"""Denormal floats: one hopeless PTB setting trained with them kept, then flushed to zero.

The setting is the one a laptop search (seed 11) gave the LSTM: learning rate 5, init
scale 2, gradient norm 10, one layer. Its gates saturate, and the values that a
saturated sigmoid or tanh passes on are denormal floats; on CPUs that take a microcode
assist for them (many Intel cores) every operation on such a value costs ~100 cycles. The
two runs start from the same weights and compute the same numbers; the ratio is the
speed that flushing denormals (what ``evaluate`` does) gains on this machine.

    python bench/denormals.py [--steps 120] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from rnnsearch.cells import zoo
from rnnsearch.tasks.model import CellModel, loop_for, width_for
from rnnsearch.tasks.presets import get_preset
from rnnsearch.tasks.registry import get_task
from rnnsearch.tasks.train import sgd_step

SEED, LR, INIT, NORM = 220774541, 5.0, 2.0, 10.0


def run(flush: bool, steps: int) -> tuple[float, float]:
    """(training tokens per second, final summed loss) for ``steps`` steps."""
    tp = get_preset("laptop").task("ptb")
    task = get_task("ptb", **dict(tp.options))
    graph = zoo.get("LSTM")
    n = width_for(graph, tp.param_budget, 1, task.vocab_size)
    torch.manual_seed(SEED)
    model = CellModel(graph, n, 1, task.vocab_size, compile=loop_for(torch.device("cpu")))
    model.reset_parameters(INIT, torch.Generator().manual_seed(SEED))
    batches = task.train_batches(SEED, tp.batch_size, tp.unroll)
    torch.set_flush_denormal(flush)
    try:
        state, tokens, loss = None, 0, 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            batch = next(batches)
            if state is None or batch.reset:
                state = model.initial_state(batch.inputs.shape[1])
            loss, state = sgd_step(model, batch, state, LR, NORM)
            tokens += batch.inputs.numel()
        return tokens / (time.perf_counter() - t0), loss
    finally:
        torch.set_flush_denormal(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"LSTM on PTB, lr {LR:g}, init {INIT:g}, norm {NORM:g}, 1 layer, {args.steps} steps, {args.threads} thread(s)"
    )
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    kept, loss_kept = run(False, args.steps)
    flushed, loss_flushed = run(True, args.steps)
    print(f"denormals kept       {kept:8,.0f} tokens/s   1.00x   (last loss {loss_kept:.1f})")
    print(f"denormals flushed    {flushed:8,.0f} tokens/s   {flushed / kept:.2f}x   (last loss {loss_flushed:.1f})")


if __name__ == "__main__":
    main()
