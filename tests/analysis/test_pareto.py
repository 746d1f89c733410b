import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest

from rnnsearch.analysis.frames import board
from rnnsearch.analysis.pareto import pareto_board, pareto_front
from rnnsearch.analysis.report import write_report
from rnnsearch.cells import parameter_count, zoo
from rnnsearch.db import NewEvaluation, Store


def cli(*args, columns=None):
    """The command in a child process, as tests/analysis/test_leaderboard.py runs it."""
    env = {**os.environ, "COLUMNS": str(columns)} if columns else None
    return subprocess.run([sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True, env=env)


def _rows(*cells):
    return [{"id": k, "fitness": f, "parameters": p} for k, f, p in cells]


def test_the_front_keeps_what_nothing_beats_on_both():
    rows = _rows(
        ("small", 0.5, 10),
        ("dominated", 0.4, 20),  # more parameters, lower fitness than "small"
        ("same-fit-more-params", 0.5, 30),  # as fit as "small", more parameters
        ("mid", 0.8, 40),
        ("same-params-lower", 0.7, 40),  # as many parameters as "mid", lower fitness
        ("best", 1.2, 90),
        ("tie-a", 0.9, 60),
        ("tie-b", 0.9, 60),  # exactly tie-a: both stay
        ("unscored", None, 1),
        ("nan", float("nan"), 2),
    )
    assert pareto_front(rows) == ["small", "mid", "tie-a", "tie-b", "best"]
    assert pareto_front(rows[::-1]) == ["small", "mid", "tie-b", "tie-a", "best"]


def test_the_front_is_sorted_by_parameters_and_takes_other_column_names():
    rows = [{"k": i, "acc": a, "n": p} for i, a, p in [(1, 0.9, 300), (2, 0.1, 100), (3, 0.5, 200)]]
    assert pareto_front(rows, key="k", fitness="acc", params="n") == [2, 3, 1]


def test_small_and_empty_tables():
    assert pareto_front([]) == []
    assert pareto_front(_rows(("only", 0.3, 5))) == ["only"]
    assert pareto_front(_rows(("a", None, 5), ("b", None, 1))) == []
    assert pareto_front(_rows(("a", 0.3, 5), ("b", 0.3, 5))) == ["a", "b"]


# A hand-made search over arithmetic and xml (the GRU's best: 0.5 and 0.4). Each cell:
# (zoo name, origin, arithmetic, xml); its fitness is min(arith / 0.5, xml / 0.4).
CELLS = [
    ("GRU", "zoo:GRU", 0.5, 0.4),  # 1.0 at 98,816: front
    ("IndRNN", "zoo:IndRNN", 0.1, 0.4),  # 0.2 at 16,640: front (fewest parameters)
    ("Tanh", "zoo:Tanh", 0.25, 0.4),  # 0.5 at 32,896: front
    ("minGRU", "zoo:minGRU", 0.3, 0.4),  # 0.6 at 33,024: front, tied with QRNN-f
    ("QRNN-f", "zoo:QRNN-f", 0.3, 0.4),  # 0.6 at 33,024, exactly minGRU: both stay
    ("minLSTM", "mutation", 0.275, 0.4),  # 0.55 at 49,536: beaten by minGRU
    ("MUT1", "zoo:MUT1", 0.45, 0.4),  # 0.9 at 65,920: front
    ("GRU-Cho", "zoo:GRU-Cho", 0.475, 0.4),  # 0.95 at 98,688: front
    ("LSTM", "zoo:LSTM", 0.5, 0.4),  # 1.0 at 131,584: as fit as the GRU, larger: out
    ("SRU", "zoo:SRU", 0.5, None),  # no xml result: no fitness, not on the front
    ("RHN-4", "mutation", 0.55, 0.44),  # 1.1 at 164,864, a mutant named #id: front
]
# Each has a result on one task only: neither has a fitness.
UNSCORED = [("GRU", "zoo:GRU", 0.5, None), ("Tanh", "zoo:Tanh", None, 0.25)]
FRONT = ["IndRNN", "Tanh", "minGRU", "QRNN-f", "MUT1", "GRU-Cho", "GRU", "RHN-4"]


def _hand_made(url: str, cells=CELLS) -> dict[str, int]:
    """The cells above stored and scored in one search; their ids by zoo name."""
    from rnnsearch.tasks.api import EvalResult

    ids = {}
    with Store(url) as store:
        search = store.create_search("hand", {"tasks": ["arithmetic", "xml"], "preset": "smoke"}, 0)
        for name, origin, *accs in cells:
            parent = ids.get("GRU") if origin == "mutation" else None
            arch, _ = store.add_architecture(zoo.get(name), origin, parent_id=parent, search_id=search.id)
            ids[name] = arch.id
            for task, acc in zip(("arithmetic", "xml"), accs, strict=True):
                if acc is None:
                    continue
                (ev,) = store.create_evaluations(
                    search.id, [NewEvaluation(arch.id, task, {"learning_rate": 0.1}, 0, {"max_steps": 1})]
                )
                store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=acc))
    return ids


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('pareto') / 'hand.db'}"
    return url, _hand_made(url)


def test_the_hand_made_search_has_the_front_it_was_made_with(hand_made):
    url, ids = hand_made
    b = board(url)
    fit = {r["id"]: r["fitness"] for r in b.rows}
    assert fit[ids["SRU"]] is None and fit[ids["RHN-4"]] == pytest.approx(1.1)
    assert fit[ids["minGRU"]] == fit[ids["QRNN-f"]] == pytest.approx(0.6)
    front = pareto_board(b)
    assert [r["id"] for r in front.rows] == [ids[n] for n in FRONT]
    assert front.total == len(FRONT) and front.pareto
    params = [r["parameters"] for r in front.rows]
    assert params == sorted(params) and params[0] == parameter_count(zoo.get("IndRNN"), 128)
    # every row off the front is beaten by one on it; none on it by any
    on = {r["id"] for r in front.rows}

    def beats(a, c):
        return (
            a["fitness"] >= c["fitness"]
            and a["parameters"] <= c["parameters"]
            and a != c
            and (a["fitness"] > c["fitness"] or a["parameters"] < c["parameters"])
        )

    scored = [r for r in b.rows if r["fitness"] is not None]
    for c in scored:
        assert (c["id"] in on) == (not any(beats(a, c) for a in scored))


def test_the_command_shows_exactly_the_front(hand_made):
    url, ids = hand_made
    r = cli("leaderboard", "--db", url, "--pareto", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["id"] for row in rows] == [ids[n] for n in FRONT]
    assert [row["name"] for row in rows] == [n if n != "RHN-4" else f"#{ids[n]}" for n in FRONT]
    ranks = {row["name"]: row["rank"] for row in rows}
    assert ranks[f"#{ids['RHN-4']}"] == 1 and ranks["IndRNN"] == 10  # the place on the whole board

    r = cli("leaderboard", "--db", url, "--pareto", columns=80)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "params" in lines[0] + lines[1] and "@128" in lines[0] + lines[1]  # the column, even at 80
    table = lines[2 : 2 + len(FRONT)]
    assert [line.split()[2] for line in table] == [n if n != "RHN-4" else f"#{ids[n]}" for n in FRONT]
    assert "16,640" in table[0] and "164,864" in table[-1]
    text = " ".join(r.stdout.split())
    assert f"the Pareto front: {len(FRONT)} cells" in text and "n=128" in text

    r = cli("leaderboard", "--db", url, "--pareto", "--top", "3", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert [int(row["id"]) for row in csv.DictReader(io.StringIO(r.stdout))] == [ids[n] for n in FRONT[:3]]
    r = cli("leaderboard", "--db", url, "--pareto", "--top", "3", columns=120)
    assert f"{len(FRONT) - 3} more; --top to see them" in r.stdout
    r = cli("leaderboard", "--db", url, "--pareto", "--search", "hand", "--task", "arithmetic", "--format", "json")
    assert r.returncode == 0, r.stderr
    by_task = [row["name"] for row in json.loads(r.stdout)]
    # on arithmetic alone SRU (0.5 at 49,792) is as good as the GRU with fewer parameters
    assert by_task == ["IndRNN", "Tanh", "minGRU", "QRNN-f", "SRU", f"#{ids['RHN-4']}"]


def test_help_says_what_the_parameters_are():
    r = cli("leaderboard", "--help", columns=200)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "--pareto" in text and "n=128" in text


def test_an_unscored_or_empty_board_says_so_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'unscored.db'}"
    _hand_made(url, UNSCORED)
    r = cli("leaderboard", "--db", url, "--pareto")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "no architecture has a fitness yet (it needs a result on every task: arithmetic, xml): "
        "there is no Pareto front to show"
    )
    r = cli("leaderboard", "--db", url, "--pareto", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout) == [] and "no Pareto front" in r.stderr
    r = cli("leaderboard", "--db", url, "--pareto", "--task", "arithmetic", "--format", "json")
    assert [row["name"] for row in json.loads(r.stdout)] == ["GRU"]
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(empty).close()
    r = cli("leaderboard", "--db", empty, "--pareto")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "no evaluations" in r.stderr


def test_the_report_plots_fitness_against_parameters(hand_made, tmp_path):
    url, ids = hand_made
    with Store(url, create=False) as store:
        page = write_report(store, tmp_path / "r.html", top=1, engine="matplotlib").read_text(encoding="utf-8")
    card = re.search(r"<h3>Fitness against parameters</h3>(.*?)</figure>", page, flags=re.S)
    assert card, "no Pareto card"
    assert card.group(1).startswith('<img src="data:image/png;base64,')
    caption = card.group(1).split("<figcaption>", 1)[1]
    assert "n=128" in caption and f"#{ids['GRU']} GRU" in caption and f"#{ids['IndRNN']} IndRNN" in caption
    assert f"#{ids['LSTM']} LSTM" not in caption and "SRU" not in caption


def test_a_report_without_a_fitness_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'unscored.db'}"
    _hand_made(url, UNSCORED)
    with Store(url, create=False) as store:
        page = write_report(store, tmp_path / "r.html", top=1, engine="matplotlib").read_text(encoding="utf-8")
    assert '<figure class="card empty"><h3>Fitness against parameters</h3><figcaption>No architecture' in page


def test_the_command_stays_light():
    code = (
        "import sys; import rnnsearch.analysis.pareto; "
        "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
