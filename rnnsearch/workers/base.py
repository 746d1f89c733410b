"""The runner interface: submit requests, take results as they complete."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import replace

from rnnsearch.tasks.api import FAILED, EvalRequest, EvalResult

EvaluateFn = Callable[[EvalRequest], EvalResult]


def default_evaluate(request: EvalRequest) -> EvalResult:
    from rnnsearch.tasks.train import evaluate

    return evaluate(request)


def default_evaluate_group(requests: list[EvalRequest]) -> list[EvalResult]:
    from rnnsearch.tasks.batched import evaluate_group

    return evaluate_group(requests)


MAX_GROUP = 20  # settings trained together at most (the paper's settings per task)


def take_group(waiting: list[EvalRequest], max_group: int) -> list[EvalRequest]:
    """Remove and return the first waiting request and up to ``max_group - 1`` more that
    can train with it as one model (same cell, task, sizes and budget)."""
    from rnnsearch.tasks.batched import group_key

    first = waiting.pop(0)
    group, key = [first], group_key(first)
    i = 0
    while i < len(waiting) and len(group) < max_group:
        if group_key(waiting[i]) == key:
            group.append(waiting.pop(i))
        else:
            i += 1
    return group


def failed(request: EvalRequest, error: str, wall_s: float = 0.0, worker: str = "") -> EvalResult:
    return EvalResult(request.request_id, FAILED, error=error, wall_s=wall_s, worker=worker)


class Runner(abc.ABC):
    """Where evaluations run. Submit as many requests as you like; ``wait`` returns
    finished results in the order they finished. A runner never raises because an
    evaluation went wrong: that comes back as a ``failed`` result."""

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many evaluations can run at once (keep this many in flight)."""

    @abc.abstractmethod
    def submit(self, request: EvalRequest) -> None: ...

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        """Results finished since the last call; blocks up to ``timeout`` seconds for at
        least one when there is work in flight (returns [] when there is none)."""

    @abc.abstractmethod
    def cancel(self, request_id: str) -> bool: ...

    @abc.abstractmethod
    def in_flight(self) -> int:
        """Submitted and not yet returned by ``wait``."""

    def withdraw(self) -> list[EvalRequest]:
        """Take back the submitted requests that have not started (no result comes for them)."""
        return []

    def shutdown(self) -> None:  # noqa: B027 - optional for runners without resources
        pass

    def busy_fraction(self) -> float:
        """Fraction of capacity x wall time spent evaluating since the runner started."""
        return 0.0

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class LocalRunner(Runner):
    """In-process and serial, for tests and debugging: ``wait`` runs the next request.

    The time limit is the request's own ``budget.max_seconds`` (training stops itself);
    a crash of the process is a crash of the caller."""

    def __init__(self, evaluate_fn: EvaluateFn | None = None, threads: int | None = 1, batch_members: bool = False):
        self.evaluate_fn = evaluate_fn or default_evaluate
        self.threads = threads  # one thread by default: results then repeat exactly
        self.batch_members = batch_members and evaluate_fn is None
        self.queue: list[EvalRequest] = []
        self._cancelled: list[EvalResult] = []
        self._started = time.perf_counter()
        self._busy = 0.0

    @property
    def capacity(self) -> int:
        return MAX_GROUP if self.batch_members else 1

    def submit(self, request: EvalRequest) -> None:
        if request.threads is None and self.threads:
            request = replace(request, threads=self.threads)
        self.queue.append(request)

    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        if self._cancelled:
            out, self._cancelled = self._cancelled, []
            return out
        if not self.queue:
            return []
        t0 = time.perf_counter()
        if self.batch_members:
            group = take_group(self.queue, MAX_GROUP)
            results = default_evaluate_group(group)
        else:
            request = self.queue.pop(0)
            try:
                results = [self.evaluate_fn(request)]
            except Exception as e:  # evaluate never raises; a custom evaluate_fn might
                results = [failed(request, f"{type(e).__name__}: {e}")]
        self._busy += time.perf_counter() - t0
        return results

    def cancel(self, request_id: str) -> bool:
        for r in self.queue:
            if r.request_id == request_id:
                self.queue.remove(r)
                self._cancelled.append(failed(r, "cancelled"))  # every submitted request gets a result
                return True
        return False

    def in_flight(self) -> int:
        return len(self.queue) + len(self._cancelled)

    def withdraw(self) -> list[EvalRequest]:
        taken, self.queue = self.queue, []
        return taken

    def busy_fraction(self) -> float:
        return self._busy / max(time.perf_counter() - self._started, 1e-9)
