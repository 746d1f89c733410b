"""Fault injection for reliability tests and soaks: an evaluate function that really
raises, really hangs, or really kills its worker process for chosen requests.

Pass an instance as ``evaluate_fn`` to a runner. Never used by a search unless asked.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from rnnsearch.tasks.api import EvalRequest, EvalResult
from rnnsearch.workers.base import default_evaluate


@dataclass(frozen=True)
class Chaos:
    """``raise_ids``: raise inside the worker; ``hang_ids``: sleep forever; ``kill_ids``:
    ``os._exit`` the worker (only on the first attempt when ``marker_dir`` is given, so a
    retry succeeds; on every attempt otherwise); ``kill_probability``: kill a random
    fraction of first attempts (with ``marker_dir``)."""

    raise_ids: frozenset[str] = frozenset()
    hang_ids: frozenset[str] = frozenset()
    kill_ids: frozenset[str] = frozenset()
    marker_dir: str | None = None
    kill_probability: float = 0.0
    seed: int = 0

    def __call__(self, request: EvalRequest) -> EvalResult:
        rid = request.request_id
        if rid in self.raise_ids:
            raise RuntimeError(f"chaos: injected exception for {rid}")
        if rid in self.hang_ids:
            while True:
                time.sleep(3600)
        if rid in self.kill_ids or self._random_kill(rid):
            if self.marker_dir is None:
                os._exit(17)
            marker = os.path.join(self.marker_dir, f"killed-{rid}")
            if not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                os._exit(17)
        return default_evaluate(request)

    def _random_kill(self, rid: str) -> bool:
        if not self.kill_probability or self.marker_dir is None:
            return False
        import hashlib

        h = int(hashlib.sha256(f"{self.seed}|{rid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return h < self.kill_probability
