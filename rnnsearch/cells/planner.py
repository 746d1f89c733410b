"""Fast paths chosen by measurement on the machine that runs (as FFTW's planner and
cuDNN's benchmark mode do), never by assuming.

Where two implementations of one thing exist (the C loop or the Python step; gemm.c's
kernel or torch's matmul for the softmax), :func:`choose` times each once per machine and
*shape class* (the sizes bucketed to powers of two), keeps the faster, and caches the
choice on disk keyed by the CPU and the torch build (a shared home serves several
machines). ``RNNSEARCH_PLAN="loop=eager,softmax=torch"`` overrides a question everywhere.

A measurement is short: each candidate runs once to warm up, then as often as fits in
``budget`` seconds (at least ``repeats`` times); its cost is the fastest run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# the questions asked, and what each answer means
QUESTIONS = {
    "loop": "a layer's time loop on the CPU: native (the C loop), native-blas, native-split or eager",
    "softmax": "the model's own products (its softmax): gemm (gemm.c's kernel) or torch (torch's matmul)",
    "products": "a layer's sequence-wide products and weight gradients: gemm (gemm.c's kernel) or torch",
}


@dataclass(frozen=True)
class Decision:
    question: str
    shape: str  # the shape class, e.g. "n256-b32"
    chosen: str
    # seconds per call of each candidate, as measured (here or when it was cached)
    timings: dict[str, float] = field(default_factory=dict)
    source: str = "measured"  # measured | cached | override | only

    def describe(self) -> str:
        times = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in sorted(self.timings.items(), key=lambda kv: kv[1]))
        return f"{self.question} [{self.shape}]: {self.chosen} ({self.source}{'; ' + times if times else ''})"


# A candidate: a setup that returns the call to time (setup itself is not timed).
Candidate = Callable[[], Callable[[], object]]
# A timer: the cost of one call, in seconds.
Timer = Callable[[Callable[[], object]], float]


def wall_clock(run: Callable[[], object], budget: float = 0.15, repeats: int = 3) -> float:
    """The fastest of the runs that fit in ``budget`` seconds (at least ``repeats``),
    after one warm-up run."""
    run()
    best, spent, n = float("inf"), 0.0, 0
    while n < repeats or spent < budget:
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
        if n >= 50:
            break
    return best


def bucket(value: int) -> int:
    """The power of two at or above ``value`` (the shape classes' sizes)."""
    return 1 << max(0, int(value) - 1).bit_length()


def overrides() -> dict[str, str]:
    """``RNNSEARCH_PLAN`` as question -> choice (a ValueError names a malformed entry)."""
    text = os.environ.get("RNNSEARCH_PLAN", "").strip()
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        question, sep, answer = part.partition("=")
        if not sep or question.strip() not in QUESTIONS or not answer.strip():
            raise ValueError(f"RNNSEARCH_PLAN entry {part!r}: use question=choice, questions {', '.join(QUESTIONS)}")
        out[question.strip()] = answer.strip()
    return out


class Planner:
    """The choices of one machine, cached in ``path`` (a JSON file)."""

    def __init__(self, path: Path | None, timer: Timer = wall_clock):
        self.path = path
        self.timer = timer
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, str], Decision] = {}

    def choose(self, question: str, shape: str, candidates: dict[str, Candidate]) -> Decision:
        """The faster candidate for ``question`` at ``shape``: overridden, cached, or measured
        now (and cached)."""
        if question not in QUESTIONS:
            raise KeyError(question)
        forced = overrides().get(question)
        if forced is not None:
            if forced not in candidates:
                raise ValueError(f"RNNSEARCH_PLAN {question}={forced}: choose one of {', '.join(candidates)}")
            return Decision(question, shape, forced, {}, "override")
        key = (question, shape)
        if len(candidates) == 1:  # nothing to choose between here: not cached, never stale
            self._memo[key] = Decision(question, shape, next(iter(candidates)), {}, "only")
            return self._memo[key]
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            # one process measures a class, the others wait and read its choice: every
            # process on the machine runs the same path (so results repeat across workers)
            with self._machine_lock():
                cached = self._read().get(f"{question}/{shape}")
                if cached and cached.get("chosen") in candidates:
                    timings = dict(cached.get("timings", {}))
                    decision = Decision(question, shape, cached["chosen"], timings, "cached")
                else:
                    timings = {name: self.timer(setup()) for name, setup in candidates.items()}
                    decision = Decision(question, shape, min(timings, key=timings.get), timings, "measured")
                    self._write(decision)
            self._memo[key] = decision
            return decision

    @contextlib.contextmanager
    def _machine_lock(self):
        if self.path is None:
            yield
            return
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115 - held for the block
        except (ImportError, OSError):  # no fcntl (Windows) or a read-only cache: measure unlocked
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def decisions(self) -> list[Decision]:
        """This process's choices, then every other choice cached for this machine."""
        out = dict(self._memo)
        for key, v in sorted(self._read().items()):
            question, _, shape = key.partition("/")
            if (question, shape) not in out:
                out[(question, shape)] = Decision(question, shape, v["chosen"], dict(v.get("timings", {})), "cached")
        return [out[k] for k in sorted(out)]

    def _read(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # a torn or foreign file: measure again

    def _write(self, d: Decision) -> None:
        if self.path is None:
            return
        data = self._read()
        data[f"{d.question}/{d.shape}"] = {"chosen": d.chosen, "timings": d.timings}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)  # another process's write is whole, never torn
        except OSError:
            pass  # a read-only cache: the choice holds for this process


def plan_path() -> Path:
    """This machine's choices: keyed by the CPU (model and flags) and the torch build."""
    import torch

    from rnnsearch.cells.cbuild import _machine_tag, cache_dir

    key = hashlib.sha256(f"{_machine_tag()}\0{torch.__version__}".encode()).hexdigest()[:16]
    return cache_dir().parent / "plans" / f"{key}.json"


_planner: Planner | None = None


def planner() -> Planner:
    """The process's planner (over :func:`plan_path`)."""
    global _planner
    if _planner is None or _planner.path != plan_path():
        _planner = Planner(plan_path())
    return _planner


__all__ = ["Decision", "Planner", "QUESTIONS", "bucket", "overrides", "planner", "plan_path", "wall_clock"]
