"""A training step captured once as a CUDA graph and replayed for inputs of the same shapes.

On a GPU the Python step pays one kernel launch per op per time step; at batch 20 and
n = 200 the device waits on the launches. A CUDA graph records a whole step (forward,
backward, the update) once and replays it as one launch. A graph reads and writes fixed
memory, so :class:`GraphedStep` copies each call's inputs into static buffers and returns
the graph's static outputs; it keeps one graph per input shape (a few: pad variable
lengths with :func:`bucket_length`) and runs the step plainly beyond ``max_graphs``.

Every call is one real step: the first ``warmup`` calls of a shape run the step plainly
(on a side stream, as capture needs), the next records it and replays the record once.
The recording is behind :class:`Capturer`: :class:`CudaCapturer` (``torch.cuda.CUDAGraph``)
on a GPU, :class:`PlainCapturer` (no recording: the step itself) where there is none,
which is what the tests exercise on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)
# RNNSEARCH_GRAPHS: off, CUDA graphs on a GPU, or the same logic without recording
GRAPH_MODES = ("0", "1", "plain")


def bucket_length(length: int, buckets: Sequence[int] = LENGTH_BUCKETS) -> int:
    """The smallest bucket at or above ``length`` (the length itself beyond the last)."""
    return next((b for b in buckets if b >= length), length)


class Capturer(Protocol):
    def warm(self, step: Callable[[], object]) -> object:
        """Run ``step`` once, as a capture will need it run before (a side stream)."""

    def capture(self, step: Callable[[], object]) -> tuple[Callable[[], None], object]:
        """Record ``step`` (running nothing on a GPU); returns (replay, the outputs replay refreshes)."""


class PlainCapturer:
    """No recording: replay runs the step. Counts what a GPU capturer would do."""

    def __init__(self) -> None:
        self.captures = 0
        self.warmups = 0

    def warm(self, step):
        self.warmups += 1
        return step()

    def capture(self, step):
        self.captures += 1
        box: list = [None]

        def replay() -> None:
            box[0] = step()

        return replay, box


class CudaCapturer:
    """``torch.cuda.CUDAGraph`` capture, the warm-up on a side stream as torch requires."""

    def __init__(self, pool=None) -> None:
        self.stream = torch.cuda.Stream()
        self.pool = pool if pool is not None else torch.cuda.graph_pool_handle()

    def warm(self, step):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = step()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, step):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = step()
        box = [out]
        return graph.replay, box


class GraphedStep:
    """``step(*tensors) -> outputs`` with one recorded graph per input shape."""

    def __init__(self, fn: Callable[..., object], capturer: Capturer, warmup: int = 3, max_graphs: int = 8):
        self.fn = fn
        self.capturer = capturer
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.graphs: dict[tuple, tuple[list[torch.Tensor], Callable[[], None], list]] = {}
        self.seen: dict[tuple, int] = {}
        self.plain_calls = 0  # steps run without a graph (warm-up, or too many shapes)

    def __call__(self, *inputs: torch.Tensor):
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self.graphs.get(key)
        if entry is None:
            calls = self.seen.get(key, 0)
            self.seen[key] = calls + 1
            if calls < self.warmup or len(self.graphs) >= self.max_graphs:
                self.plain_calls += 1
                return self.capturer.warm(lambda: self.fn(*inputs))
            static = [t.detach().clone() for t in inputs]
            replay, box = self.capturer.capture(lambda: self.fn(*static))
            entry = self.graphs[key] = (static, replay, box)
        static, replay, box = entry
        for buf, t in zip(static, inputs, strict=True):
            buf.copy_(t)
        replay()
        return box[0]


def pad_to_bucket(batch, buckets: Sequence[int] = LENGTH_BUCKETS):
    """An independent batch (the state starts at zero) padded at its end to the next bucket
    length, with masked-out targets (what encoding already pads a batch's short rows
    with), so a few graphs serve every length."""
    from rnnsearch.tasks.base import Batch

    T = batch.inputs.shape[0]
    extra = bucket_length(T, buckets) - T
    if extra == 0:
        return batch

    def pad(t):
        return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))])

    masks = {k: pad(v) for k, v in batch.extra_masks.items()}
    return Batch(pad(batch.inputs), pad(batch.targets), pad(batch.mask), batch.reset, masks)


class GraphedSGD:
    """The trainer's SGD step (``rnnsearch.tasks.train.sgd_step``: summed loss over the batch
    size, gradient norm clipped, plain SGD) as one recorded graph per batch shape. The rate
    and the clipping norm are tensors the graph reads, so a halved rate needs no new
    graph. The loss is read once per step (as ``sgd_step`` does); a non-finite one raises
    ``Diverged`` after the update (the run ends there either way)."""

    def __init__(self, model, capturer: Capturer, warmup: int = 3, max_graphs: int = 8):
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        device = self.params[0].device
        self.lr = torch.zeros((), device=device)
        self.max_norm = torch.zeros((), device=device)
        self.graphed = GraphedStep(self._step, capturer, warmup, max_graphs)

    def _step(self, inputs, targets, mask, *flat_state):
        from rnnsearch.tasks.base import Batch
        from rnnsearch.tasks.train import _masked_loss_sum

        state = _unflatten(flat_state, self.model)
        logits, new = self.model(inputs, state)
        loss_sum = _masked_loss_sum(logits, Batch(inputs, targets, mask, False))
        grads = torch.autograd.grad(loss_sum / inputs.shape[1], self.params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads, strict=True)]
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            coef = torch.clamp(self.max_norm / (norm + 1e-6), max=1.0)  # clip_grad_norm_'s rule
            torch._foreach_add_(self.params, torch._foreach_mul(grads, -self.lr * coef))
        return (loss_sum.detach(), *[t.detach() for s in new for t in s])

    def __call__(self, batch, state, lr: float, max_norm: float):
        from rnnsearch.tasks.train import Diverged

        self.lr.fill_(lr)
        self.max_norm.fill_(max_norm)
        out = self.graphed(batch.inputs, batch.targets, batch.mask, *[t for s in state for t in s])
        loss_sum = float(out[0])
        if not math.isfinite(loss_sum):
            raise Diverged
        return loss_sum, _unflatten(out[1:], self.model)


def _unflatten(flat, model) -> list[tuple[torch.Tensor, ...]]:
    out, i = [], 0
    for layer in model.layers:
        k = len(layer.cell.states)
        out.append(tuple(flat[i : i + k]))
        i += k
    return out


__all__ = [
    "CudaCapturer",
    "GraphedSGD",
    "GraphedStep",
    "LENGTH_BUCKETS",
    "PlainCapturer",
    "bucket_length",
    "pad_to_bucket",
]
