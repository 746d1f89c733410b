"""How far a candidate is trained: the stage machine, as a pure policy.

A mutated candidate goes memorize -> task 1 -> the other tasks; the seeds are trained on
every task at once (the GRU on more settings: it is the yardstick); a calibration trains
its cells, then their best settings again for longer. After each stage's evaluations
have all finished, ``next_stage`` says where the candidate goes: a stage to train (its
evaluations are ``work``), a verdict (complete, filtered, stopped), or nowhere yet (task
1 waits for the GRU's baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rnnsearch.search.config import SearchConfig
from rnnsearch.states import Stage, replicate_stage

VERDICTS = (Stage.COMPLETE, Stage.FILTERED, Stage.STOPPED)


@dataclass(frozen=True)
class Work:
    """``settings`` evaluations of a candidate on ``task``: settings round ``round_``,
    recorded under ``stage``."""

    task: str
    settings: int
    round_: int
    stage: str


@dataclass(frozen=True)
class Scores:
    """What a decision reads: the candidate's best accuracy per task, the GRU's, and
    whether the GRU's own stage is complete (its baseline final)."""

    best: Mapping[str, float]
    gru_best: Mapping[str, float]
    gru_complete: bool


class StagePolicy:
    def __init__(self, config: SearchConfig):
        self.config = config

    def first_stage(self, seed: bool) -> Stage:
        return Stage.SEED if seed else Stage.MEMORIZE

    def work(self, stage: str, is_gru: bool = False) -> list[Work]:
        """The evaluations a stage trains (the reference runs are planned from results)."""
        cfg = self.config
        if stage == Stage.SEED and cfg.kind == "calibration":
            return [
                Work(t, cfg.memorize_settings if t == "memorize" else cfg.settings_per_task, r, replicate_stage(r))
                for t in cfg.tasks
                for r in range(cfg.replicates)
            ]
        if stage == Stage.SEED:
            n = cfg.baseline_settings if is_gru and cfg.kind == "search" else cfg.settings_per_task
            return [Work(t, n, 0, Stage.SEED) for t in cfg.tasks]
        if stage == Stage.MEMORIZE:
            return [Work("memorize", cfg.memorize_settings, 0, Stage.MEMORIZE)]
        if stage == Stage.TASK1:
            return [Work(cfg.tasks[0], cfg.settings_per_task, 0, Stage.TASK1)]
        if stage == Stage.OTHER:
            return [Work(t, cfg.settings_per_task, 0, Stage.OTHER) for t in cfg.tasks[1:]]
        return []

    def reevaluation(self, counts: Mapping[str, int]) -> list[Work]:
        """A member trained again: per task, the next round of settings after those it had."""
        n = self.config.settings_per_task
        return [Work(t, n, 1 + counts.get(t, 0) // n, Stage.REEVAL) for t in self.config.tasks]

    def stops_early(self, stage: str) -> bool:
        """Whether a stage's settings may be stopped early (``--early-stop``): in task 1, where
        the search filters, and in re-evaluations, whose settings cannot lower a member's best.
        Not in the other tasks: a candidate that passed task 1 needs a score on every task, and
        stopping all its settings on one would leave it with none (and no fitness)."""
        return self.config.early_stop and stage in (Stage.TASK1, Stage.REEVAL)

    def next_stage(self, stage: str, scores: Scores) -> Stage | None:
        """Where a candidate goes once ``stage``'s evaluations have all finished; None: wait."""
        cfg = self.config
        if stage == Stage.SEED:
            if cfg.kind == "calibration" and cfg.reference_budget:
                return Stage.REFERENCE
            return Stage.COMPLETE
        if stage == Stage.REFERENCE:
            return Stage.COMPLETE
        if stage == Stage.MEMORIZE:
            passed = scores.best.get("memorize", -1.0) >= cfg.memorize_threshold
            return Stage.TASK1 if passed else Stage.FILTERED
        if stage == Stage.TASK1:
            if not scores.gru_complete:
                return None  # the bar is a fraction of the GRU's best: wait for it
            task = cfg.tasks[0]
            bar = cfg.stop_ratio * scores.gru_best.get(task, 0.0)
            if scores.best.get(task, -1.0) < bar:
                return Stage.STOPPED
            return Stage.OTHER if len(cfg.tasks) > 1 else Stage.COMPLETE
        if stage == Stage.OTHER:
            return Stage.COMPLETE
        return None
