"""RayRunner: evaluations in parallel on a local Ray or a Ray cluster.

Ray Tune's split: the caller decides *what* to try; this decides *where* it runs.
Workers only train and return results; they never open the database.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, replace

from rnnsearch.errors import UserError
from rnnsearch.tasks.api import EvalRequest, EvalResult
from rnnsearch.workers.base import EvaluateFn, Runner, default_evaluate, failed


def _run_remote(evaluate_fn: EvaluateFn, request: EvalRequest) -> EvalResult:
    import torch

    if request.threads:
        torch.set_num_threads(request.threads)
    return evaluate_fn(request)


# A forced cancel that Ray has not confirmed by then is given up on: the evaluation is
# reported failed and its task abandoned (a cancel can be lost while a task is placed).
CANCEL_GRACE_S = 10.0


@dataclass
class _Flight:
    request: EvalRequest
    ref: object
    submitted: float
    timed_out: bool = False
    cancel_at: float | None = None  # when we asked Ray to kill it


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool = False,
    ship_code: bool = False,
) -> bool:
    """Start (or join) Ray; returns True when this call started it.

    ``address`` None: an embedded local Ray on loopback only (no dashboard unless asked);
    ``"auto"``: join the ``ray start`` cluster on this machine; ``"ray://host:10001"``: a
    remote cluster through Ray Client. ``ship_code`` sends the rnnsearch package to the
    workers (Ray's runtime environment) for clusters where it is not installed.
    """
    import ray

    if ray.is_initialized():
        return False
    runtime_env = None
    if ship_code:
        import rnnsearch

        runtime_env = {"py_modules": [os.path.dirname(rnnsearch.__file__)]}
    try:
        if address is None or address == "local":
            ray.init(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=dashboard,
                _node_ip_address="127.0.0.1",
                runtime_env=runtime_env,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"cannot start or join Ray at {address or 'local'}: {str(e).splitlines()[0]}") from None
    return True


class RayRunner(Runner):
    """Runs ``evaluate`` in Ray tasks, ``cpus_per_eval`` CPUs (and torch threads) and
    ``gpus_per_eval`` (fractional: 0.25 puts four evaluations on one GPU) each.

    A worker process that dies is retried ``max_retries`` times by Ray, then the
    evaluation is ``failed``; an evaluation running past ``time_limit_s`` is killed and
    ``failed (timeout)``. Requests wait in this runner until a slot is free, so the
    time limit counts from the moment Ray got the request.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus_per_eval: float = 1.0,
        gpus_per_eval: float = 0.0,
        max_retries: int = 2,
        time_limit_s: float | None = None,
        num_cpus: int | None = None,
        dashboard: bool = False,
        ship_code: bool = False,
        evaluate_fn: EvaluateFn | None = None,
    ):
        import ray

        if cpus_per_eval <= 0 or gpus_per_eval < 0:
            raise UserError("--cpus-per-eval must be > 0 and --gpus-per-eval >= 0")
        self._ray = ray
        self._owns_ray = init_ray(address, num_cpus=num_cpus, dashboard=dashboard, ship_code=ship_code)
        self.cpus_per_eval = cpus_per_eval
        self.gpus_per_eval = gpus_per_eval
        self.time_limit_s = time_limit_s
        self.threads = max(1, int(cpus_per_eval))
        self._remote = ray.remote(_run_remote).options(
            num_cpus=cpus_per_eval, num_gpus=gpus_per_eval, max_retries=max_retries, retry_exceptions=False
        )
        self._fn_ref = ray.put(evaluate_fn or default_evaluate)
        self._waiting: deque[EvalRequest] = deque()
        self._flights: dict[object, _Flight] = {}
        self._done: list[EvalResult] = []
        self._started = time.perf_counter()
        self._busy = 0.0
        self._capacity = self._compute_capacity()
        self._capacity_at = time.monotonic()
        if self._capacity < 1:
            what = f"{gpus_per_eval} GPU" if gpus_per_eval else f"{cpus_per_eval} CPUs"
            raise UserError(f"the Ray cluster has no room for one evaluation of {what}")

    def _compute_capacity(self) -> int:
        res = self._ray.cluster_resources()
        slots = int(res.get("CPU", 0) // self.cpus_per_eval)
        if self.gpus_per_eval:
            slots = min(slots, int(round(res.get("GPU", 0) / self.gpus_per_eval, 6)))
        return slots

    @property
    def capacity(self) -> int:
        if time.monotonic() - self._capacity_at > 30:  # clusters grow and shrink
            self._capacity = max(1, self._compute_capacity())
            self._capacity_at = time.monotonic()
        return self._capacity

    def submit(self, request: EvalRequest) -> None:
        if request.threads is None:
            request = replace(request, threads=self.threads)
        self._waiting.append(request)
        self._pump()

    def _pump(self) -> None:
        while self._waiting and len(self._flights) < self.capacity:
            request = self._waiting.popleft()
            ref = self._remote.remote(self._fn_ref, request)
            self._flights[ref] = _Flight(request, ref, time.perf_counter())

    def _enforce_time_limit(self) -> None:
        now = time.perf_counter()
        for ref, f in list(self._flights.items()):
            if self.time_limit_s is not None and not f.timed_out and now - f.submitted > self.time_limit_s:
                f.timed_out = True
                self._kill(f)
            if f.cancel_at is None:
                continue
            if now - f.cancel_at > CANCEL_GRACE_S:
                del self._flights[ref]
                self._busy += now - f.submitted
                why = f"failed (timeout): ran past the limit of {self.time_limit_s:g}s" if f.timed_out else "cancelled"
                self._done.append(failed(f.request, why, now - f.submitted))
            else:
                self._ray.cancel(f.ref, force=True)  # again: an early cancel can be lost

    def _kill(self, f: _Flight) -> None:
        f.cancel_at = time.perf_counter()
        self._ray.cancel(f.ref, force=True)

    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done and self._flights:
            self._enforce_time_limit()
            watching = self.time_limit_s is not None or any(f.cancel_at for f in self._flights.values())
            step = 0.5 if watching else 5.0
            if deadline is not None:
                step = max(0.0, min(step, deadline - time.monotonic()))
            if not self._flights:
                break
            ready, _ = self._ray.wait(list(self._flights), num_returns=1, timeout=step)
            for ref in ready:
                self._collect(ref)
            self._pump()
            if deadline is not None and time.monotonic() >= deadline:
                break
        out, self._done = self._done, []
        return out

    def _collect(self, ref) -> None:
        flight = self._flights.pop(ref)
        elapsed = time.perf_counter() - flight.submitted
        self._busy += elapsed
        try:
            result = self._ray.get(ref)
        except (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.TaskCancelledError) as e:
            # a forced cancel shows as either, depending on the Ray version and timing
            if flight.timed_out:
                result = failed(
                    flight.request, f"failed (timeout): ran past the limit of {self.time_limit_s:g}s", elapsed
                )
            elif isinstance(e, self._ray.exceptions.WorkerCrashedError):
                result = failed(
                    flight.request, f"worker died (retried up to the limit): {str(e).splitlines()[0]}", elapsed
                )
            else:
                result = failed(flight.request, "cancelled", elapsed)
        except self._ray.exceptions.OutOfMemoryError as e:
            result = failed(
                flight.request, f"out of memory (retried up to the limit): {str(e).splitlines()[0][:300]}", elapsed
            )
            result = failed(flight.request, "cancelled", elapsed)
        except self._ray.exceptions.RayTaskError as e:  # the evaluate function itself raised
            result = failed(flight.request, str(e)[-4000:], elapsed)
        except self._ray.exceptions.RayError as e:  # out of memory, node died, ...
            result = failed(flight.request, f"{type(e).__name__}: {str(e).splitlines()[0][:500]}", elapsed)
        self._done.append(result)

    def cancel(self, request_id: str) -> bool:
        for r in list(self._waiting):
            if r.request_id == request_id:
                self._waiting.remove(r)
                return True
        for f in self._flights.values():
            if f.request.request_id == request_id:
                self._kill(f)
                return True
        return False

    def in_flight(self) -> int:
        return len(self._waiting) + len(self._flights) + len(self._done)

    def busy_fraction(self) -> float:
        return self._busy / max((time.perf_counter() - self._started) * self.capacity, 1e-9)

    def shutdown(self) -> None:
        for f in list(self._flights.values()):
            self._ray.cancel(f.ref, force=True)
        self._flights.clear()
        self._waiting.clear()
        if self._owns_ray:
            self._ray.shutdown()
