"""The paper's search loop, asynchronous and resumable.

The database is the whole state: on start the controller rebuilds its view from it,
submits again what was pending or running, and continues. It alone writes results;
workers only train. Every random choice comes from a generator seeded by the search's
seed and the decision's index (or the architecture's hash), so a relaunch makes the
same choices and the same seed gives the same search with ``LocalRunner``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.db import AlreadyRecorded, ArchitectureInfo, EvaluationInfo, NewEvaluation, Store
from rnnsearch.errors import UserError
from rnnsearch.search.config import SearchConfig
from rnnsearch.search.fitness import fitness
from rnnsearch.search.mutations import MutationFailed, mutate
from rnnsearch.search.stages import (  # re-exported: callers import stages from here too
    COMPLETE,
    DEGENERATE,
    FILTERED,
    IN_PROGRESS,
    MEMORIZE,
    OTHER,
    REEVAL,
    REFERENCE,
    SEED,
    STOPPED,
    TASK1,
)
from rnnsearch.tasks import hparams as hp_sampler
from rnnsearch.tasks.api import Budget, EvalRequest, EvalResult, HParams
from rnnsearch.tasks.presets import get_preset
from rnnsearch.workers.base import Runner


def replicate_stage(r: int) -> str:
    """The stage of a calibration's evaluations of replicate ``r`` (its own draw of settings)."""
    return f"replicate:{r}"


_TASK_INDEX = {"memorize": 0, "arithmetic": 1, "xml": 2, "ptb": 3}


@dataclass(frozen=True)
class Member:
    architecture_id: int
    name: str
    fitness: float
    formula: str


@dataclass(frozen=True)
class SearchView:
    """A snapshot for a live display and for the final summary."""

    search: str
    elapsed_s: float
    finished: dict[str, int]
    in_flight: int
    architectures: int
    by_stage: dict[str, int]
    duplicates: int
    top: tuple[Member, ...]
    evaluations_per_hour: float
    busy_fraction: float
    baseline: dict[str, float]
    stopping: str = ""
    finished_now: int = 0  # of ``finished``, those this launch ran
    kind: str = "search"  # or "study", "calibration": what the display calls it


class Controller:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        config: SearchConfig,
        on_update: Callable[[SearchView], None] | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.runner = runner
        self.on_update = on_update
        self.log = log or (lambda msg: None)
        self.search, self.config = self._open_search(config)
        self.preset = get_preset(self.config.preset)
        self.started = time.monotonic()
        self.stop_reason = ""
        self._interrupted = False
        self.backlog: deque[EvalRequest] = deque()
        self.best: dict[tuple[int, str], float] = {}
        self.arch: dict[int, ArchitectureInfo] = {}
        self.graphs: dict[int, CellGraph] = {}
        self.stage: dict[int, str] = {}
        self.outstanding: dict[int, set[str]] = {}
        self.owner: dict[str, tuple[int, str, str]] = {}  # request id -> (architecture, task, stage)
        self.finished: dict[str, int] = {}
        self.gru_id = -1
        self.seed_ids: list[int] = []
        self.queued: set[str] = set()  # in the backlog or submitted: never queued twice
        self.counts: dict[tuple[int, str], int] = {}  # evaluations per (architecture, task)
        self.tried = 0  # candidates this search made by mutation
        self._duplicate_run = 0
        self._last_beat = 0.0
        self._load()

    # -- opening and resuming ---------------------------------------------------------
    def _open_search(self, config: SearchConfig) -> tuple:
        found = self.store.get_search(config.name)
        if found is None:
            search = self.store.create_search(config.name, config.to_dict(), config.seed)
            return search, config
        stored = SearchConfig.from_dict(found.config)
        # a relaunch continues the stored search; only the budget of this launch is new
        resumed = dataclasses.replace(stored, budget=config.budget)
        return found, resumed

    def _load(self) -> None:
        """Rebuild the view from the database: each architecture's stage in this search
        comes from the stages of its evaluations here, and unfinished stages continue."""
        s, cfg = self.search, self.config
        for arch in self.store.architectures(search_id=s.id):
            self.arch[arch.id] = arch
        rows = self.store.evaluations(s.id)
        seen: dict[int, set[str]] = {}
        for ev in rows:
            self.owner[ev.request_id] = (ev.architecture_id, ev.task, ev.stage)
            self.counts[(ev.architecture_id, ev.task)] = self.counts.get((ev.architecture_id, ev.task), 0) + 1
            seen.setdefault(ev.architecture_id, set()).add(ev.stage)
            if ev.status in ("pending", "running"):
                if ev.stage != REEVAL:
                    self.outstanding.setdefault(ev.architecture_id, set()).add(ev.request_id)
                self._push(self._request_for(ev))
            else:
                self.finished[ev.status] = self.finished.get(ev.status, 0) + 1
                self._score(ev.architecture_id, ev.task, ev.status, ev.val_accuracy)
        for name in cfg.seeds:
            if name in cfg.seed_graphs:
                graph, origin = CellGraph.from_json(cfg.seed_graphs[name]), "user"
            else:
                graph, origin = zoo.get(name), f"zoo:{name}"
            arch, _ = self.store.add_architecture(graph, origin, name=name, search_id=s.id)
            self.arch[arch.id] = arch
            self.seed_ids.append(arch.id)
            if name == "GRU":
                self.gru_id = arch.id
        for arch_id, arch in sorted(self.arch.items()):
            stages = seen.get(arch_id, set()) - {REEVAL}
            if arch_id in self.seed_ids:
                stage = SEED
            elif arch.stage == DEGENERATE and arch.first_search_id == s.id:
                self.stage[arch_id] = DEGENERATE
                continue
            elif arch.origin == "mutation" and (stages or arch.first_search_id == s.id):
                stage = OTHER if OTHER in stages else TASK1 if TASK1 in stages else MEMORIZE
                if arch.first_search_id == s.id:
                    self.tried += 1
            else:
                continue  # known to the database, not part of this search
            self.stage[arch_id] = stage
            if stage not in stages:
                self._enter(arch_id, stage)  # crashed between deciding and queueing
        for arch_id in sorted(self.stage):
            if self.stage[arch_id] in IN_PROGRESS and not self.outstanding.get(arch_id):
                self._advance(arch_id)
        resumed = sum(1 for ev in rows if ev.status in ("pending", "running"))
        if resumed:
            self.log(f"resuming {s.name}: {resumed} unfinished evaluation(s) to run again")
        self._done_before = sum(self.finished.values())  # the rate counts this launch only

    def _push(self, request: EvalRequest) -> None:
        if request.request_id not in self.queued:
            self.queued.add(request.request_id)
            self.backlog.append(request)

    def _request_for(self, ev: EvaluationInfo) -> EvalRequest:
        return EvalRequest(
            graph_json=self.arch[ev.architecture_id].graph_json,
            task=ev.task,
            hparams=HParams(**ev.hparams),
            seed=ev.seed,
            budget=Budget(**ev.budget),
            task_options=tuple(tuple(kv) for kv in ev.task_options),
            request_id=ev.request_id,
            keep_weights=self.config.keep_weights,
        )

    # -- planning ---------------------------------------------------------------------
    def _task_options(self, task: str) -> tuple:
        opts = dict(self.preset.task(task).options)
        if task == "ptb" and self.config.data_dir:
            opts["data_dir"] = self.config.data_dir
        return tuple(sorted(opts.items()))

    def _plan(self, arch_id: int, task: str, n: int, round_: int, stage: str) -> list[NewEvaluation]:
        tp = self.preset.task(task)
        budget = tp.budget
        if self.config.eval_max_seconds:
            budget = dataclasses.replace(budget, max_seconds=min(budget.max_seconds, self.config.eval_max_seconds))
        if task in self.config.eval_max_steps:
            steps = min(budget.max_steps, self.config.eval_max_steps[task])
            budget = dataclasses.replace(budget, max_steps=steps, eval_every=min(budget.eval_every, max(1, steps // 5)))
        if task == "memorize":  # a filter: once a setting passes, the verdict is in
            budget = dataclasses.replace(budget, stop_at=self.config.memorize_threshold)
        arch = self.arch[arch_id]
        # a study gives every cell the very same settings (common random numbers); a search
        # draws per architecture
        who = 0 if self.config.kind in ("study", "calibration") else int(arch.hash[:12], 16)
        rng = np.random.default_rng([self.config.seed, who, _TASK_INDEX[task], round_])
        items = []
        for _ in range(n):
            hp = hp_sampler.sample(
                rng, tp.param_budget, tp.max_layers, tp.grid, batch_size=tp.batch_size, unroll=tp.unroll
            )
            items.append(
                NewEvaluation(
                    arch_id,
                    task,
                    dataclasses.asdict(hp),
                    int(rng.integers(2**31 - 1)),
                    dataclasses.asdict(budget),
                    self._task_options(task),
                    stage,
                )
            )
        return items

    def _plan_reference(self, arch_id: int) -> list[NewEvaluation]:
        """Per search task, the cell's best setting over its replicates trained again from
        another seed at ``reference_budget`` times the steps (and time, and cadence)."""
        scale = self.config.reference_budget
        best: dict[str, EvaluationInfo] = {}
        for ev in self.store.evaluations(self.search.id, architecture_id=arch_id):
            if ev.task == "memorize" or not ev.stage.startswith("replicate:") or ev.status != "ok":
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
            items.append(
                NewEvaluation(
                    arch_id,
                    task,
                    dict(ev.hparams),
                    seed,
                    dataclasses.asdict(budget),
                    tuple(tuple(kv) for kv in ev.task_options),
                    REFERENCE,
                )
            )
        return items

    def _queue(self, items: list[NewEvaluation]) -> None:
        for ev in self.store.create_evaluations(self.search.id, items):
            if ev.request_id not in self.owner:
                self.counts[(ev.architecture_id, ev.task)] = self.counts.get((ev.architecture_id, ev.task), 0) + 1
            self.owner[ev.request_id] = (ev.architecture_id, ev.task, ev.stage)
            if ev.status in ("pending", "running"):
                if ev.stage != REEVAL:
                    self.outstanding.setdefault(ev.architecture_id, set()).add(ev.request_id)
                self._push(self._request_for(ev))

    def _enter(self, arch_id: int, stage: str) -> None:
        """Move an architecture to a stage and queue that stage's evaluations."""
        cfg = self.config
        self._set(arch_id, stage)
        items: list[NewEvaluation] = []
        if stage == SEED and cfg.kind == "calibration":
            for task in cfg.tasks:
                n = cfg.memorize_settings if task == "memorize" else cfg.settings_per_task
                for r in range(cfg.replicates):
                    items += self._plan(arch_id, task, n, r, replicate_stage(r))
        elif stage == SEED:
            n = cfg.baseline_settings if arch_id == self.gru_id and cfg.kind == "search" else cfg.settings_per_task
            for task in cfg.tasks:
                items += self._plan(arch_id, task, n, 0, SEED)
        elif stage == REFERENCE:
            items = self._plan_reference(arch_id)
        elif stage == MEMORIZE:
            items = self._plan(arch_id, "memorize", cfg.memorize_settings, 0, MEMORIZE)
        elif stage == TASK1:
            items = self._plan(arch_id, cfg.tasks[0], cfg.settings_per_task, 0, TASK1)
        elif stage == OTHER:
            for task in cfg.tasks[1:]:
                items += self._plan(arch_id, task, cfg.settings_per_task, 0, OTHER)
        self._queue(items)
        if stage in IN_PROGRESS and not self.outstanding.get(arch_id):
            self._advance(arch_id)  # everything was already finished (a resumed stage)

    def _advance(self, arch_id: int) -> None:
        """The current stage's evaluations are all finished: decide what comes next."""
        cfg, stage = self.config, self.stage[arch_id]
        if stage == SEED and cfg.kind == "calibration" and cfg.reference_budget:
            self._enter(arch_id, REFERENCE)
        elif stage == REFERENCE:
            self._set(arch_id, COMPLETE)
        elif stage == SEED:
            self._set(arch_id, COMPLETE)
            if arch_id == self.gru_id:  # the yardstick is known: judge who waited for it
                for other, st in list(self.stage.items()):
                    if st == TASK1 and not self.outstanding.get(other):
                        self._advance(other)
        elif stage == MEMORIZE:
            ok = self.best.get((arch_id, "memorize"), -1.0) >= cfg.memorize_threshold
            self._enter(arch_id, TASK1) if ok else self._set(arch_id, FILTERED)
        elif stage == TASK1:
            if self.stage.get(self.gru_id) != COMPLETE:
                return  # wait for the GRU's baseline
            task = cfg.tasks[0]
            bar = cfg.stop_ratio * self.best.get((self.gru_id, task), 0.0)
            if self.best.get((arch_id, task), -1.0) < bar:
                self._set(arch_id, STOPPED)
            elif len(cfg.tasks) > 1:
                self._enter(arch_id, OTHER)
            else:
                self._set(arch_id, COMPLETE)
        elif stage == OTHER:
            self._set(arch_id, COMPLETE)

    def _set(self, arch_id: int, stage: str) -> None:
        self.stage[arch_id] = stage
        if self.arch[arch_id].stage != stage:  # the column caches the last stage reached
            self.store.set_stage(arch_id, stage)
            self.arch[arch_id] = dataclasses.replace(self.arch[arch_id], stage=stage)

    # -- fitness and population -------------------------------------------------------
    def _score(self, arch_id: int, task: str, status: str, acc: float | None) -> None:
        if status == "ok" and acc is not None and acc > self.best.get((arch_id, task), -1.0):
            self.best[(arch_id, task)] = acc

    def baseline(self) -> dict[str, float]:
        return {t: self.best[(self.gru_id, t)] for t in self.config.tasks if (self.gru_id, t) in self.best}

    def fitness_of(self, arch_id: int) -> float | None:
        if self.stage.get(arch_id) != COMPLETE:
            return None
        best = {t: self.best[(arch_id, t)] for t in self.config.tasks if (arch_id, t) in self.best}
        return fitness(best, self.baseline(), self.config.tasks)

    def population(self) -> list[tuple[float, int]]:
        scored = [(f, a) for a in self.stage if (f := self.fitness_of(a)) is not None]
        scored.sort(key=lambda fa: (-fa[0], fa[1]))
        return scored[: self.config.population]

    # -- generating work --------------------------------------------------------------
    def _time_up(self) -> bool:
        b = self.config.budget
        return bool(b.minutes) and time.monotonic() - self.started >= 60 * b.minutes

    def _may_submit(self) -> bool:
        """Evaluations and time end submitting; what is queued stays pending for a relaunch."""
        b = self.config.budget
        if b.evaluations and sum(self.finished.values()) + self.runner.in_flight() >= b.evaluations:
            self.stop_reason = self.stop_reason or f"evaluation budget ({b.evaluations}) reached"
            return False
        if self._time_up():
            self.stop_reason = self.stop_reason or f"time budget ({b.minutes:g} min) reached"
            return False
        return True

    def _may_generate(self) -> bool:
        if self.config.kind != "search":
            return False  # a study or calibration evaluates its cells and nothing else
        b = self.config.budget
        if b.architectures and self.tried >= b.architectures:
            self.stop_reason = self.stop_reason or f"architecture budget ({b.architectures}) reached"
            return False
        if self._duplicate_run >= 500:
            self.stop_reason = self.stop_reason or "500 mutations in a row gave known cells"
            return False
        return self._may_submit()

    def _generate(self) -> bool:
        """Take one decision: re-evaluate a member or mutate one. False if nothing to do."""
        members = [a for _, a in self.population()]
        parents = members or [a for a in self.seed_ids]
        # the seeds start tuned (the paper's "fully tuned" LSTM and GRU): re-evaluation
        # refines the members the search found
        found = [a for a in members if a not in self.seed_ids]
        step = self.store.take_step(self.search.id)
        rng = np.random.default_rng([self.config.seed, 1, step])
        if rng.random() >= self.config.mutate_probability and found:
            arch_id = found[int(rng.integers(len(found)))]
            items = []
            for task in self.config.tasks:
                round_ = 1 + self.counts.get((arch_id, task), 0) // self.config.settings_per_task
                items += self._plan(arch_id, task, self.config.settings_per_task, round_, REEVAL)
            self._queue(items)
            return True
        parent = parents[int(rng.integers(len(parents)))]
        graph = self.graphs.get(parent) or self.arch[parent].graph()
        self.graphs[parent] = graph
        # a degenerate child is recorded and the mutation drawn again: the step is not wasted
        for _ in range(100):
            try:
                child, ops = mutate(graph, rng, ops=self.config.ops)
            except MutationFailed:
                return True
            known = self.store.lookup(child)
            if known is not None and (known.id in self.stage or known.first_search_id == self.search.id):
                self.store.count_duplicate(self.search.id)
                self.search = dataclasses.replace(self.search, duplicates=self.search.duplicates + 1)
                self._duplicate_run += 1
                return True
            self._duplicate_run = 0
            refused = degeneracy(child) is not None
            arch, _ = self.store.add_architecture(
                child,
                "mutation",
                parent_id=parent,
                mutation_ops=ops,
                search_id=self.search.id,
                stage=DEGENERATE if refused else "new",
            )
            self.arch[arch.id] = arch
            if refused:
                self.stage[arch.id] = DEGENERATE
                continue
            self.tried += 1
            self._enter(arch.id, MEMORIZE)
            return True
        return True

    def _fill(self) -> None:
        target = self.runner.capacity + 1  # one waiting, so a slot never idles
        while self.runner.in_flight() < target and not self._interrupted:
            if not self.backlog:
                if not self._may_generate() or not self._generate():
                    return
                continue
            if not self._may_submit():
                return
            request = self.backlog.popleft()
            self.store.mark_running([request.request_id])
            self.runner.submit(request)

    # -- results ----------------------------------------------------------------------
    def _on_result(self, result: EvalResult) -> None:
        try:
            self.store.record_result(result)
        except AlreadyRecorded as e:
            self.log(f"ignored a second, different result: {e}")
            return
        self.finished[result.status] = self.finished.get(result.status, 0) + 1
        arch_id, task, stage = self.owner.get(result.request_id, (None, None, None))
        self.queued.discard(result.request_id)
        if arch_id is None:
            return
        self._score(arch_id, task, result.status, result.val_accuracy)
        pending = self.outstanding.get(arch_id)
        if pending is not None and result.request_id in pending:
            pending.discard(result.request_id)
            if not pending and self.stage.get(arch_id) in IN_PROGRESS:
                self._advance(arch_id)

    # -- the loop ---------------------------------------------------------------------
    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop soon (from a signal handler): in-flight work is left for a relaunch."""
        self._interrupted = True
        self.stop_reason = reason

    def run(self) -> SearchView:
        self.store.set_search_status(self.search.id, "running")
        self.store.heartbeat(self.search.id)
        try:
            while True:
                self._fill()
                if self._interrupted:
                    break
                if self._time_up():
                    self._hand_back()  # what has not started waits for a relaunch
                if self.runner.in_flight() == 0 and (not self.backlog or not self._may_submit()):
                    break  # the budget is spent and everything in flight came back
                for result in self.runner.wait(timeout=1.0):
                    self._on_result(result)
                self._tick()
        finally:
            status = "stopped" if self._interrupted else "finished"
            self.store.set_search_status(self.search.id, status)
        view = self.view()
        self._emit(view)
        return view

    def _hand_back(self) -> None:
        taken = self.runner.withdraw()
        if taken:
            self.store.mark_pending([r.request_id for r in taken])
            for r in taken:
                self.queued.discard(r.request_id)
                self.backlog.appendleft(r)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_beat > 10:
            self.store.heartbeat(self.search.id)
            self._last_beat = now
        self._emit(self.view())

    def _emit(self, view: SearchView) -> None:
        if self.on_update is not None:
            self.on_update(view)

    def view(self) -> SearchView:
        by_stage: dict[str, int] = {}
        for a, st in self.stage.items():
            if self.arch[a].origin == "mutation":
                by_stage[st] = by_stage.get(st, 0) + 1
        top = []
        for f, a in self.population()[:5]:
            arch = self.arch[a]
            top.append(Member(a, arch.display_name, f, arch.formula))
        elapsed = time.monotonic() - self.started
        done = sum(self.finished.values())
        return SearchView(
            kind=self.config.kind,
            search=self.search.name,
            elapsed_s=elapsed,
            finished=dict(self.finished),
            in_flight=self.runner.in_flight(),
            architectures=sum(by_stage.values()),
            by_stage=by_stage,
            duplicates=self.search.duplicates,
            top=tuple(top),
            evaluations_per_hour=3600 * (done - self._done_before) / max(elapsed, 1e-9),
            busy_fraction=self.runner.busy_fraction(),
            baseline=self.baseline(),
            stopping=self.stop_reason,
            finished_now=done - self._done_before,
        )


def check_resumable(store: Store, name: str) -> None:
    """Raise a clear error if a search of that name exists but cannot be resumed."""
    found = store.get_search(name)
    if found is not None:
        try:
            SearchConfig.from_dict(found.config)
        except (TypeError, KeyError) as e:
            raise UserError(f"search {name!r} was made by another rnnsearch version: {e}") from None
