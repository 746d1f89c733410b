"""Training speed of compiled zoo graphs vs torch's native modules, in one run.

Forward + backward + SGD step of embedding -> cell layer -> softmax, hidden 200, batch 20,
unroll 35, a 50-symbol vocabulary (so the cell dominates), 2 threads. Prints tokens/s
for each and the ratio to the native module measured beside it. Rows: torch's module
("native"), the graph's generated Python step ("graph eager"), that step under
torch.compile ("graph compiled"), and the step with its reverse translated to C
("graph C loop", rnnsearch.cells.native), and the loop this machine chose by measurement
("chosen: ...", what evaluations use; rnnsearch.tasks.fastpath), with its ratio to the
faster of the two loops.

    python bench/cells.py [--hidden 200] [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.tasks.model import loop_for

# row label -> compile mode of the graph (None: torch's own module)
VARIANTS = {
    "native": None,
    "graph eager": "eager",
    "graph compiled": "torch",
    "graph C loop": "native",
    "graph chosen": "chosen",  # what evaluations use: the faster loop here (rnnsearch.tasks.fastpath)
}


class Model(nn.Module):
    def __init__(self, layer: nn.Module, vocab: int, n: int, native: bool):
        super().__init__()
        self.embed = nn.Embedding(vocab, n)
        self.layer = layer
        self.native = native
        self.out = nn.Linear(n, vocab)

    def forward(self, tokens, state):
        y, state = self.layer(self.embed(tokens), state)
        return self.out(y), state


def _detach(state):
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(_detach(s) for s in state)


def tokens_per_second(model: Model, state, vocab: int, steps: int, warmup: int, unroll: int, batch: int) -> float:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, vocab, (steps + warmup, unroll + 1, batch), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()

    def one(i, state):
        x, y = data[i, :-1], data[i, 1:]
        logits, state = model(x, state)
        loss = loss_fn(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return _detach(state)

    for i in range(warmup):
        state = one(i, state)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        state = one(i, state)
    return steps * unroll * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--unroll", type=int, default=35)
    ap.add_argument("--vocab", type=int, default=50)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=4, help="best of this many timed runs, alternating the variants")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, b = args.hidden, args.batch

    def zeros(k):
        return tuple(torch.zeros(b, n) for _ in range(k))

    natives = {
        "LSTM": lambda: (nn.LSTM(n, n), (torch.zeros(1, b, n), torch.zeros(1, b, n))),
        "GRU": lambda: (nn.GRU(n, n), torch.zeros(1, b, n)),
    }
    print(
        f"hidden {n}, batch {b}, unroll {args.unroll}, vocab {args.vocab}, {args.threads} threads, torch {torch.__version__}"
    )
    print(f"{'cell':6} {'variant':16} {'tokens/s':>10} {'vs native':>10}")
    for name, make_native in natives.items():
        setups = {}
        for variant, mode in VARIANTS.items():
            torch.manual_seed(0)
            if mode == "chosen":
                mode = loop_for(torch.device("cpu"), n, b)
                variant = f"chosen: {mode}"
            if mode is None:
                layer, state = make_native()
            else:
                layer = compile_cell(zoo.get(name), n, name=name, compile=mode)
                state = zeros(len(layer.cell.states))
            setups[variant] = (
                Model(layer, args.vocab, n, mode is None),
                state,
                args.warmup + (3 if mode == "torch" else 0),
            )
        # repeats alternate between the variants, so a noisy moment of a shared machine
        # does not fall on one of them only; each keeps its best
        runs = dict.fromkeys(setups, 0.0)
        for r in range(args.repeats):
            for variant, (model, state, warm) in setups.items():
                tps = tokens_per_second(model, state, args.vocab, args.steps, warm if r == 0 else 2, args.unroll, b)
                runs[variant] = max(runs[variant], tps)
        for variant, tps in runs.items():
            print(f"{name:6} {variant:16} {tps:10.0f} {tps / runs['native']:9.2f}x")
        chosen = next(v for v in runs if v.startswith("chosen"))
        faster = max(runs["graph eager"], runs["graph C loop"])
        print(f"{name:6} chosen loop vs the faster loop: {runs[chosen] / faster:.2f}x")


if __name__ == "__main__":
    main()
