"""When a search stops generating and submitting: its budget, as this launch counts it.

``minutes`` counts this launch's wall time; evaluations and architectures count the whole
search across relaunches (the loop hands in the counts it rebuilt from the database).
"""

from __future__ import annotations

import time

from rnnsearch.search.config import SearchConfig

DUPLICATE_RUN = 500  # mutations in a row that gave known cells: the space near the population is exhausted


class Limits:
    def __init__(self, config: SearchConfig):
        self.budget = config.budget
        self.generates = config.kind == "search"  # a study or calibration evaluates its cells, nothing else
        self.started = time.monotonic()
        self.reason = ""  # why the search stops, once it does
        self.tried = 0  # candidates the search made by mutation (and trained)
        self.duplicate_run = 0

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def time_up(self) -> bool:
        return bool(self.budget.minutes) and self.elapsed_s >= 60 * self.budget.minutes

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason

    def may_submit(self, finished: int, in_flight: int) -> bool:
        """Evaluations and time end submitting; what is queued stays pending for a relaunch."""
        b = self.budget
        if b.evaluations and finished + in_flight >= b.evaluations:
            self.stop(f"evaluation budget ({b.evaluations}) reached")
            return False
        if self.time_up():
            self.stop(f"time budget ({b.minutes:g} min) reached")
            return False
        return True

    def may_generate(self, finished: int, in_flight: int) -> bool:
        if not self.generates:
            return False
        if self.budget.architectures and self.tried >= self.budget.architectures:
            self.stop(f"architecture budget ({self.budget.architectures}) reached")
            return False
        if self.duplicate_run >= DUPLICATE_RUN:
            self.stop(f"{DUPLICATE_RUN} mutations in a row gave known cells")
            return False
        return self.may_submit(finished, in_flight)
