"""Turning a stage's work into evaluations: settings drawn, budgets set, requests built.

Every draw comes from a generator seeded by the search's seed, the architecture (its
hash; none in a study, so every cell gets the very same settings) and the task and
round, so a relaunch plans the same evaluations and the store recognises them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from rnnsearch.db import ArchitectureInfo, EvaluationInfo, NewEvaluation
from rnnsearch.search.config import SearchConfig
from rnnsearch.search.policy import Work
from rnnsearch.states import Stage, Status
from rnnsearch.tasks import hparams as hp_sampler
from rnnsearch.tasks.api import Budget, EvalRequest, HParams
from rnnsearch.tasks.presets import get_preset

_TASK_INDEX = {"memorize": 0, "arithmetic": 1, "xml": 2, "ptb": 3}


class EvalPlanner:
    def __init__(self, config: SearchConfig):
        self.config = config
        self.preset = get_preset(config.preset)

    def budget(self, task: str, trail: tuple = ()) -> Budget:
        """The preset's budget for ``task``, capped by the search's limits."""
        cfg = self.config
        budget = self.preset.task(task).budget
        if cfg.eval_max_seconds:
            budget = dataclasses.replace(budget, max_seconds=min(budget.max_seconds, cfg.eval_max_seconds))
        if task in cfg.eval_max_steps:
            steps = min(budget.max_steps, cfg.eval_max_steps[task])
            budget = dataclasses.replace(budget, max_steps=steps, eval_every=min(budget.eval_every, max(1, steps // 5)))
        if task == "memorize":  # a filter: once a setting passes, the verdict is in
            return dataclasses.replace(budget, stop_at=cfg.memorize_threshold)
        return dataclasses.replace(budget, trail=tuple(trail)) if trail else budget

    def task_options(self, task: str) -> tuple:
        opts = dict(self.preset.task(task).options)
        if task == "ptb" and self.config.data_dir:
            opts["data_dir"] = self.config.data_dir
        return tuple(sorted(opts.items()))

    def plan(self, arch: ArchitectureInfo, work: Work, trail: Mapping[str, tuple] | None = None) -> list[NewEvaluation]:
        """``work.settings`` evaluations of ``arch`` on ``work.task``; ``trail`` (per task) is
        the learning curve a setting must keep up with (early stopping)."""
        cfg, task = self.config, work.task
        tp = self.preset.task(task)
        budget = dataclasses.asdict(self.budget(task, (trail or {}).get(task, ())))
        who = 0 if cfg.kind in ("study", "calibration") else int(arch.hash[:12], 16)
        rng = np.random.default_rng([cfg.seed, who, _TASK_INDEX[task], work.round_])
        items = []
        for _ in range(work.settings):
            hp = hp_sampler.sample(
                rng, tp.param_budget, tp.max_layers, tp.grid, batch_size=tp.batch_size, unroll=tp.unroll
            )
            seed = int(rng.integers(2**31 - 1))
            items.append(
                NewEvaluation(arch.id, task, dataclasses.asdict(hp), seed, budget, self.task_options(task), work.stage)
            )
        return items

    def plan_reference(self, arch_id: int, evaluations: list[EvaluationInfo]) -> list[NewEvaluation]:
        """Per search task, the cell's best setting over its replicates trained again from
        another seed at ``reference_budget`` times the steps (and time, and cadence)."""
        scale = self.config.reference_budget
        best: dict[str, EvaluationInfo] = {}
        for ev in evaluations:
            if ev.task == "memorize" or not ev.stage.startswith("replicate:") or ev.status != Status.OK:
                continue
            if ev.val_accuracy is not None and (ev.task not in best or ev.val_accuracy > best[ev.task].val_accuracy):
                best[ev.task] = ev
        items = []
        for task in self.config.tasks:
            if task not in best:
                continue  # no setting of this cell trained: nothing to train longer
            ev = best[task]
            b = Budget(**ev.budget)
            budget = dataclasses.replace(
                b,
                max_steps=int(b.max_steps * scale),
                max_seconds=b.max_seconds * scale,
                eval_every=max(1, int(b.eval_every * scale)),
            )
            seed = (ev.seed + 1) % (2**31 - 1)
            opts = tuple(tuple(kv) for kv in ev.task_options)
            items.append(
                NewEvaluation(arch_id, task, dict(ev.hparams), seed, dataclasses.asdict(budget), opts, Stage.REFERENCE)
            )
        return items

    def request(self, ev: EvaluationInfo, graph_json: str) -> EvalRequest:
        return EvalRequest(
            graph_json=graph_json,
            task=ev.task,
            hparams=HParams(**ev.hparams),
            seed=ev.seed,
            budget=Budget(**ev.budget),
            task_options=tuple(tuple(kv) for kv in ev.task_options),
            request_id=ev.request_id,
            keep_weights=self.config.keep_weights,
        )
