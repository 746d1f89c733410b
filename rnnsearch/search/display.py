"""How a running search looks: a live panel on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from rnnsearch.search.view import SearchView
from rnnsearch.states import Status, stage_summary


def summary_lines(v: SearchView) -> list[str]:
    done = sum(v.finished.values())
    quiet = (Status.OK, Status.STOPPED)
    failures = ", ".join(f"{k} {n}" for k, n in sorted(v.finished.items()) if k not in quiet) or "no failures"
    stopped = v.finished.get(Status.STOPPED, 0)
    stages = stage_summary(v.by_stage)
    base = ", ".join(f"{t} {a:.4f}" for t, a in v.baseline.items()) or "not yet"
    return [
        f"{v.kind} {v.search}: {done} evaluations done ({failures}"
        + (f"; {stopped} stopped early" if stopped else "")
        + f"), {v.in_flight} in flight, "
        f"{v.evaluations_per_hour:,.0f}/hour, workers busy {100 * v.busy_fraction:.0f}%, {v.elapsed_s:,.0f}s",
        f"candidates {v.architectures} ({stages or 'none yet'}), duplicates skipped {v.duplicates}, "
        f"functional duplicates {v.functional_duplicates}",
        f"GRU baseline: {base}",
    ]


def top_lines(v: SearchView, width: int = 100) -> list[str]:
    if not v.top:
        return []
    lines = [f"{'#':>2} {'id':>6}  {'name':<12} {'fitness':>7}  formula"]
    room = max(20, width - 33)
    for i, m in enumerate(v.top, 1):
        formula = m.formula if len(m.formula) <= room else m.formula[: room - 1] + "…"
        lines.append(f"{i:>2} {m.architecture_id:>6}  {m.name[:12]:<12} {m.fitness:>7.4f}  {formula}")
    return lines


class SearchDisplay:
    """A callable for Controller(on_update=...), used as a context manager."""

    def __init__(self, console: Console | None = None, every_s: float = 10.0):
        self.console = console or Console(stderr=False)
        self.live = self.console.is_terminal
        self.every_s = every_s
        self._last = 0.0
        self._live: Live | None = None

    def __enter__(self) -> SearchDisplay:
        if self.live:
            # transient: the last frame is cleared, and final() prints the summary once
            self._live = Live(console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            if exc[0] is not None:  # stopped hard: final() will not run, so keep the last frame
                self._live.transient = False
            self._live.__exit__(*exc)

    def __call__(self, view: SearchView) -> None:
        if self._live is not None:
            width = self.console.width
            lines = summary_lines(view) + top_lines(view, width)
            self._live.update(Group(*(Text(line, no_wrap=True, overflow="ellipsis") for line in lines)))
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(summary_lines(view)[0], file=sys.stderr, flush=True)  # stdout stays for results

    def final(self, view: SearchView) -> None:
        for line in summary_lines(view) + top_lines(view, max(self.console.width, 100)):
            self.console.print(Text(line), soft_wrap=True)
        if view.stopping:
            self.console.print(Text(f"stopped: {view.stopping}"))
