"""RayRunner: evaluations in parallel on a local Ray or a Ray cluster.

Ray Tune's split: the caller decides *what* to try; this decides *where* it runs.
Workers only train and return results; they never open the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, replace

from rnnsearch.errors import UserError
from rnnsearch.tasks.api import EvalRequest, EvalResult
from rnnsearch.workers.base import (
    MAX_GROUP,
    EvaluateFn,
    Runner,
    default_evaluate,
    default_evaluate_group,
    failed,
    take_group,
)


def _run_remote(evaluate_fn: EvaluateFn, request: EvalRequest) -> EvalResult:
    import torch

    if request.threads:
        torch.set_num_threads(request.threads)
    return evaluate_fn(request)


def _run_group_remote(requests: list[EvalRequest]) -> list[EvalResult]:
    import torch

    if requests[0].threads:
        torch.set_num_threads(requests[0].threads)
    return default_evaluate_group(requests)


# A forced cancel that Ray has not confirmed by then is given up on: the evaluation is
# reported failed and its task abandoned (a cancel can be lost while a task is placed).
CANCEL_GRACE_S = 10.0


@dataclass
class _Flight:
    requests: list[EvalRequest]  # one, or a group trained as one model
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

    ``address`` None: an embedded local Ray, every server on loopback (no dashboard
    unless asked; token authentication as Ray 2.60 sets it);
    ``"auto"``: join the ``ray start`` cluster on this machine; ``"ray://host:10001"``: a
    remote cluster through Ray Client. ``ship_code`` sends the rnnsearch package to the
    workers (Ray's runtime environment) for clusters where it is not installed.
    """
    import ray

    if ray.is_initialized():
        return False
    _quiet_auth_notice()
    runtime_env = None
    if ship_code:
        import rnnsearch

        runtime_env = {"py_modules": [os.path.dirname(rnnsearch.__file__)]}
    try:
        if address is None or address == "local":
            with _loopback_node_address():
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


def _drop_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


def _quiet_auth_notice() -> None:
    """Ray says on every start that token authentication is on and how to turn it off:
    rnnsearch keeps it on (the README says why), so the line only invites users to weaken
    the cluster. Its warning that authentication is off is kept."""
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if _drop_auth_notice not in log.filters:
        log.addFilter(_drop_auth_notice)


@contextlib.contextmanager
def _loopback_node_address():
    """Keep a local Ray on loopback. ray.init replaces a loopback ``_node_ip_address``
    with the machine's routable address, and then its servers (GCS, raylet, workers)
    listen on every interface; given the loopback address they listen on loopback only.
    A private hook: where a Ray lacks it, nothing changes (and a test says so)."""
    from ray._private import services

    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is None:
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


class RayRunner(Runner):
    """Runs ``evaluate`` in Ray tasks, ``cpus_per_eval`` CPUs (and torch threads) and
    ``gpus_per_eval`` (fractional: 0.25 puts four evaluations on one GPU) each.

    A worker process that dies is retried ``max_retries`` times by Ray, then the
    evaluation is ``failed``; an evaluation running past ``time_limit_s`` is killed and
    ``failed (timeout)``. Requests wait in this runner until a slot is free, so the
    time limit counts from the moment Ray got the request. ``batch_members``: train
    compatible requests as one member-batched model (None: where that pays, see
    :func:`rnnsearch.tasks.batched.grouping_pays`).
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
        batch_members: bool | None = None,
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
        # compatible requests train as one member-batched model (not with a custom function);
        # by default only where that pays: evaluations on a GPU
        if batch_members is None:
            from rnnsearch.tasks.batched import grouping_pays

            batch_members = grouping_pays("cuda" if gpus_per_eval > 0 else "cpu")
        self.batch_members = batch_members and evaluate_fn is None
        self._remote_group = ray.remote(_run_group_remote).options(
            num_cpus=cpus_per_eval, num_gpus=gpus_per_eval, max_retries=max_retries, retry_exceptions=False
        )
        self._waiting: list[EvalRequest] = []
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
    def slots(self) -> int:
        """Evaluations (or groups) that run at once."""
        if time.monotonic() - self._capacity_at > 30:  # clusters grow and shrink
            self._capacity = max(1, self._compute_capacity())
            self._capacity_at = time.monotonic()
        return self._capacity

    @property
    def capacity(self) -> int:
        """Requests to keep in flight: with grouping, enough to fill a group per slot."""
        return self.slots * (MAX_GROUP if self.batch_members else 1)

    def submit(self, request: EvalRequest) -> None:
        if request.threads is None:
            request = replace(request, threads=self.threads)
        self._waiting.append(request)  # started by wait(), so a burst of submissions can be grouped

    def _pump(self) -> None:
        while self._waiting and len(self._flights) < self.slots:
            if self.batch_members:
                group = take_group(self._waiting, MAX_GROUP)
                ref = (
                    self._remote_group.remote(group) if len(group) > 1 else self._remote.remote(self._fn_ref, group[0])
                )
            else:
                group = [self._waiting.pop(0)]
                ref = self._remote.remote(self._fn_ref, group[0])
            self._flights[ref] = _Flight(group, ref, time.perf_counter())

    def _enforce_time_limit(self) -> None:
        now = time.perf_counter()
        for ref, f in list(self._flights.items()):
            limit = None if self.time_limit_s is None else self.time_limit_s * len(f.requests)  # a group takes longer
            if limit is not None and not f.timed_out and now - f.submitted > limit:
                f.timed_out = True
                self._kill(f)
            if f.cancel_at is None:
                continue
            if now - f.cancel_at > CANCEL_GRACE_S:
                del self._flights[ref]
                self._busy += now - f.submitted
                why = f"failed (timeout): ran past the limit of {self.time_limit_s:g}s" if f.timed_out else "cancelled"
                self._done += [failed(r, why, now - f.submitted) for r in f.requests]
            else:
                self._ray.cancel(f.ref, force=True)  # again: an early cancel can be lost

    def _kill(self, f: _Flight) -> None:
        f.cancel_at = time.perf_counter()
        self._ray.cancel(f.ref, force=True)

    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._pump()
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

        def all_failed(error: str) -> list[EvalResult]:
            return [failed(r, error, elapsed) for r in flight.requests]

        try:
            got = self._ray.get(ref)
            results = got if isinstance(got, list) else [got]
        except (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.TaskCancelledError) as e:
            # a forced cancel shows as either, depending on the Ray version and timing
            if flight.timed_out:
                results = all_failed(f"failed (timeout): ran past the limit of {self.time_limit_s:g}s")
            elif isinstance(e, self._ray.exceptions.WorkerCrashedError):
                results = all_failed(f"worker died (retried up to the limit): {str(e).splitlines()[0]}")
            else:
                results = all_failed("cancelled")
        except self._ray.exceptions.OutOfMemoryError as e:
            results = all_failed(f"out of memory (retried up to the limit): {str(e).splitlines()[0][:300]}")
        except self._ray.exceptions.RayTaskError as e:  # the evaluate function itself raised
            results = all_failed(str(e)[-4000:])
        except self._ray.exceptions.RayError as e:  # node died, ...
            results = all_failed(f"{type(e).__name__}: {str(e).splitlines()[0][:500]}")
        self._done += results

    def cancel(self, request_id: str) -> bool:
        for r in list(self._waiting):
            if r.request_id == request_id:
                self._waiting.remove(r)
                self._done.append(failed(r, "cancelled"))  # every submitted request gets a result
                return True
        for f in self._flights.values():
            if any(r.request_id == request_id for r in f.requests):
                self._kill(f)  # a group is one process: its members end together
                return True
        return False

    def withdraw(self) -> list[EvalRequest]:
        taken, self._waiting = self._waiting, []
        return taken

    def in_flight(self) -> int:
        return len(self._waiting) + sum(len(f.requests) for f in self._flights.values()) + len(self._done)

    def busy_fraction(self) -> float:
        return self._busy / max((time.perf_counter() - self._started) * self.slots, 1e-9)

    def shutdown(self) -> None:
        for f in list(self._flights.values()):
            self._ray.cancel(f.ref, force=True)
        self._flights.clear()
        self._waiting.clear()
        if self._owns_ray:
            self._ray.shutdown()
