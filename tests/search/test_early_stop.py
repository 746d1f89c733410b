import json

import numpy as np
import pytest

from rnnsearch.search.early_stop import best_by, rungs, trail


def test_rungs_grow_by_eta_strictly_below_the_step_budget():
    assert rungs(100, 1000) == [100, 300, 900]
    assert rungs(100, 900) == [100, 300]
    assert rungs(50, 1000, eta=2) == [50, 100, 200, 400, 800]
    assert rungs(100, 100) == []
    with pytest.raises(ValueError):
        rungs(0, 100)


def test_bars_are_the_top_one_over_eta_quantile_at_each_rung():
    curves = [
        [(100, 0.1), (200, 0.2), (300, 0.3)],
        [(100, 0.2), (200, 0.3), (300, 0.4)],
        [(100, 0.3), (200, 0.4), (300, 0.5)],
        [(100, 0.4), (200, 0.5), (300, 0.6)],
    ]
    got = trail(curves, eval_every=100, max_steps=1000)
    assert [s for s, _ in got] == [100, 300]  # 900: no curve reached it
    assert got[0][1] == pytest.approx(float(np.quantile([0.1, 0.2, 0.3, 0.4], 2 / 3)))
    assert got[1][1] == pytest.approx(float(np.quantile([0.3, 0.4, 0.5, 0.6], 2 / 3)))
    assert got[0][1] == round(got[0][1], 6)
    half = trail(curves, eval_every=100, max_steps=1000, eta=2)
    assert half[0] == (100, 0.25) and [s for s, _ in half] == [100, 200]


def test_a_rung_needs_min_curves_that_reached_it():
    curves = [[(100, 0.5), (300, 0.6)], [(100, 0.4), (300, 0.7)], [(100, 0.3)]]  # the last ended (diverged) early
    got = trail(curves, eval_every=100, max_steps=1000)
    assert [s for s, _ in got] == [100]
    assert trail(curves, eval_every=100, max_steps=1000, min_curves=2)[1][0] == 300
    assert trail(curves[:2], eval_every=100, max_steps=1000) == ()
    assert trail([], eval_every=100, max_steps=1000) == ()


def test_the_running_max_is_what_counts():
    # each curve peaks early and falls: its best so far, not its last value, is ranked
    curves = [[(100, a), (200, a / 10), (300, a / 10)] for a in (0.3, 0.6, 0.9)]
    got = dict(trail(curves, eval_every=100, max_steps=1000))
    assert got[300] == got[100] == pytest.approx(float(np.quantile([0.3, 0.6, 0.9], 2 / 3)))
    assert best_by(curves[0], 300) == 0.3 and best_by(curves[0], 50) is None and best_by(curves[0], 400) is None
    # a curve evaluated off the rungs still counts at a rung it passed
    assert best_by([(150, 0.2), (450, 0.4)], 300) == 0.2


def test_bars_are_deterministic_and_stable_in_json():
    rng = np.random.default_rng(0)
    curves = [[(s, float(rng.random())) for s in range(50, 1001, 50)] for _ in range(20)]
    a = trail(curves, eval_every=50, max_steps=1000)
    b = trail([list(c) for c in curves], eval_every=50, max_steps=1000)
    assert a == b and [s for s, _ in a] == [50, 150, 450]
    assert tuple(tuple(p) for p in json.loads(json.dumps(a))) == a
    assert all(isinstance(s, int) and isinstance(v, float) for s, v in a)
