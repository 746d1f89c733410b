"""The search loop: feeds the runner, records results, and resumes from the database.

What to try next is the searcher's (``rnnsearch.search.searchers``), how far a candidate
is trained the stage policy's (``rnnsearch.search.policy``), which settings and budgets
the planner's (``rnnsearch.search.planning``). The loop holds a lease on its search, so a
second launch of the same search is refused while this one lives.

The database is the whole state: on start the loop rebuilds its view from it, submits
again what was pending or running, and continues. It alone writes results; workers only
train. Every random choice comes from a generator seeded by the search's seed and the
decision's index (or the architecture's hash), so a relaunch makes the same choices and
the same seed gives the same search with ``LocalRunner``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from rnnsearch.cells import CellGraph, zoo
from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.db import AlreadyRecorded, ArchitectureInfo, EvaluationInfo, NewEvaluation, Store
from rnnsearch.search import lease
from rnnsearch.search.config import SearchConfig
from rnnsearch.search.dedup import FunctionalDedup
from rnnsearch.search.early_stop import trail
from rnnsearch.search.fitness import fitness
from rnnsearch.search.limits import Limits
from rnnsearch.search.mutations import MutationFailed, mutate
from rnnsearch.search.planning import EvalPlanner
from rnnsearch.search.policy import VERDICTS, Scores, StagePolicy, Work
from rnnsearch.search.searchers import Candidate, History, Mutate, make_searcher
from rnnsearch.search.view import Member, SearchView
from rnnsearch.states import IN_FLIGHT, IN_PROGRESS, SearchState, Stage, Status
from rnnsearch.tasks.api import EvalRequest, EvalResult
from rnnsearch.workers.base import Runner

__all__ = ["COMPLETE", "Controller", "Member", "SearchView"]

COMPLETE = Stage.COMPLETE  # where scripts and tests that ask "which cells completed?" import it


class Controller:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        config: SearchConfig,
        on_update: Callable[[SearchView], None] | None = None,
        log: Callable[[str], None] | None = None,
        lease_grace_s: float = lease.GRACE_S,
    ):
        self.store = store
        self.runner = runner
        self.on_update = on_update
        self.log = log or (lambda msg: None)
        self.search, self.config = self._open_search(config)
        self.lease = lease.acquire(store, self.search, grace_s=lease_grace_s)
        self.planner = EvalPlanner(self.config)
        self.policy = StagePolicy(self.config)
        self.searcher = make_searcher(self.config.strategy, self.config.mutate_probability, self.config.tournament)
        self.dedup = FunctionalDedup() if self.config.functional_dedup and self.config.kind == "search" else None
        self.limits = Limits(self.config)
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
        self.trails: dict[str, tuple] = {}  # task -> the curve a candidate's setting must keep up with
        self.queued: set[str] = set()  # in the backlog or submitted: never queued twice
        self.counts: dict[tuple[int, str], int] = {}  # evaluations per (architecture, task)
        self._last_beat = time.monotonic()
        try:
            self._load()
        except BaseException:
            lease.release(store, self.lease)
            raise

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
            if ev.status in IN_FLIGHT:
                if ev.stage != Stage.REEVAL:
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
            stages = seen.get(arch_id, set()) - {Stage.REEVAL}
            if arch_id in self.seed_ids:
                stage = Stage.SEED
            elif arch.stage in (Stage.DEGENERATE, Stage.DUPLICATE) and arch.first_search_id == s.id:
                self.stage[arch_id] = arch.stage
                continue
            elif arch.origin == "mutation" and (stages or arch.first_search_id == s.id):
                stage = (
                    Stage.OTHER if Stage.OTHER in stages else Stage.TASK1 if Stage.TASK1 in stages else Stage.MEMORIZE
                )
                if arch.first_search_id == s.id:
                    self.limits.tried += 1
            else:
                continue  # known to the database, not part of this search
            self.stage[arch_id] = stage
            if self.dedup is not None:
                self.dedup.remember(self.store, arch)
            if stage not in stages:
                self._enter(arch_id, stage)  # crashed between deciding and queueing
        for arch_id in sorted(self.stage):
            if self.stage[arch_id] in IN_PROGRESS and not self.outstanding.get(arch_id):
                self._advance(arch_id)
        resumed = sum(1 for ev in rows if ev.status in IN_FLIGHT)
        if resumed:
            self.log(f"resuming {s.name}: {resumed} unfinished evaluation(s) to run again")
        self._done_before = sum(self.finished.values())  # the rate counts this launch only

    def _push(self, request: EvalRequest) -> None:
        if request.request_id not in self.queued:
            self.queued.add(request.request_id)
            self.backlog.append(request)

    def _request_for(self, ev: EvaluationInfo) -> EvalRequest:
        return self.planner.request(ev, self.arch[ev.architecture_id].graph_json)

    # -- stages -----------------------------------------------------------------------
    def _queue(self, items: list[NewEvaluation]) -> None:
        for ev in self.store.create_evaluations(self.search.id, items):
            if ev.request_id not in self.owner:
                self.counts[(ev.architecture_id, ev.task)] = self.counts.get((ev.architecture_id, ev.task), 0) + 1
            self.owner[ev.request_id] = (ev.architecture_id, ev.task, ev.stage)
            if ev.status in IN_FLIGHT:
                if ev.stage != Stage.REEVAL:
                    self.outstanding.setdefault(ev.architecture_id, set()).add(ev.request_id)
                self._push(self._request_for(ev))

    def _plan(self, arch_id: int, work: list[Work]) -> list[NewEvaluation]:
        arch, seed = self.arch[arch_id], arch_id in self.seed_ids  # the seeds are the yardstick: never stopped
        items = []
        for w in work:
            items += self.planner.plan(arch, w, self.trails if self.policy.stops_early(w.stage) and not seed else None)
        return items

    def _enter(self, arch_id: int, stage: str) -> None:
        """Move an architecture to a stage and queue that stage's evaluations."""
        self._set(arch_id, stage)
        if stage == Stage.REFERENCE:
            items = self.planner.plan_reference(
                arch_id, self.store.evaluations(self.search.id, architecture_id=arch_id)
            )
        else:
            items = self._plan(arch_id, self.policy.work(stage, is_gru=arch_id == self.gru_id))
        self._queue(items)
        if stage in IN_PROGRESS and not self.outstanding.get(arch_id):
            self._advance(arch_id)  # everything was already finished (a resumed stage)

    def _advance(self, arch_id: int) -> None:
        """The current stage's evaluations are all finished: the policy says what comes next."""
        stage = self.stage[arch_id]
        scores = Scores(
            best=self._best_of(arch_id, ("memorize", *self.config.tasks)),
            gru_best=self.baseline(),
            gru_complete=self.stage.get(self.gru_id) == Stage.COMPLETE,
        )
        nxt = self.policy.next_stage(stage, scores)
        if nxt is None:
            return  # task 1 waits for the GRU's baseline
        if nxt not in VERDICTS:
            self._enter(arch_id, nxt)
            return
        self._set(arch_id, nxt)
        if arch_id == self.gru_id and stage == Stage.SEED:  # the yardstick is known
            self._learn_trails()
            for other, st in list(self.stage.items()):  # judge who waited for it
                if st == Stage.TASK1 and not self.outstanding.get(other):
                    self._advance(other)

    def _learn_trails(self) -> None:
        """The GRU's settings on each task, as learning curves a candidate's setting must
        keep up with (early stopping); fixed once the GRU's stage is complete."""
        if not self.config.early_stop or self.config.kind != "search":
            return
        curves: dict[str, list] = {}
        for ev in self.store.evaluations(self.search.id, architecture_id=self.gru_id):
            if ev.stage == Stage.SEED and ev.curve:
                curves.setdefault(ev.task, []).append(ev.curve)
        for task in self.config.tasks:
            budget = self.planner.budget(task)
            bars = trail(curves.get(task, []), budget.eval_every, budget.max_steps, self.config.early_stop_eta)
            if bars:
                self.trails[task] = bars

    def _set(self, arch_id: int, stage: str) -> None:
        self.stage[arch_id] = stage
        if self.arch[arch_id].stage != stage:  # the column caches the last stage reached
            self.store.set_stage(arch_id, stage)
            self.arch[arch_id] = dataclasses.replace(self.arch[arch_id], stage=stage)
        if stage in VERDICTS:
            self.searcher.tell(self._candidate(arch_id))

    # -- fitness and population -------------------------------------------------------
    def _score(self, arch_id: int, task: str, status: str, acc: float | None) -> None:
        if status == Status.OK and acc is not None and acc > self.best.get((arch_id, task), -1.0):
            self.best[(arch_id, task)] = acc

    def _best_of(self, arch_id: int, tasks) -> dict[str, float]:
        return {t: self.best[(arch_id, t)] for t in tasks if (arch_id, t) in self.best}

    def baseline(self) -> dict[str, float]:
        return self._best_of(self.gru_id, self.config.tasks)

    def fitness_of(self, arch_id: int, baseline: dict[str, float] | None = None) -> float | None:
        if self.stage.get(arch_id) != Stage.COMPLETE:
            return None
        base = self.baseline() if baseline is None else baseline
        return fitness(self._best_of(arch_id, self.config.tasks), base, self.config.tasks)

    def _candidate(self, arch_id: int, baseline: dict[str, float] | None = None) -> Candidate:
        fit = self.fitness_of(arch_id, baseline)
        return Candidate(arch_id, fit, self.stage[arch_id], arch_id in self.seed_ids)

    def history(self) -> History:
        """What the searcher sees: every architecture of the search that is trained, in the
        order they were made."""
        skip, base = (Stage.DEGENERATE, Stage.DUPLICATE), self.baseline()
        cands = tuple(self._candidate(a, base) for a in sorted(self.stage) if self.stage[a] not in skip)
        return History(cands, self.config.population)

    def population(self) -> list[tuple[float, int]]:
        return [(c.fitness, c.architecture_id) for c in self.history().population()]

    # -- generating work --------------------------------------------------------------
    def _may_submit(self) -> bool:
        return self.limits.may_submit(sum(self.finished.values()), self.runner.in_flight())

    def _generate(self) -> bool:
        """Take one decision: ask the searcher, then re-evaluate a member or make a child."""
        step = self.store.take_step(self.search.id)
        rng = np.random.default_rng([self.config.seed, 1, step])
        proposal = self.searcher.ask(rng, self.history())
        if not isinstance(proposal, Mutate):
            arch_id = proposal.architecture_id
            counts = {t: self.counts.get((arch_id, t), 0) for t in self.config.tasks}
            self._queue(self._plan(arch_id, self.policy.reevaluation(counts)))
            return True
        parent = proposal.parent
        graph = self.graphs.get(parent) or self.arch[parent].graph()
        self.graphs[parent] = graph
        # a degenerate child or a functional duplicate is recorded and the mutation drawn
        # again: the step is not wasted
        for _ in range(100):
            try:
                child, ops = graph, []
                for _ in range(proposal.times):
                    child, applied = mutate(child, rng, ops=self.config.ops)
                    ops += applied
            except MutationFailed:
                return True
            admitted = self._admit(child, parent, ops)
            if admitted is not None:
                return admitted
        return True

    def _admit(self, child: CellGraph, parent: int, ops: list) -> bool | None:
        """Record a child. A structural duplicate ends the step (True); a degenerate child
        or a functional duplicate is recorded untrained (None: draw again); a new one
        enters the memorize stage (True)."""
        known = self.store.lookup(child)
        if known is not None and (known.id in self.stage or known.first_search_id == self.search.id):
            self.store.count_duplicate(self.search.id)
            self.search = dataclasses.replace(self.search, duplicates=self.search.duplicates + 1)
            self.limits.duplicate_run += 1
            return True
        self.limits.duplicate_run = 0
        refused = degeneracy(child) is not None
        fp, same = self.dedup.check(child) if self.dedup is not None and not refused else (None, None)
        stage = Stage.DEGENERATE if refused else Stage.DUPLICATE if same is not None else Stage.NEW
        arch, _ = self.store.add_architecture(
            child,
            "mutation",
            parent_id=parent,
            mutation_ops=ops,
            search_id=self.search.id,
            stage=stage,
            fingerprint=fp if stage == Stage.DUPLICATE else None,  # a trained cell's is its canonical form's
            duplicate_of=same,
        )
        self.arch[arch.id] = arch
        if stage != Stage.NEW:
            self.stage[arch.id] = stage
            if same is not None:
                self.store.count_functional_duplicate(self.search.id)
            return None
        if self.dedup is not None:
            self.dedup.remember(self.store, arch, as_made=fp)
        self.limits.tried += 1
        self._enter(arch.id, Stage.MEMORIZE)
        return True

    def _fill(self) -> None:
        target = self.runner.capacity + 1  # one waiting, so a slot never idles
        while self.runner.in_flight() < target and not self._interrupted:
            if not self.backlog:
                done, flying = sum(self.finished.values()), self.runner.in_flight()
                if not self.limits.may_generate(done, flying) or not self._generate():
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
        self.limits.reason = reason

    def run(self) -> SearchView:
        self.store.set_search_status(self.search.id, SearchState.RUNNING)
        try:
            while True:
                self._fill()
                if self._interrupted:
                    break
                if self.limits.time_up():
                    self._hand_back()  # what has not started waits for a relaunch
                if self.runner.in_flight() == 0 and (not self.backlog or not self._may_submit()):
                    break  # the budget is spent and everything in flight came back
                for result in self.runner.wait(timeout=1.0):
                    self._on_result(result)
                self._tick()
        finally:
            status = SearchState.STOPPED if self._interrupted else SearchState.FINISHED
            self.store.set_search_status(self.search.id, status)
            lease.release(self.store, self.lease)
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
        if now - self._last_beat > lease.RENEW_S:
            if not lease.renew(self.store, self.lease):
                self.interrupt("another launch took this search over (this one's heartbeat had stopped)")
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
        elapsed = self.limits.elapsed_s
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
            stopping=self.limits.reason,
            finished_now=done - self._done_before,
            functional_duplicates=by_stage.get(Stage.DUPLICATE, 0),
            strategy=self.config.strategy,
        )
