"""What to try next: the search strategies, as ask/tell searchers.

A searcher decides *what* to try; the ``StagePolicy`` decides how far a candidate is
trained, and the loop feeds the workers. ``ask(rng, history)`` is a pure function of a
seeded generator and a frozen snapshot of the search that the loop rebuilds from the
database, so a relaunch asks the same questions and gets the same answers. ``tell``
hands a searcher each candidate's verdict as its stages end; the built-in strategies
keep no state of their own (everything they need is in the history), so it is a hook
for searchers that learn from results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnsearch.states import Stage


@dataclass(frozen=True)
class Candidate:
    """One architecture of the search as a searcher sees it."""

    architecture_id: int
    fitness: float | None  # None until it completed every task (and the GRU did)
    stage: str
    seed: bool = False

    @property
    def finished(self) -> bool:
        """Its stages ended: a verdict is in (complete, or filtered or stopped on the way)."""
        return self.stage in (Stage.COMPLETE, Stage.FILTERED, Stage.STOPPED)


@dataclass(frozen=True)
class History:
    """The search so far, in the order the architectures were made (seeds first)."""

    candidates: tuple[Candidate, ...] = ()
    population_size: int = 100

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(c.architecture_id for c in self.candidates if c.seed)

    def population(self) -> tuple[Candidate, ...]:
        """The paper's population: the best ``population_size`` scored architectures."""
        scored = sorted(
            (c for c in self.candidates if c.fitness is not None), key=lambda c: (-c.fitness, c.architecture_id)
        )
        return tuple(scored[: self.population_size])


@dataclass(frozen=True)
class Mutate:
    """Mutate ``parent`` (``times`` mutations in a row) into a new candidate."""

    parent: int
    times: int = 1


@dataclass(frozen=True)
class Reevaluate:
    """Train a member again on new settings (its fitness is its best over all of them)."""

    architecture_id: int


Proposal = Mutate | Reevaluate


class Searcher:
    name = ""

    def __init__(self, mutate_probability: float = 0.8, tournament: int = 0):
        self.mutate_probability = mutate_probability
        self.tournament = tournament

    def ask(self, rng: np.random.Generator, history: History) -> Proposal:
        raise NotImplementedError

    def tell(self, verdict: Candidate) -> None:
        """A candidate's stages ended (``verdict.finished``); the built-ins need nothing from it."""


class PaperSearcher(Searcher):
    """Jozefowicz et al.'s loop: with probability ``mutate_probability`` mutate a member of
    the population (the best 100) drawn uniformly, else train one the search found again on
    new settings. The seeds start tuned, so only found members are re-evaluated."""

    name = "paper"

    def ask(self, rng: np.random.Generator, history: History) -> Proposal:
        members = [c.architecture_id for c in history.population()]
        parents = members or list(history.seeds)
        found = [a for a in members if a not in history.seeds]
        if rng.random() >= self.mutate_probability and found:
            return Reevaluate(found[int(rng.integers(len(found)))])
        return Mutate(parents[int(rng.integers(len(parents)))])


class RegularizedSearcher(Searcher):
    """Aging evolution with tournament selection (Real et al. 2019, "Regularized evolution
    for image classifier architecture search"). The population is the ``population_size``
    youngest architectures whose verdict is in, scored or not: an architecture leaves it by
    age, never for being bad, which is what regularises. Each step samples ``tournament``
    of them (default a quarter of the population, at least 2: the paper's 25 of 100) and
    mutates the best of the sample. No re-evaluation: every step makes a child."""

    name = "regularized"

    def ask(self, rng: np.random.Generator, history: History) -> Proposal:
        done = [c for c in history.candidates if c.finished]
        population = done[-history.population_size :]
        if not population:
            seeds = history.seeds
            return Mutate(seeds[int(rng.integers(len(seeds)))])
        size = self.tournament or max(2, math.ceil(len(population) / 4))
        size = min(size, len(population))
        picked = rng.choice(len(population), size=size, replace=False)
        return Mutate(best_of([population[int(i)] for i in sorted(picked)]).architecture_id)


class RandomSearcher(Searcher):
    """The baseline every search should be compared with: random mutants of the seeds, one
    to three mutations away from a seed drawn uniformly, whatever the results so far."""

    name = "random"

    def ask(self, rng: np.random.Generator, history: History) -> Proposal:
        seeds = history.seeds
        parent = seeds[int(rng.integers(len(seeds)))]
        return Mutate(parent, times=int(rng.integers(1, 4)))


# How far a candidate got, for ranking candidates without a fitness in a tournament.
_REACHED = {Stage.COMPLETE: 3, Stage.STOPPED: 2, Stage.FILTERED: 1}


def best_of(sample: Sequence[Candidate]) -> Candidate:
    """The tournament's winner: the highest fitness; without one, the one that got furthest;
    ties go to the youngest (the last made)."""
    return max(
        sample,
        key=lambda c: (c.fitness is not None, c.fitness or 0.0, _REACHED.get(c.stage, 0), c.architecture_id),
    )


STRATEGIES: dict[str, type[Searcher]] = {s.name: s for s in (PaperSearcher, RegularizedSearcher, RandomSearcher)}


def make_searcher(strategy: str, mutate_probability: float = 0.8, tournament: int = 0) -> Searcher:
    return STRATEGIES[strategy](mutate_probability=mutate_probability, tournament=tournament)
