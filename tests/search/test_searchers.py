"""The searchers: pure given a seeded generator and a history, and each its own strategy."""

from __future__ import annotations

import numpy as np
import pytest

from rnnsearch.search.searchers import (
    STRATEGIES,
    Candidate,
    History,
    Mutate,
    PaperSearcher,
    RandomSearcher,
    Reevaluate,
    RegularizedSearcher,
    best_of,
    make_searcher,
)
from rnnsearch.states import Stage

SEEDS = (Candidate(1, 1.0, Stage.COMPLETE, seed=True), Candidate(2, 0.9, Stage.COMPLETE, seed=True))


def history(*rest: Candidate, population: int = 100) -> History:
    return History(SEEDS + rest, population)


def asks(searcher, hist: History, n: int = 200, seed: int = 7) -> list:
    return [searcher.ask(np.random.default_rng([seed, i]), hist) for i in range(n)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_searcher_is_pure_given_its_generator_and_history(name):
    hist = history(Candidate(3, 1.1, Stage.COMPLETE), Candidate(4, None, Stage.FILTERED))
    one, two = make_searcher(name), make_searcher(name)
    assert asks(one, hist) == asks(two, hist)
    one.tell(Candidate(5, 0.5, Stage.COMPLETE))  # the built-ins keep nothing from a verdict
    assert asks(one, hist) == asks(two, hist)
    assert asks(one, hist, seed=8) != asks(one, hist)  # and the generator matters


def test_paper_mutates_the_seeds_until_a_population_exists():
    hist = History(tuple(Candidate(c.architecture_id, None, Stage.SEED, True) for c in SEEDS))
    got = asks(PaperSearcher(), hist)
    assert {type(p) for p in got} == {Mutate}
    assert {p.parent for p in got} == {1, 2}


def test_paper_retrains_only_members_it_found_and_mutates_members():
    hist = history(Candidate(3, 1.1, Stage.COMPLETE), Candidate(4, None, Stage.STOPPED))
    got = asks(PaperSearcher(mutate_probability=0.8), hist, n=400)
    reevals = [p for p in got if isinstance(p, Reevaluate)]
    assert {p.architecture_id for p in reevals} == {3}  # never a seed, never an unscored one
    assert 0.1 < len(reevals) / len(got) < 0.3
    assert {p.parent for p in got if isinstance(p, Mutate)} == {1, 2, 3}


def test_paper_population_is_the_best_n():
    hist = history(Candidate(3, 1.2, Stage.COMPLETE), Candidate(4, 0.1, Stage.COMPLETE), population=2)
    assert [c.architecture_id for c in hist.population()] == [3, 1]
    assert {p.parent for p in asks(PaperSearcher(mutate_probability=1.0), hist)} == {1, 3}


def test_regularized_parents_win_a_tournament_among_the_youngest():
    young = tuple(Candidate(10 + i, 0.5 + 0.01 * i, Stage.COMPLETE) for i in range(6))
    old_star = Candidate(3, 5.0, Stage.COMPLETE)  # the best ever, but aged out
    hist = History(SEEDS + (old_star,) + young, population_size=6)
    got = asks(RegularizedSearcher(tournament=3), hist, n=300)
    assert all(isinstance(p, Mutate) and p.times == 1 for p in got)
    parents = [p.parent for p in got]
    assert 3 not in parents and 1 not in parents
    # a sample of 3 of 6: the two weakest can never win it, the strongest wins most often
    assert set(parents) <= {12, 13, 14, 15}
    assert parents.count(15) > parents.count(14) > parents.count(13)


def test_regularized_counts_unscored_verdicts_in_its_population():
    filtered = tuple(Candidate(10 + i, None, Stage.FILTERED) for i in range(4))
    hist = History(SEEDS + filtered + (Candidate(20, None, Stage.STOPPED),), population_size=5)
    got = asks(RegularizedSearcher(tournament=5), hist)
    assert {p.parent for p in got} == {20}  # got furthest: stopped at task 1 beats filtered
    # still training: not in the population yet
    assert (
        RegularizedSearcher()
        .ask(np.random.default_rng(0), History(SEEDS[:1] + (Candidate(5, None, Stage.TASK1),), 5))
        .parent
        == 1
    )


def test_regularized_starts_from_the_seeds():
    hist = History(tuple(Candidate(c.architecture_id, None, Stage.SEED, True) for c in SEEDS))
    assert {p.parent for p in asks(RegularizedSearcher(), hist)} == {1, 2}


def test_random_mutates_seeds_only_one_to_three_times():
    hist = history(Candidate(3, 9.0, Stage.COMPLETE))
    got = asks(RandomSearcher(), hist, n=300)
    assert {p.parent for p in got} == {1, 2}
    assert {p.times for p in got} == {1, 2, 3}


def test_best_of_ranks_fitness_then_progress_then_youth():
    a, b = Candidate(5, 0.7, Stage.COMPLETE), Candidate(6, 0.7, Stage.COMPLETE)
    assert best_of([a, b]) is b
    assert best_of([Candidate(7, None, Stage.STOPPED), Candidate(8, None, Stage.FILTERED)]).architecture_id == 7
    assert best_of([Candidate(9, 0.01, Stage.COMPLETE), Candidate(10, None, Stage.STOPPED)]).architecture_id == 9
