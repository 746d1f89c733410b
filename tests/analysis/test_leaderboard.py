import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from rnnsearch.analysis import leaderboard
from rnnsearch.cells import formula, zoo
from rnnsearch.db import Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import Controller
from rnnsearch.workers import LocalRunner


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A database that a smoke search filled (with trained weights kept)."""
    folder = tmp_path_factory.mktemp("searched")
    url = f"sqlite:///{folder / 'search.db'}"
    config = config_for(
        "s", "smoke", tasks=("arithmetic", "xml"), keep_weights=True, budget=SearchBudget(architectures=8)
    )
    with Store(url) as store:
        Controller(store, LocalRunner(), config).run()
    return url, folder


def cli(*args, cwd=None, columns=None):
    env = {**os.environ, "COLUMNS": str(columns)} if columns else None
    return subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_frame_matches_direct_sql(searched):
    url, _ = searched
    frame = leaderboard(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = dict(
            conn.execute(text("SELECT architecture_id, COUNT(*) FROM evaluations GROUP BY architecture_id")).all()
        )
        maxima = {
            (a, t): v
            for a, t, v in conn.execute(
                text(
                    "SELECT architecture_id, task, MAX(val_accuracy) FROM evaluations WHERE status = 'ok' GROUP BY architecture_id, task"
                )
            ).all()
        }
    engine.dispose()
    assert dict(zip(frame["id"], frame["evaluations"], strict=True)) == counts
    for _, row in frame.iterrows():
        for task in ("arithmetic", "xml", "memorize"):
            expected = maxima.get((row["id"], task))
            got = row[task]
            assert (expected is None and pd.isna(got)) or got == pytest.approx(expected)
    gru = frame[frame["name"] == "GRU"].iloc[0]
    assert gru["fitness"] == 1.0 and gru["arithmetic_rel"] == 1.0
    ranked = frame["fitness"].dropna().tolist()
    assert ranked == sorted(ranked, reverse=True)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_round_trip(searched, fmt):
    url, _ = searched
    r = cli("leaderboard", "--db", url, "--format", fmt, "--top", "50")
    assert r.returncode == 0, r.stderr
    frame = leaderboard(url, top=50)
    back = pd.read_csv(io.StringIO(r.stdout)) if fmt == "csv" else pd.DataFrame(json.loads(r.stdout))
    assert list(back.columns) == list(frame.columns)
    assert back["id"].tolist() == frame["id"].tolist()
    pd.testing.assert_series_equal(back["fitness"].astype(float), frame["fitness"].astype(float), check_names=False)


def test_table_fits_the_terminal_and_says_what_it_left_out(searched):
    url, _ = searched
    frame = leaderboard(url)
    shown = {}
    for width in (80, 100, 160):
        r = cli("leaderboard", "--db", url, "--top", "3", columns=width)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert max(len(line) for line in lines) <= width, (width, r.stdout)
        assert f"{len(frame) - 3} more; --top to see them" in r.stdout
        header = lines[0] + " " + lines[1]  # two-line headers: task name over acc / ÷GRU
        shown[width] = len(header.split())
        assert "fitness" in header and "formula" in header
    assert shown[80] < shown[160]
    assert "(--wide shows every column)" in " ".join(cli("leaderboard", "--db", url, columns=80).stdout.split())
    r = cli("leaderboard", "--db", url, "--wide", "--top", "50", columns=80)
    assert "evals" in r.stdout and "params" in r.stdout and "…" not in r.stdout
    for whole in frame["formula"]:
        assert whole in r.stdout  # whole, on one line


def test_one_formula_notation_from_zoo_to_leaderboard(searched):
    url, _ = searched
    frame = leaderboard(url)
    gru = frame[frame["name"] == "GRU"].iloc[0]
    assert gru["formula"] == formula(zoo.get("GRU"))
    assert gru["formula"].startswith("g1 = σ(W[x,h] + b); h_next = ")
    assert not frame["formula"].str.contains(r"\bn\d+ = ").any()
    zoo_lines = cli("zoo", columns=300).stdout.splitlines()
    assert any(line.startswith("GRU ") and line.endswith(gru["formula"]) for line in zoo_lines)
    legend = cli("show", "--legend").stdout
    for term in ("W[x,h] + b", "b(1)", "W~0.9I[x]", "u * v", "g1 = ...", "h_next"):
        assert term in legend


def test_csv_keeps_whole_numbers_whole(searched):
    url, _ = searched
    r = cli("leaderboard", "--db", url, "--format", "csv", "--top", "50")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert any(row["parent"] for row in rows) and any(not row["parent"] for row in rows)
    for row in rows:
        for key in ("rank", "id", "evaluations", "parameters") + (("parent",) if row["parent"] else ()):
            assert re.fullmatch(r"\d+", row[key]), (key, row[key])
        assert row["fitness"] == "" or float(row["fitness"]) > 0


@pytest.mark.parametrize(
    "args", [("--help",), ("leaderboard",), ("db", "status"), ("show", "--legend"), ("leaderboard", "--help")]
)
def test_read_only_commands_start_without_torch_or_ray(searched, args):
    url, _ = searched
    probe = (
        "import sys, atexit\n"
        "heavy = ('torch', 'ray', 'pandas', 'alembic', 'matplotlib', 'networkx')\n"
        "atexit.register(lambda: print('loaded:', sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
        "from rnnsearch.cli import main\n"
        "main()\n"
    )
    db = ("--db", url) if args[0] != "--help" and "--help" not in args and "--legend" not in args else ()
    r = subprocess.run([sys.executable, "-c", probe, *args, *db], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "loaded: []"


def test_table_rank_by_task_and_show(searched):
    url, _ = searched
    r = cli("leaderboard", "--db", url, "--task", "xml", "--top", "5")
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("rank")
    narrow = " ".join(cli("leaderboard", "--db", url, "--task", "xml", columns=60).stdout.split())
    assert "not shown at this width" in narrow and "xml acc" not in narrow  # the ranking task comes first
    frame = leaderboard(url, task="xml")
    assert frame["xml_rel"].dropna().is_monotonic_decreasing
    child = frame[frame["parent"].notna()].iloc[0]
    r = cli("show", str(int(child["id"])), "--db", url)
    assert r.returncode == 0, r.stderr
    assert "lineage:" in r.stdout and "results:" in r.stdout


def test_exported_top_cell_runs_alone_with_its_weights(searched, tmp_path):
    url, _ = searched
    top = leaderboard(url)
    arch_id = int(top[top["name"].str.startswith("#")].iloc[0]["id"])
    out = tmp_path / "top.py"
    r = cli("export", str(arch_id), "-o", str(out), "--weights", "--db", url)
    assert r.returncode == 0, r.stderr
    source = out.read_text()
    assert f"rnnsearch architecture #{arch_id}" in source and "Fitness" in source
    script = textwrap.dedent(
        f"""
        import importlib.util, sys, torch
        spec = importlib.util.spec_from_file_location("top", r"{out}")
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        saved = torch.load(r"{out.with_suffix(".pt")}")
        layer = mod.Arch{arch_id}Layer(saved["hidden_size"])
        layer.load_state_dict(saved["layers"][0])
        y, state = layer(torch.randn(7, 3, saved["hidden_size"]))
        assert torch.isfinite(y).all()
        assert not [m for m in sys.modules if m.split(".")[0] in ("rnnsearch", "networkx", "ray", "pandas")]
        print("ran", tuple(y.shape))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ran (7, 3,")


@pytest.mark.parametrize(
    "args, message",
    [
        (("show", "99999"), "no architecture with id 99999"),
        (("export", "99999", "-o", "x.py"), "no architecture with id 99999"),
        (("leaderboard", "--format", "xml"), "unknown --format"),
        (("leaderboard", "--search", "nope"), "no search named"),
        (("leaderboard", "--task", "music"), "not part of this search"),
    ],
)
def test_bad_input_is_one_line(searched, tmp_path, args, message):
    url, _ = searched
    r = cli(*args, "--db", url, cwd=tmp_path)
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_empty_database_is_one_line_and_not_created(tmp_path):
    for args in (("leaderboard",), ("report", "-o", str(tmp_path / "r")), ("show", "1")):
        r = cli(*args, "--db", f"sqlite:///{tmp_path / 'none.db'}")
        assert r.returncode != 0 and "run `rnnsearch launch` first" in r.stderr
    assert list(tmp_path.iterdir()) == []
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    r = cli("leaderboard", "--db", url)
    assert r.returncode != 0 and "no evaluations" in r.stderr


def _early_search(url: str, gru_name: str | None):
    """A search over three tasks where only arithmetic has a result yet, its GRU stored
    under ``gru_name`` (a study of a graph file keeps the file's name)."""
    from rnnsearch.db import NewEvaluation
    from rnnsearch.tasks.api import EvalResult

    with Store(url) as store:
        search = store.create_search("early", {"tasks": ["arithmetic", "xml", "ptb"], "preset": "smoke"}, 0)
        gru, _ = store.add_architecture(zoo.get("GRU"), "file:my_gru.json", name=gru_name, search_id=search.id)
        tanh, _ = store.add_architecture(zoo.get("Tanh"), "zoo:Tanh", search_id=search.id)
        evs = store.create_evaluations(
            search.id,
            [NewEvaluation(a.id, "arithmetic", {"learning_rate": 0.1}, 0, {"max_steps": 1}) for a in (gru, tanh)],
        )
        for ev, acc in zip(evs, (0.5, 0.25), strict=True):
            store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=acc))


def test_the_gru_is_the_yardstick_whatever_its_stored_name_and_early_tasks_rank(tmp_path):
    from rnnsearch.analysis.frames import board
    from rnnsearch.cells import canonical_hash
    from rnnsearch.cells.yardstick import GRU_HASH

    assert GRU_HASH == canonical_hash(zoo.get("GRU"))
    url = f"sqlite:///{tmp_path / 'early.db'}"
    _early_search(url, gru_name="my_gru")
    b = board(url, task="arithmetic")
    assert b.baseline == {"arithmetic": 0.5}
    assert [(r["name"], r["arithmetic_rel"]) for r in b.rows] == [("my_gru", 1.0), ("Tanh", 0.5)]
    for task in ("ptb", "xml"):  # in the search, no result yet: ranked by id, not a crash
        assert [r["name"] for r in board(url, task=task).rows] == ["my_gru", "Tanh"]
    r = cli("leaderboard", "--db", url, "--task", "ptb")
    assert r.returncode == 0, r.stderr
