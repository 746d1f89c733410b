"""The GPU path, for the day a GPU machine is lent: one script, well under 10 minutes on one GPU.

1. Correctness on the device: the compiled LSTM and GRU equal torch.nn.LSTM / nn.GRU with
   copied weights (outputs and gradients), and the member-batched layer equals K single ones.
2. Training tokens/s of one layer + softmax (hidden 200, batch 20, unroll 35, a 10k-word
   softmax), each row against torch.nn.LSTM (cuDNN) measured in the same run: the Python
   step; the step under CUDA graphs (the whole training step recorded once, replayed);
   member-batched at K = 1, 8, 32, 128, without and with graphs (tokens of all members).
3. The largest K of member-batched 200-unit LSTMs (with their softmax) that fits in memory.
4. A smoke search on a local Ray with --gpus-per-eval 0.25: evaluations done and how busy
   the four GPU slots were (the evaluations' training time over the slots' wall time).

On a machine without CUDA it runs what it can on the CPU at small sizes and names every
row it skipped; ``--dry-run`` is that at the smallest sizes (seconds; a test runs it).

    python bench/gpu.py [--dry-run] [--hidden 200] [--steps 40] [--ks 1,8,32,128] [--no-search]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell, compile_members
from rnnsearch.cells.twins import copy_from_torch
from rnnsearch.tasks.graphed import CudaCapturer, GraphedStep, PlainCapturer


def check_twins(device: torch.device, n: int) -> list[str]:
    out = []
    for name, twin in (("LSTM", nn.LSTM), ("GRU", nn.GRU)):
        torch.manual_seed(0)
        ref = twin(n, n).to(device)
        layer = compile_cell(zoo.get(name), n, name=name, device=device)
        copy_from_torch(layer, ref)
        x = torch.randn(7, 5, n, device=device)
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        states = tuple(torch.randn(5, n, device=device) * 0.5 for _ in layer.cell.states)
        y, _ = layer(xa, states)
        ry, _ = ref(xb, tuple(s[None] for s in states) if name == "LSTM" else states[0][None])
        w = torch.randn_like(y)
        (y * w).sum().backward()
        (ry * w).sum().backward()
        err = (y - ry).abs().max().item()
        gerr = (xa.grad - xb.grad).abs().max().item()
        ok = err < 1e-4 and gerr < 1e-4
        out.append(
            f"{name} = torch.nn.{name} (copied weights): {'ok' if ok else 'FAILED'} "
            f"(max |dy| {err:.1e}, max |dx grad| {gerr:.1e})"
        )
    K = 3
    torch.manual_seed(1)
    members = compile_members(zoo.get("LSTM"), n, K, device=device)
    x = torch.randn(K, 6, 4, n, device=device)
    y, _ = members(x)
    worst = 0.0
    for k in range(K):
        single = compile_cell(zoo.get("LSTM"), n, device=device)
        with torch.no_grad():
            for p_single, p_members in zip(single.parameters(), members.parameters(), strict=True):
                p_single.copy_(p_members[k])
        ys, _ = single(x[k])
        worst = max(worst, (ys - y[k]).abs().max().item())
    out.append(
        f"member-batched (K={K}) = {K} single layers: {'ok' if worst < 1e-5 else 'FAILED'} (max |dy| {worst:.1e})"
    )
    return out


class Bench(nn.Module):
    """One layer and a softmax, K members (K = 0: a single model; torch: nn.LSTM)."""

    def __init__(self, n: int, vocab: int, device, kind: str, K: int = 0):
        super().__init__()
        self.kind, self.K = kind, K
        if kind == "torch":
            self.layer = nn.LSTM(n, n)
        elif K:
            self.layer = compile_members(zoo.get("LSTM"), n, K)
        else:
            self.layer = compile_cell(zoo.get("LSTM"), n)
        shape = (K,) if K else ()
        self.embed = nn.Parameter(torch.randn(*shape, vocab, n) * 0.1)
        self.out = nn.Parameter(torch.randn(*shape, vocab, n) * 0.1)
        self.to(device)

    def loss(self, tokens, targets):
        if self.K:  # [K, T, B]
            x = torch.stack([self.embed[k][tokens[k]] for k in range(self.K)])
            y, _ = self.layer(x)
            logits = torch.einsum("ktbn,kvn->ktbv", y, self.out)
        else:
            y, _ = self.layer(self.embed[tokens])
            logits = y @ self.out.t()
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train_step(model: Bench, lr: torch.Tensor):
    params = list(model.parameters())

    def step(tokens, targets):
        loss = model.loss(tokens, targets)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_add_(params, torch._foreach_mul(grads, -lr))
        return loss.detach()

    return step


def tokens_per_second(model: Bench, device, vocab, T, B, steps, graphs: bool) -> float:
    lead = (model.K,) if model.K else ()
    gen = torch.Generator(device="cpu").manual_seed(0)
    data = [torch.randint(0, vocab, (*lead, T + 1, B), generator=gen).to(device) for _ in range(4)]
    lr = torch.tensor(0.1, device=device)
    step = train_step(model, lr)
    if graphs:
        step = GraphedStep(step, CudaCapturer() if device.type == "cuda" else PlainCapturer())
    for i in range(4):  # warm-up (and, with graphs, the capture)
        step(data[i][..., :-1, :], data[i][..., 1:, :])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        d = data[i % 4]
        step(d[..., :-1, :], d[..., 1:, :])
    sync()
    return steps * T * B * max(1, model.K) / (time.perf_counter() - t0)


def largest_k(device, n: int, vocab: int, T: int, B: int) -> int:
    def fits(K: int) -> bool:
        try:
            model = Bench(n, vocab, device, "graph", K)
            tokens = torch.randint(0, vocab, (K, T + 1, B), device=device)
            model.loss(tokens[:, :-1], tokens[:, 1:]).backward()
            del model
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 65536:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def smoke_search() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/gpu.db"
        cmd = [sys.executable, "-m", "rnnsearch.cli", "launch", "--name", "gpu", "--preset", "smoke"]
        cmd += ["--db", db, "--gpus-per-eval", "0.25", "--budget", "architectures=8"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            return [f"smoke search FAILED (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}"]
        from rnnsearch.db import Store

        store = Store(db)
        search = store.get_search("gpu")
        evals = [e for e in store.evaluations(search.id) if e.status in ("ok", "diverged")]
        busy = sum(dict(e.extras).get("train_seconds", 0.0) for e in evals)
        return [
            f"smoke search, --gpus-per-eval 0.25: {len(evals)} evaluations in {wall:.0f} s; "
            f"4 GPU slots busy {100 * busy / (4 * wall):.0f}% of the time"
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the smallest sizes, CPU rows only where no CUDA")
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ks", default="1,8,32,128")
    ap.add_argument("--no-search", action="store_true", help="skip the Ray smoke search")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    n, vocab, T, B, steps = args.hidden, 10000, 35, 20, args.steps
    ks = [int(k) for k in args.ks.split(",")]
    if args.dry_run or not cuda:
        n, vocab, T, B, steps, ks = (16, 50, 5, 4, 2, [1, 2]) if args.dry_run else (n, vocab, T, B, 5, ks[:2])
    name = torch.cuda.get_device_name(0) if cuda else "no CUDA: the CPU, at small sizes"
    print(f"device {device} ({name}); hidden {n}, batch {B}, unroll {T}, vocab {vocab}, torch {torch.__version__}")
    skipped = []
    checks = check_twins(device, n)
    for line in checks:
        print(line)
    ref = tokens_per_second(Bench(n, vocab, device, "torch"), device, vocab, T, B, steps, False)
    label = "torch.nn.LSTM (cuDNN)" if cuda else "torch.nn.LSTM"
    rows = [(label, ref)]
    rows.append(("Python step", tokens_per_second(Bench(n, vocab, device, "graph"), device, vocab, T, B, steps, False)))
    if cuda:
        rows.append(
            (
                "step under CUDA graphs",
                tokens_per_second(Bench(n, vocab, device, "graph"), device, vocab, T, B, steps, True),
            )
        )
    else:
        skipped.append("step under CUDA graphs")
    for K in ks:
        model = Bench(n, vocab, device, "graph", K)
        rows.append((f"member-batched K={K}", tokens_per_second(model, device, vocab, T, B, steps, False)))
        if cuda:
            rows.append(
                (f"member-batched K={K}, CUDA graphs", tokens_per_second(model, device, vocab, T, B, steps, True))
            )
        else:
            skipped.append(f"member-batched K={K}, CUDA graphs")
    for label, tps in rows:
        print(f"{label:40} {tps:12.0f} tokens/s {tps / ref:7.2f}x")
    if cuda:
        print(f"largest K of 200-unit LSTMs that fits: {largest_k(device, 200, 10000, 35, 20)}")
    else:
        skipped.append("largest K that fits")
    if cuda and not args.no_search:
        for line in smoke_search():
            print(line)
    else:
        skipped.append("smoke search with --gpus-per-eval 0.25" + ("" if cuda else " (needs a GPU for Ray to place)"))
    if skipped:
        print(f"skipped ({'no CUDA' if not cuda else 'asked'}): {'; '.join(skipped)}")
    if any("FAILED" in line for line in checks):
        sys.exit("a correctness check FAILED (above)")


if __name__ == "__main__":
    main()
