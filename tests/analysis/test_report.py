import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnnsearch.analysis import leaderboard
from rnnsearch.analysis.draw import draw_graph, has_dot, node_label, render_cell, to_dot
from rnnsearch.analysis.frames import scope
from rnnsearch.analysis.progress import cell_title, funnel, mutant_history, stage_counts
from rnnsearch.analysis.report import NONE_PASSED, write_report
from rnnsearch.cells import CellGraph
from rnnsearch.db import Store
from rnnsearch.search.config import SearchBudget, config_for
from rnnsearch.search.controller import Controller
from rnnsearch.workers import LocalRunner

PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("How far the candidates got", "What each mutation operator produced", "Leaderboard (top 20)", "The top")


def _search(folder, name, **overrides):
    url = f"sqlite:///{folder / f'{name}.db'}"
    with Store(url) as store:
        Controller(store, LocalRunner(), config_for(name, "smoke", **overrides)).run()
    return url


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A database that a smoke search filled."""
    folder = tmp_path_factory.mktemp("searched")
    return _search(folder, "s", tasks=("arithmetic", "xml"), budget=SearchBudget(architectures=8))


@pytest.fixture(scope="module")
def none_passed(tmp_path_factory):
    """A search whose memorize bar no candidate clears: none ever gets a fitness."""
    folder = tmp_path_factory.mktemp("none_passed")
    return _search(folder, "n", tasks=("arithmetic",), memorize_threshold=0.999, budget=SearchBudget(architectures=4))


def _check_page(page: str) -> None:
    """One file: every image inlined as a decodable PNG or an inline SVG, nothing linked."""
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in sources), [s[:40] for s in sources]
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1], validate=True)[:8] == PNG
    assert not re.search(r'\b(href|xlink:href)="(?!#)', page)  # no link to another file
    assert "url(http" not in page and "@import" not in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # inline drawings must not share ids
    assert not re.search(r"#(\d+) #\1\b", page)  # a title reads "#25", never "#25 #25"


def test_report_is_one_self_contained_file(searched, tmp_path):
    with Store(searched, create=False) as store:
        out = write_report(store, tmp_path / "report.html")
        board = leaderboard(store)
    assert out == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    page = out.read_text(encoding="utf-8")
    _check_page(page)
    for section in SECTIONS:
        assert section in page
    for task in ("memorize", "arithmetic", "xml"):
        assert f"Task: {task}</h3><img" in page
    scored = board[(board["origin"] == "mutation") & board["fitness"].notna()]
    if scored.empty:
        assert NONE_PASSED in page
    else:
        assert "Best mutated candidate over time</h3><img" in page and NONE_PASSED not in page
    drawn = re.findall(r'<figure class="card cell"><h3>([^<]+)</h3>', page)
    assert drawn == [cell_title(int(r["id"]), r["name"]) for _, r in board.head(5).iterrows()]


def test_a_search_without_a_fit_mutant_says_so_plainly(none_passed, tmp_path):
    with Store(none_passed, create=False) as store:
        page = write_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
        sc = scope(store)
        made = sum(stage_counts(store, sc).values())
    _check_page(page)
    assert made >= 1
    assert NONE_PASSED in page and "Best mutated candidate over time</h3><img" not in page
    assert f"Of the {made} made by mutation" in page
    assert "How far the candidates got</h3><img" in page


@pytest.mark.parametrize("engine", ["dot", "matplotlib"])
def test_cells_are_drawn_with_dot_or_with_matplotlib(searched, tmp_path, engine):
    if engine == "dot" and not has_dot():
        pytest.skip("graphviz's dot is not installed")
    with Store(searched, create=False) as store:
        page = write_report(store, tmp_path / "r.html", top=3, engine=engine).read_text(encoding="utf-8")
    _check_page(page)
    cells = re.findall(r'<figure class="card cell">.*?</figure>', page, flags=re.S)
    assert len(cells) == 3
    for cell in cells:
        if engine == "dot":
            assert "<svg" in cell and "<img" not in cell and "h_next" in cell
        else:
            assert "<svg" not in cell and re.search(r'<img src="data:image/png;base64,[^"]+" width="\d+"', cell)


def test_a_folder_gets_index_html_and_nothing_else(searched, tmp_path):
    with Store(searched, create=False) as store:
        assert write_report(store, tmp_path, top=1) == tmp_path / "index.html"
        assert write_report(store, tmp_path / "new", top=1) == tmp_path / "new" / "index.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "new"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["index.html"]


def test_report_holds_the_page_and_every_image(searched, tmp_path):
    out = tmp_path / "report.html"
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "report", "--db", searched, "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    page = out.read_text(encoding="utf-8")
    _check_page(page)
    assert len(re.findall(r'src="data:image/png', page)) >= 5  # progress or not, funnel, operators, 3 tasks
    assert "Leaderboard" in page and "GRU" in page


def test_the_command_never_writes_over_a_file_that_is_not_a_page(searched, tmp_path):
    def report(out: str):
        cmd = [sys.executable, "-m", "rnnsearch.cli", "report", "--db", searched, "-o", out]
        return subprocess.run(cmd, capture_output=True, text=True)

    database = searched.removeprefix("sqlite:///")
    before = Path(database).read_bytes()
    r = report(database)
    assert r.returncode == 1 and "is not an HTML file" in r.stderr and len(r.stderr.splitlines()) == 1
    assert Path(database).read_bytes() == before
    r = report(f"{tmp_path / 'out.v2'}/")  # a trailing / names a folder, whatever its name
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.v2" / "index.html").is_file()
    r = report(str(tmp_path / "missing" / "deeper" / "x.html"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.v2"]


def test_history_counts_only_mutants_and_ends_at_the_best_one(searched):
    with Store(searched, create=False) as store:
        sc = scope(store)
        board = leaderboard(store)
        hist = mutant_history(store, sc, board)
        counts = stage_counts(store, sc)
        mutants = [a for a in store.architectures(search_id=sc.search_id) if a.origin == "mutation"]
    origin = dict(zip(board["id"], board["origin"], strict=True))
    assert all(origin[i] == "mutation" for i in hist["id"])
    assert hist["best"].is_monotonic_increasing and (hist["fitness"] <= hist["best"] + 1e-12).all()
    scored = board[(board["origin"] == "mutation") & board["fitness"].notna()]
    if scored.empty:
        assert hist.empty
    else:
        assert hist["best"].iloc[-1] == pytest.approx(scored["fitness"].max())
    steps = funnel(counts, board.attrs["tasks"])
    assert steps[0].reached == len(mutants) == sum(counts.values())
    assert steps[-1].reached == counts.get("complete", 0)
    assert all(a.reached >= b.reached for a, b in zip(steps, steps[1:], strict=False))


def test_node_labels_use_the_formula_notation(tmp_path):
    g = CellGraph(("h", "c"))
    w = g.add("linear", "x", "h", init="identity", gain=0.9)
    b = g.add("linear", "x", bias_init=1.0)
    gate = g.add("sigmoid", b)
    keep = g.add("mul", "c", gate)
    diff = g.add("sub", g.add("const", value=1.0), gate)
    g.set_output("c", g.add("add", keep, g.add("diag", g.add("tanh", w))))
    g.set_output("h", g.add("mul", diff, g.add("relu", "c")))
    g.validate()
    labels = {g.op(n): node_label(g, n) for n in g.g if g.op(n) not in ("input", "output", "linear")}
    assert {node_label(g, w), node_label(g, b)} == {"W~0.9I", "W + b(1)"}
    assert labels == {
        "sigmoid": "σ",
        "sub": "a − b",
        "mul": "×",
        "const": "1",
        "add": "+",
        "diag": "u *",
        "tanh": "tanh",
        "relu": "relu",
    }
    assert {node_label(g, n) for n in g.inputs + g.outputs} == {"x", "h", "c", "h_next", "c_next"}
    dot = to_dot(g, "#7")
    assert 'label="×"' in dot and 'headlabel="a"' in dot and 'headlabel="b"' in dot
    drawn = render_cell(g, "#7", engine="matplotlib")
    assert drawn.png[:8] == PNG and drawn.width > 100 and drawn.height > 100
    assert draw_graph(g, tmp_path / "g.png", "#7", engine="matplotlib").read_bytes()[:8] == PNG
    svg = draw_graph(g, tmp_path / "g.svg", "#7", engine="matplotlib").read_text(encoding="utf-8")
    assert "<svg" in svg and "W~0.9I" in svg and "a − b" in svg


def test_titles_never_repeat_the_id():
    assert cell_title(25, "#25") == "#25"
    assert cell_title(2, "GRU") == "#2 GRU"


def test_report_imports_neither_torch_nor_ray():
    code = "import sys, rnnsearch.analysis.report; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
