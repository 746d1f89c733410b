"""The one store API: everything the rest of rnnsearch reads or writes goes through here.

Modelled on Optuna's storages: a URL in, plain frozen values out, idempotent writes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rnnsearch.db import schema
from rnnsearch.db.engine import default_url, make_engine, normalise_url
from rnnsearch.db.models import Architecture, Evaluation, Search, Weights
from rnnsearch.db.values import ArchitectureInfo, EvaluationInfo, NewEvaluation, SearchInfo, TaskScore
from rnnsearch.errors import UserError
from rnnsearch.states import FINISHED as FINISHED  # re-exported: the finished statuses
from rnnsearch.states import IN_FLIGHT, SearchState, Status

PENDING, RUNNING = Status.PENDING, Status.RUNNING

T = TypeVar("T")


class AlreadyRecorded(Exception):
    """A different result for an evaluation that is already finished."""


class UnknownEvaluation(KeyError):
    pass


def hparams_key(hparams: dict[str, Any]) -> str:
    return json.dumps(hparams, sort_keys=True, separators=(",", ":"))


def request_id_for(search_id: int | None, architecture_id: int, task: str, hparams: dict[str, Any], seed: int) -> str:
    """Deterministic: the same evaluation always has the same id, so recording is idempotent."""
    key = f"{search_id}|{architecture_id}|{task}|{hparams_key(hparams)}|{seed}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _retrying(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry on a lost connection (a restarted server), for up to ``store.reconnect_s``."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args, **kwargs):
        deadline = time.monotonic() + self.reconnect_s
        delay = 0.2
        while True:
            try:
                return fn(self, *args, **kwargs)
            except (OperationalError, DBAPIError) as e:
                if isinstance(e, IntegrityError) or not _transient(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


def _transient(e: DBAPIError) -> bool:
    if e.connection_invalidated:
        return True
    text = str(e.orig).lower() if e.orig is not None else str(e).lower()
    return any(
        s in text
        for s in (
            "database is locked",
            "connection",
            "server closed",
            "terminating",
            "shutting down",
            "starting up",
            "timeout",
        )
    )


class Store:
    """The rnnsearch database at ``url`` (default ``$RNNSEARCH_DB`` or ``sqlite:///rnnsearch.db``).

    A fresh database is created at the newest schema; an older one must be upgraded with
    ``rnnsearch db upgrade``; one made by a newer rnnsearch is refused untouched.
    """

    def __init__(self, url: str | None = None, *, create: bool = True, reconnect_s: float = 120.0):
        self.url = normalise_url(url or default_url())
        self.reconnect_s = reconnect_s
        if not create:
            _must_exist(self.url)
        self.engine = make_engine(self.url)
        try:
            schema.ensure(self.engine, create=create)
        except OperationalError as e:
            self.engine.dispose()
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise UserError(f"cannot open database {self.safe_url}: {reason}") from None
        except UserError:
            self.engine.dispose()
            raise
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def session(self) -> Session:
        return self._session()

    # -- searches ---------------------------------------------------------------------
    @_retrying
    def create_search(self, name: str, config: dict[str, Any], seed: int) -> SearchInfo:
        with self.session() as s, s.begin():
            row = Search(name=name, config=config, seed=seed, status=SearchState.CREATED)
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise UserError(f"a search named {name!r} already exists") from None
            return _search(row)

    @_retrying
    def get_search(self, name: str) -> SearchInfo | None:
        with self.session() as s:
            row = s.scalar(select(Search).where(Search.name == name))
            return _search(row) if row else None

    @_retrying
    def searches(self) -> list[SearchInfo]:
        with self.session() as s:
            return [_search(r) for r in s.scalars(select(Search).order_by(Search.id))]

    @_retrying
    def set_search_status(self, search_id: int, status: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Search).where(Search.id == search_id).values(status=status, updated_at=_now()))

    @_retrying
    def take_step(self, search_id: int) -> int:
        """Atomically count one decision of the search; returns its index (0, 1, ...).

        Counted before the decision is acted on, so a crash in between skips a decision
        rather than taking it twice."""
        with self.session() as s, s.begin():
            new = s.execute(
                update(Search).where(Search.id == search_id).values(steps=Search.steps + 1).returning(Search.steps)
            ).scalar_one()
            return new - 1

    @_retrying
    def count_duplicate(self, search_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Search).where(Search.id == search_id).values(duplicates=Search.duplicates + 1))

    @_retrying
    def count_functional_duplicate(self, search_id: int) -> None:
        """One candidate not trained: it computes what an evaluated cell computes."""
        with self.session() as s, s.begin():
            s.execute(
                update(Search)
                .where(Search.id == search_id)
                .values(functional_duplicates=Search.functional_duplicates + 1)
            )

    # -- leases: which launch runs a search (the policy is rnnsearch.search.lease) -----
    # Each is one UPDATE guarded by the token it expects, so of two racing writers on
    # either backend exactly one changes the row.
    @_retrying
    def take_lease(self, search_id: int, token: str, host: str, pid: int, expected_token: str | None) -> bool:
        """Compare and swap: the lease becomes ``token``'s (since and heartbeat now) only if
        it is still ``expected_token``'s (free, when None); returns whether it did."""
        held = Search.lease_token.is_(None) if expected_token is None else Search.lease_token == expected_token
        now = _now()
        with self.session() as s, s.begin():
            done = s.execute(
                update(Search)
                .where(Search.id == search_id, held)
                .values(lease_token=token, lease_host=host[:255], lease_pid=pid, lease_since=now, heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
            return done.rowcount == 1

    @_retrying
    def renew_lease(self, search_id: int, token: str) -> bool:
        """The holder's heartbeat; False: the lease is no longer ``token``'s (taken over)."""
        with self.session() as s, s.begin():
            done = s.execute(
                update(Search)
                .where(Search.id == search_id, Search.lease_token == token)
                .values(heartbeat_at=_now())
                .execution_options(synchronize_session=False)
            )
            return done.rowcount == 1

    @_retrying
    def release_lease(self, search_id: int, token: str) -> None:
        """Free the lease if it is still ``token``'s (a holder taken over frees nothing)."""
        with self.session() as s, s.begin():
            s.execute(
                update(Search)
                .where(Search.id == search_id, Search.lease_token == token)
                .values(lease_token=None, lease_host=None, lease_pid=None, lease_since=None)
                .execution_options(synchronize_session=False)
            )

    # -- architectures ----------------------------------------------------------------
    @_retrying
    def add_architecture(
        self,
        graph,
        origin: str,
        *,
        name: str | None = None,
        parent_id: int | None = None,
        mutation_ops: Iterable[Any] = (),
        search_id: int | None = None,
        stage: str = "new",
        fingerprint: Sequence[float] | None = None,
        duplicate_of: int | None = None,
    ) -> tuple[ArchitectureInfo, bool]:
        """Find ``graph`` by canonical identity, or add it (at ``stage``); returns
        (architecture, created). A new cell that is a zoo cell is stored under its zoo
        name unless ``name`` gives another. ``fingerprint`` and ``duplicate_of`` are
        stored on a new cell only (a found one keeps its own)."""
        from rnnsearch.cells import canonicalize, formula, zoo
        from rnnsearch.cells.canonical import hash_canonical, isomorphic_canonical

        canon = canonicalize(graph)
        base = hash_canonical(canon)
        for k in range(16):
            key = base if k == 0 else f"{base}:{k}"
            found = self.find_architecture(key)
            if found is not None:
                if isomorphic_canonical(found.graph(), canon):
                    return found, False
                continue  # a Weisfeiler-Lehman collision: a different cell under the same hash
            n2 = sum(canon.g.in_degree(v) for v in canon.g if canon.op(v) == "linear")
            n1 = sum(1 for v in canon.g if canon.op(v) in ("linear", "diag"))
            row = Architecture(
                hash=key,
                graph_json=canon.to_json(),
                formula=formula(canon, canonical=True),
                name=name or (zoo.name_for_hash(base) if k == 0 else None),  # k > 0: a hash collision
                origin=origin,
                parent_id=parent_id,
                mutation_ops=list(mutation_ops),
                stage=stage,
                states=len(canon.states),
                params_per_unit2=n2,
                params_per_unit=n1,
                first_search_id=search_id,
                fingerprint=None if fingerprint is None else [float(v) for v in fingerprint],
                duplicate_of=duplicate_of,
            )
            try:
                with self.session() as s, s.begin():
                    s.add(row)
                    s.flush()
                    return _arch(row), True
            except IntegrityError:
                continue  # another writer added it first: look again
        raise RuntimeError(f"could not add architecture {base}")

    @_retrying
    def find_architecture(self, key: str) -> ArchitectureInfo | None:
        with self.session() as s:
            row = s.scalar(select(Architecture).where(Architecture.hash == key))
            return _arch(row) if row else None

    def lookup(self, graph) -> ArchitectureInfo | None:
        """The stored architecture that is this graph, if any ("is this graph known?")."""
        from rnnsearch.cells import canonicalize
        from rnnsearch.cells.canonical import hash_canonical, isomorphic_canonical

        canon = canonicalize(graph)
        base = hash_canonical(canon)
        for k in range(16):
            found = self.find_architecture(base if k == 0 else f"{base}:{k}")
            if found is None:
                return None
            if isomorphic_canonical(found.graph(), canon):
                return found
        return None

    @_retrying
    def get_architecture(self, architecture_id: int) -> ArchitectureInfo | None:
        with self.session() as s:
            row = s.get(Architecture, architecture_id)
            return _arch(row) if row else None

    @_retrying
    def architectures(self, ids: Iterable[int] | None = None, search_id: int | None = None) -> list[ArchitectureInfo]:
        """Architectures by id, or those a search evaluated or found (all when neither)."""
        with self.session() as s:
            q = select(Architecture).order_by(Architecture.id)
            if ids is not None:
                q = q.where(Architecture.id.in_(list(ids)))
            elif search_id is not None:
                evaluated = select(Evaluation.architecture_id).where(Evaluation.search_id == search_id)
                q = q.where((Architecture.id.in_(evaluated)) | (Architecture.first_search_id == search_id))
            return [_arch(r) for r in s.scalars(q)]

    @_retrying
    def set_fingerprint(self, architecture_id: int, fingerprint: Sequence[float] | None) -> None:
        values = None if fingerprint is None else [float(v) for v in fingerprint]
        with self.session() as s, s.begin():
            s.execute(update(Architecture).where(Architecture.id == architecture_id).values(fingerprint=values))

    @_retrying
    def set_stage(self, architecture_id: int, stage: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Architecture).where(Architecture.id == architecture_id).values(stage=stage))

    def lineage(self, architecture_id: int) -> list[ArchitectureInfo]:
        """The architecture and its parents, back to a seed."""
        chain, seen = [], set()
        current = self.get_architecture(architecture_id)
        while current is not None and current.id not in seen:
            chain.append(current)
            seen.add(current.id)
            current = self.get_architecture(current.parent_id) if current.parent_id else None
        return chain

    # -- evaluations ------------------------------------------------------------------
    @_retrying
    def create_evaluations(self, search_id: int | None, items: Iterable[NewEvaluation]) -> list[EvaluationInfo]:
        """Create pending evaluations; existing ones (same architecture, task, hparams,
        seed in this search) are returned as they are, not created twice."""
        items = list(items)
        if not items:
            return []
        now = _now()
        rows = []
        for it in items:
            rows.append(
                dict(
                    request_id=request_id_for(search_id, it.architecture_id, it.task, it.hparams, it.seed),
                    architecture_id=it.architecture_id,
                    search_id=search_id,
                    task=it.task,
                    stage=it.stage,
                    hparams=it.hparams,
                    hparams_key=hparams_key(it.hparams),
                    seed=it.seed,
                    budget=it.budget,
                    task_options=[list(kv) for kv in it.task_options],
                    status=PENDING,
                    extras={},
                    created_at=now,
                )
            )
        # The dialects' INSERT ... ON CONFLICT, imported where written: the PostgreSQL
        # dialect brings asyncio, which a read-only command should not pay for.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        with self.session() as s, s.begin():
            for chunk in _chunks(rows, 500):
                s.execute(insert(Evaluation).values(chunk).on_conflict_do_nothing())
        return self.evaluations_by_request([r["request_id"] for r in rows])

    @_retrying
    def evaluations_by_request(self, request_ids: list[str]) -> list[EvaluationInfo]:
        with self.session() as s:
            found: dict[str, EvaluationInfo] = {}
            for chunk in _chunks(request_ids, 500):
                for r in s.scalars(select(Evaluation).where(Evaluation.request_id.in_(chunk))):
                    found[r.request_id] = _eval(r)
            return [found[r] for r in request_ids if r in found]

    @_retrying
    def mark_running(self, request_ids: Iterable[str]) -> None:
        ids = list(request_ids)
        with self.session() as s, s.begin():
            for chunk in _chunks(ids, 500):
                s.execute(
                    update(Evaluation)
                    .where(Evaluation.request_id.in_(chunk), Evaluation.status == PENDING)
                    .values(status=RUNNING, started_at=_now())
                )

    @_retrying
    def mark_pending(self, request_ids: Iterable[str]) -> None:
        """Running evaluations handed back unstarted: pending again, for the next launch."""
        ids = list(request_ids)
        with self.session() as s, s.begin():
            for chunk in _chunks(ids, 500):
                s.execute(
                    update(Evaluation)
                    .where(Evaluation.request_id.in_(chunk), Evaluation.status == RUNNING)
                    .values(status=PENDING, started_at=None)
                )

    @_retrying
    def record_result(self, result) -> bool:
        """Write a finished evaluation. Recording the same result again changes nothing
        (returns False); a different result for a finished evaluation raises
        :class:`AlreadyRecorded`; an unknown request id :class:`UnknownEvaluation`."""
        with self.session() as s, s.begin():
            return _record(s, result)

    @_retrying
    def record_results(self, results: Iterable) -> list[bool]:
        """Several results in one transaction (all or none), each as :meth:`record_result`."""
        with self.session() as s, s.begin():
            return [_record(s, r) for r in results]

    @_retrying
    def pending(self, search_id: int | None) -> list[EvaluationInfo]:
        """Evaluations not finished (pending, or running when the controller stopped)."""
        with self.session() as s:
            q = (
                select(Evaluation)
                .where(Evaluation.search_id == search_id, Evaluation.status.in_(IN_FLIGHT))
                .order_by(Evaluation.id)
            )
            return [_eval(r) for r in s.scalars(q)]

    @_retrying
    def evaluations(
        self, search_id: int | None = None, architecture_id: int | None = None, task: str | None = None
    ) -> list[EvaluationInfo]:
        with self.session() as s:
            q = select(Evaluation).order_by(Evaluation.id)
            if search_id is not None:
                q = q.where(Evaluation.search_id == search_id)
            if architecture_id is not None:
                q = q.where(Evaluation.architecture_id == architecture_id)
            if task is not None:
                q = q.where(Evaluation.task == task)
            return [_eval(r) for r in s.scalars(q)]

    @_retrying
    def status_counts(self, search_id: int | None = None) -> dict[str, int]:
        with self.session() as s:
            q = select(Evaluation.status, func.count()).group_by(Evaluation.status)
            if search_id is not None:
                q = q.where(Evaluation.search_id == search_id)
            return {status: n for status, n in s.execute(q)}

    @_retrying
    def stage_counts(self, search_id: int) -> dict[str, int]:
        """The candidates a search made by mutation, by the last stage each reached."""
        with self.session() as s:
            q = (
                select(Architecture.stage, func.count())
                .where(Architecture.first_search_id == search_id, Architecture.origin == "mutation")
                .group_by(Architecture.stage)
            )
            return {stage: n for stage, n in s.execute(q)}

    @_retrying
    def functional_savings(self, search_id: int) -> tuple[int, float]:
        """The search's functional duplicates (candidates not trained: they compute what a
        cell of the search computes), and the training time they saved, estimated as the
        seconds the evaluations of the cells they duplicate took in this search."""
        with self.session() as s:
            dups = s.execute(
                select(Architecture.duplicate_of).where(
                    Architecture.first_search_id == search_id, Architecture.duplicate_of.is_not(None)
                )
            ).scalars()
            per: dict[int, int] = {}
            for original in dups:
                per[original] = per.get(original, 0) + 1
            if not per:
                return 0, 0.0
            q = (
                select(Evaluation.architecture_id, func.sum(Evaluation.wall_s))
                .where(Evaluation.search_id == search_id, Evaluation.architecture_id.in_(list(per)))
                .group_by(Evaluation.architecture_id)
            )
            saved = sum(per[a] * (w or 0.0) for a, w in s.execute(q))
            return sum(per.values()), float(saved)

    @_retrying
    def weights(self, evaluation_id: int) -> bytes | None:
        with self.session() as s:
            return s.scalar(select(Weights.data).where(Weights.evaluation_id == evaluation_id))

    # -- scores -----------------------------------------------------------------------
    @_retrying
    def task_scores(
        self, search_id: int | None = None, architecture_ids: Iterable[int] | None = None
    ) -> list[TaskScore]:
        """Best validation accuracy per (architecture, task), the test accuracy of that
        evaluation, and evaluation counts: the leaderboard's raw material."""
        with self.session() as s:
            where = []
            if search_id is not None:
                where.append(Evaluation.search_id == search_id)
            if architecture_ids is not None:
                where.append(Evaluation.architecture_id.in_(list(architecture_ids)))
            counts = (
                select(
                    Evaluation.architecture_id,
                    Evaluation.task,
                    func.count().label("n"),
                    func.sum(_case_ok()).label("n_ok"),
                )
                .where(*where)
                .group_by(Evaluation.architecture_id, Evaluation.task)
            )
            ranked = (
                select(
                    Evaluation.architecture_id,
                    Evaluation.task,
                    Evaluation.val_accuracy,
                    Evaluation.test_accuracy,
                    func.row_number()
                    .over(
                        partition_by=(Evaluation.architecture_id, Evaluation.task),
                        order_by=(Evaluation.val_accuracy.desc(), Evaluation.id),
                    )
                    .label("rank"),
                )
                .where(Evaluation.status == Status.OK, Evaluation.val_accuracy.is_not(None), *where)
                .subquery()
            )
            best = {
                (a, t): (v, te)
                for a, t, v, te in s.execute(
                    select(
                        ranked.c.architecture_id, ranked.c.task, ranked.c.val_accuracy, ranked.c.test_accuracy
                    ).where(ranked.c.rank == 1)
                )
            }
            out = []
            for a, t, n, n_ok in s.execute(counts):
                v, te = best.get((a, t), (None, None))
                out.append(TaskScore(a, t, v, te, int(n_ok or 0), int(n)))
            return sorted(out, key=lambda x: (x.architecture_id, x.task))

    def best_accuracy(self, search_id: int | None, architecture_id: int, task: str) -> float | None:
        for sc in self.task_scores(search_id, [architecture_id]):
            if sc.task == task:
                return sc.best_val_accuracy
        return None

    def baseline(self, search_id: int | None = None) -> dict[str, float]:
        """The GRU's best validation accuracy per task: the yardstick of fitness."""
        from rnnsearch.cells import zoo

        gru = self.lookup(zoo.get("GRU"))
        if gru is None:
            return {}
        return {
            sc.task: sc.best_val_accuracy
            for sc in self.task_scores(search_id, [gru.id])
            if sc.best_val_accuracy is not None
        }


def _record(s: Session, result) -> bool:
    values = dict(
        status=result.status,
        val_accuracy=result.val_accuracy,
        test_accuracy=result.test_accuracy,
        val_loss=result.val_loss,
        val_perplexity=result.val_perplexity,
        test_perplexity=result.test_perplexity,
        steps=result.steps,
        tokens_per_s=result.tokens_per_s,
        wall_s=result.wall_s,
        hidden_size=result.hidden_size,
        param_count=result.param_count,
        device=result.device[:60],
        worker=result.worker[:200],
        error=result.error or None,
        extras=dict(result.extras),
        curve=[list(p) for p in result.curve],
        finished_at=_now(),
    )
    done = s.execute(
        update(Evaluation)
        .where(Evaluation.request_id == result.request_id, Evaluation.status.in_(IN_FLIGHT))
        .values(**values)
    )
    if done.rowcount == 1:
        if result.weights:
            eid = s.scalar(select(Evaluation.id).where(Evaluation.request_id == result.request_id))
            s.add(Weights(evaluation_id=eid, data=result.weights))
        return True
    row = s.scalar(select(Evaluation).where(Evaluation.request_id == result.request_id))
    if row is None:
        raise UnknownEvaluation(result.request_id)
    same = (row.status, row.val_accuracy, row.test_accuracy, row.steps) == (
        result.status,
        result.val_accuracy,
        result.test_accuracy,
        result.steps,
    )
    if same:
        return False
    raise AlreadyRecorded(f"evaluation {result.request_id} is already {row.status}")


def _must_exist(url: str) -> None:
    """Readers never create a database: a missing SQLite file is an error, not a new file."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        import os

        if not os.path.exists(u.database):
            raise UserError(f"no database at {url}: run `rnnsearch launch` first, or pass --db")


def _case_ok():
    from sqlalchemy import case

    return case((Evaluation.status == Status.OK, 1), else_=0)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now() -> datetime:
    return datetime.now(UTC)


def _search(r: Search) -> SearchInfo:
    return SearchInfo(
        r.id,
        r.name,
        dict(r.config or {}),
        r.seed,
        r.status,
        r.created_at,
        r.updated_at,
        r.heartbeat_at,
        r.steps,
        r.duplicates,
        r.lease_host,
        r.lease_pid,
        r.lease_since,
        r.functional_duplicates or 0,
        r.lease_token,
    )


def _arch(r: Architecture) -> ArchitectureInfo:
    return ArchitectureInfo(
        r.id,
        r.hash,
        r.graph_json,
        r.formula,
        r.name,
        r.origin,
        r.parent_id,
        tuple(r.mutation_ops or ()),
        r.stage,
        r.states,
        r.params_per_unit2,
        r.params_per_unit,
        r.first_search_id,
        r.created_at,
        None if r.fingerprint is None else tuple(float(v) for v in r.fingerprint),
        r.duplicate_of,
    )


def _eval(r: Evaluation) -> EvaluationInfo:
    return EvaluationInfo(
        r.id,
        r.request_id,
        r.architecture_id,
        r.search_id,
        r.task,
        r.stage,
        dict(r.hparams),
        r.seed,
        dict(r.budget),
        tuple(tuple(kv) for kv in (r.task_options or ())),
        r.status,
        r.val_accuracy,
        r.test_accuracy,
        r.val_loss,
        r.val_perplexity,
        r.test_perplexity,
        r.steps,
        r.tokens_per_s,
        r.wall_s,
        r.hidden_size,
        r.param_count,
        r.device,
        r.worker,
        r.error,
        dict(r.extras or {}),
        r.created_at,
        r.started_at,
        r.finished_at,
        tuple((int(step), float(acc)) for step, acc in (r.curve or ())),
    )
