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

    def __init__(self, evaluate_fn: EvaluateFn | None = None, threads: int | None = 1):
        self.evaluate_fn = evaluate_fn or default_evaluate
        self.threads = threads  # one thread by default: results then repeat exactly
        self.queue: list[EvalRequest] = []
        self._started = time.perf_counter()
        self._busy = 0.0

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, request: EvalRequest) -> None:
        if request.threads is None and self.threads:
            request = replace(request, threads=self.threads)
        self.queue.append(request)

    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        if not self.queue:
            return []
        request = self.queue.pop(0)
        t0 = time.perf_counter()
        try:
            result = self.evaluate_fn(request)
        except Exception as e:  # evaluate never raises; a custom evaluate_fn might
            result = failed(request, f"{type(e).__name__}: {e}")
        self._busy += time.perf_counter() - t0
        return [result]

    def cancel(self, request_id: str) -> bool:
        before = len(self.queue)
        self.queue = [r for r in self.queue if r.request_id != request_id]
        return len(self.queue) < before

    def in_flight(self) -> int:
        return len(self.queue)

    def busy_fraction(self) -> float:
        return self._busy / max(time.perf_counter() - self._started, 1e-9)
