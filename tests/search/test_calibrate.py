"""rnnsearch calibrate on the smoke preset: the panel, the replicates, the long runs, the
numbers, and resuming."""

import json
import math
import subprocess
import sys

import numpy as np

from rnnsearch.analysis.calibration import _separation, _spearman, calibration
from rnnsearch.cells import zoo
from rnnsearch.cells.degenerate import degeneracy
from rnnsearch.db import Store
from rnnsearch.search.calibrate import panel_mutants


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True)


ARGS = ("--preset", "smoke", "--tasks", "memorize,arithmetic", "--seeds", "2", "--mutants", "2")


def test_calibrate_trains_the_panel_over_replicates_and_long_runs_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'cal.db'}"
    args = ("calibrate", "--db", url, "--local", "--reference-budget", "3", *ARGS)
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "separation" in out and "memorize filter" in out and "mutant-2" in out
    with Store(url) as store:
        search = store.get_search("calibrate-smoke")
        evs = store.evaluations(search.id)
        cal = calibration(store, "calibrate-smoke")
    cells = ("GRU", "LSTM-b", "MUT1", "Tanh", "LSTM-f", "mutant-1", "mutant-2")
    assert cal.cells == cells and cal.pending == 0
    # smoke: 1 memorize setting and 2 settings per task, per replicate; one long run per cell on arithmetic
    stages = {}
    for e in evs:
        stages[(e.task, e.stage)] = stages.get((e.task, e.stage), 0) + 1
    n = len(cells)
    assert stages == {
        ("memorize", "replicate:0"): n,
        ("memorize", "replicate:1"): n,
        ("arithmetic", "replicate:0"): 2 * n,
        ("arithmetic", "replicate:1"): 2 * n,
        ("arithmetic", "reference"): n,
    }
    # each replicate is its own draw of settings, the same for every cell (common random numbers)
    draws = {}
    for e in evs:
        if e.task == "arithmetic" and e.stage.startswith("replicate"):
            draws.setdefault((e.architecture_id, e.stage), set()).add((json.dumps(e.hparams, sort_keys=True), e.seed))
    by_stage = {}
    for (_, stage), d in draws.items():
        by_stage.setdefault(stage, set()).add(frozenset(d))
    assert all(len(v) == 1 for v in by_stage.values()) and len(set.union(*map(set, by_stage.values()))) == 2
    # the long run is the cell's best setting, 3x the steps, from another seed
    for e in (e for e in evs if e.stage == "reference"):
        mine = [f for f in evs if f.architecture_id == e.architecture_id and f.task == "arithmetic" and f is not e]
        best = max((f for f in mine if f.status == "ok"), key=lambda f: f.val_accuracy)
        assert e.hparams == best.hparams and e.seed != best.seed
        assert e.budget["max_steps"] == 3 * best.budget["max_steps"]
    arith = next(t for t in cal.tasks if t.task == "arithmetic")
    assert all(len(arith.scores[c]) == 2 for c in cells) and set(arith.reference) <= set(cells)
    assert arith.cpu_minutes_per_eval > 0 and arith.settings == 2
    mem = next(t for t in cal.tasks if t.task == "memorize")
    assert all(mem.passed[c][1] == 2 for c in cells)
    # resumable: the same command again trains nothing and prints the same table
    again = cli(*args, "--format", "json")
    assert again.returncode == 0, again.stderr
    assert "(0 this run)" in again.stderr
    with Store(url) as store:
        assert len(store.evaluations(store.get_search("calibrate-smoke").id)) == len(evs)
    data = json.loads(again.stdout)
    assert [t["task"] for t in data["tasks"]] == ["memorize", "arithmetic"]
    assert data["tasks"][1]["scores"] == {c: list(v) for c, v in arith.scores.items()}
    # its leaderboard and report read memorize once, though memorize is one of its tasks
    board = cli("leaderboard", "--db", url, "--format", "csv").stdout.splitlines()[0].split(",")
    assert board.count("memorize") == 1 and len(board) == len(set(board))
    r = cli("report", "--db", url, "-o", str(tmp_path / "cal.html"))
    assert r.returncode == 0, r.stderr


def test_the_panel_mutants_are_fixed_and_not_degenerate():
    a, b = panel_mutants(3), panel_mutants(3)
    assert list(a) == ["mutant-1", "mutant-2", "mutant-3"]
    assert [g.to_json() for g in a.values()] == [g.to_json() for g in b.values()]
    for g in a.values():
        assert degeneracy(g) is None and zoo.lookup_name(g) is None


def test_separation_and_rank_correlation():
    scores = {"GRU": (0.8, 0.9), "LSTM-b": (0.85, 0.85), "MUT1": (0.9, 0.8), "Tanh": (0.3, 0.4), "LSTM-f": (0.35, 0.35)}
    s = _separation(scores)
    assert math.isclose(s["good_mean"], 0.85) and math.isclose(s["bad_mean"], 0.35)
    # pooled: squared deviations 0.005 + 0 + 0.005 + 0.005 + 0 over 5 degrees of freedom
    assert math.isclose(s["pooled_sd"], math.sqrt(0.015 / 5))
    assert math.isclose(s["separation"], 0.5 / math.sqrt(0.003))
    means = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert _spearman(means, {"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0}) == 1.0
    assert math.isclose(_spearman(means, {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}), -1.0)
    assert _spearman(means, {"a": 1.0}) is None  # too few cells with a long run
    rho = _spearman(means, {"a": 1.0, "b": 3.0, "c": 2.0, "d": 4.0})
    assert math.isclose(rho, float(np.corrcoef([1, 2, 3, 4], [1, 3, 2, 4])[0, 1]))


def test_calibrate_bad_input(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    for args, message in (
        (("--format", "yaml"), "unknown --format"),
        (("--tasks", "music"), "unknown search task"),
        (("--preset", "huge"), "unknown preset"),
    ):
        r = cli("calibrate", "--db", url, "--local", *ARGS[2:], *args)
        assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
