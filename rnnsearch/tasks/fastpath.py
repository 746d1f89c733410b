"""The model's fast paths on this machine, chosen by measurement (rnnsearch.cells.planner).

Two questions, each asked once per machine and shape class:
- ``loop``: a layer's time loop on the CPU, the C loop (``native``; where gemm.c's kernel
  runs, also ``native-blas``, the loop with BLAS's multiplies; where it does not, with
  several threads, also ``native-split``: the threads split each step's rows and one of
  them multiplies, where ``native`` leaves the threads to BLAS's multiplies) or the Python
  step (``eager``); timed on the LSTM (a representative cell: four gates, one loop product)
  at the class's width and batch, 20 steps forward and backward;
- ``softmax``: the model's softmax through gemm.c's kernel (``gemm``) or torch's matmul
  (``torch``); timed forward and backward at the class's width, vocabulary and rows.
  Only asked where gemm.c's kernel runs (AVX-512).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from rnnsearch.cells.cbuild import NativeUnavailable
from rnnsearch.cells.planner import Decision, bucket, planner

_STEPS = 20  # time steps a loop measurement runs (the cost per step is what differs)


def loop_decision(n: int, batch: int) -> Decision:
    """The C loop or the Python step, for layers of width ``n`` at ``batch`` rows; where
    gemm.c's kernel runs (AVX-512), also the C loop with BLAS's multiplies (native-blas)."""
    from rnnsearch.cells.matmul import available

    N, B = bucket(n), bucket(batch)
    modes = ["native", "eager"] if _native_builds() else ["eager"]
    if "native" in modes and available():
        modes.insert(1, "native-blas")
    elif "native" in modes and torch.get_num_threads() > 1:
        modes.insert(1, "native-split")  # how threads split a step: the multiplies or the rows
    candidates = {m: (lambda m=m: _loop_run(m, N, B)) for m in modes}
    return planner().choose("loop", f"n{N}-b{B}", candidates)


def softmax_decision(n: int, vocab: int, rows: int) -> Decision:
    """gemm.c's kernel or torch's matmul for a softmax of ``vocab`` words over width ``n``."""
    from rnnsearch.cells.matmul import available

    N, V, R = bucket(n), bucket(vocab), bucket(rows)
    candidates = {"torch": lambda: _softmax_run(False, N, V, R)}
    if available():
        candidates["gemm"] = lambda: _softmax_run(True, N, V, R)
    return planner().choose("softmax", f"n{N}-v{V}-r{R}", candidates)


def products_scope(decision: Decision):
    """The scope (a context manager factory) the softmax runs in under ``decision``."""
    from rnnsearch.cells.matmul import fast_products

    return fast_products if decision.chosen == "gemm" else contextlib.nullcontext


@functools.cache
def _native_builds() -> bool:
    """Whether the C loop builds here: asked by every loop decision, answered once."""
    from rnnsearch.cells import zoo
    from rnnsearch.cells.compiler import compile_cell

    try:
        compile_cell(zoo.get("LSTM"), 8, compile="native")
        return True
    except NativeUnavailable:
        return False


def _loop_run(mode: str, n: int, batch: int):
    from rnnsearch.cells import zoo
    from rnnsearch.cells.compiler import compile_cell

    gen = torch.Generator().manual_seed(0)
    layer = compile_cell(zoo.get("LSTM"), n, compile=mode)
    x = torch.randn(_STEPS, batch, n, generator=gen).requires_grad_(True)
    state = tuple(torch.zeros(batch, n) for _ in range(2))

    def run():
        out, _ = layer(x, state)
        out.sum().backward()

    run.mode = mode  # what a cost model (tests) tells the candidates apart by
    return run


def _softmax_run(gemm: bool, n: int, vocab: int, rows: int):
    from rnnsearch.cells.matmul import fast_products

    gen = torch.Generator().manual_seed(0)
    linear = nn.Linear(n, vocab)
    y = torch.randn(rows, n, generator=gen).requires_grad_(True)
    scope = fast_products if gemm else contextlib.nullcontext

    def run():
        with scope():
            out = linear(y)
        out.sum().backward()

    run.mode = "gemm" if gemm else "torch"
    return run
