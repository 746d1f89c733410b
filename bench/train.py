"""Training speed of the PTB model with the compiled LSTM graph vs the same model with
torch.nn.LSTM, in one run: embedding 10k -> n, L layers, softmax over 10k words, batch 20,
unroll 35, the real PTB training stream, the trainer's own SGD step. Graph rows: the
generated Python step, the native C loop, and the model evaluations use here (the loop
and the softmax this machine chose by measurement, rnnsearch.tasks.fastpath; the name
says which). Where gemm.c's kernel runs (AVX-512), "torch.nn.LSTM, softmax by gemm.c"
is torch's model with that softmax. The last lines compare the evaluations' model with
the better torch model and with the faster of the two graph loops.

    python bench/train.py [--hidden 200] [--layers 2] [--steps 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch import nn

from rnnsearch.cells import zoo
from rnnsearch.cells.matmul import available, fast_products
from rnnsearch.tasks.fastpath import softmax_decision
from rnnsearch.tasks.model import CellModel, loop_for
from rnnsearch.tasks.registry import get_task
from rnnsearch.tasks.train import sgd_step


class NativeLSTMModel(nn.Module):
    """The same model with torch.nn.LSTM in place of the compiled cell layers."""

    def __init__(self, hidden: int, layers: int, vocab: int):
        super().__init__()
        self.hidden, self.nlayers = hidden, layers
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, layers)
        self.softmax = nn.Linear(hidden, vocab)

    def initial_state(self, batch: int, device=None, dtype=None):
        z = torch.zeros(self.nlayers, batch, self.hidden, device=device)
        return [(z, z.clone())]

    def forward(self, tokens, state):
        y, (h, c) = self.rnn(self.embed(tokens), state[0])
        with self.products():
            return self.softmax(y), [(h, c)]

    products = contextlib.nullcontext


def measure(model, batches, steps: int, warmup: int) -> float:
    state = None
    for b in batches[:warmup]:
        state = model.initial_state(b.inputs.shape[1]) if state is None else state
        _, state = sgd_step(model, b, state, 1.0, 5.0)
    t0 = time.perf_counter()
    tokens = 0
    for b in batches[warmup : warmup + steps]:
        _, state = sgd_step(model, b, state, 1.0, 5.0)
        tokens += b.inputs.numel()
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timed runs, alternating the two")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("ptb")
    batches = task.eval_batches("train", 0, 20, 35, limit=args.warmup + args.steps)
    V = task.vocab_size
    torch.manual_seed(0)
    kernel_softmax = NativeLSTMModel(args.hidden, args.layers, V)
    kernel_softmax.products = fast_products
    chosen_loop = loop_for(torch.device("cpu"), args.hidden, 20)
    chosen_softmax = softmax_decision(args.hidden, V, 20 * 35).chosen

    def graph(mode):
        model = CellModel(zoo.get("LSTM"), args.hidden, args.layers, V, name="LSTM", compile=mode)
        return model

    models = {"torch.nn.LSTM": NativeLSTMModel(args.hidden, args.layers, V)}
    if available():
        models["torch.nn.LSTM, softmax by gemm.c"] = kernel_softmax
    models["LSTM graph, Python step"] = graph("eager")
    models["LSTM graph, C loop"] = graph("native")
    evaluation = f"evaluations' model ({chosen_loop} loop, {chosen_softmax} softmax)"
    models[evaluation] = graph(chosen_loop)
    best = {k: 0.0 for k in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            best[name] = max(best[name], measure(model, batches, args.steps, args.warmup))
    print(
        f"PTB model: vocab {V}, hidden {args.hidden}, {args.layers} layers, batch 20, unroll 35, {args.threads} threads"
    )
    if not available():
        print("(no 'softmax by gemm.c' row: gemm.c's kernel needs AVX-512, which this CPU lacks)")
    ref = best["torch.nn.LSTM"]
    for name, tps in best.items():
        print(f"{name:52} {tps:10.0f} tokens/s {tps / ref:6.2f}x")
    torch_best = max(v for k, v in best.items() if k.startswith("torch.nn.LSTM"))
    loops_best = max(best["LSTM graph, Python step"], best["LSTM graph, C loop"])
    print(f"evaluations' model vs the better torch model: {best[evaluation] / torch_best:.2f}x")
    print(f"evaluations' model vs the faster graph loop: {best[evaluation] / loops_best:.2f}x")


if __name__ == "__main__":
    main()
