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

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)


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


__all__ = ["CudaCapturer", "GraphedStep", "LENGTH_BUCKETS", "PlainCapturer", "bucket_length"]
