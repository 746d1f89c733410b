import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_zoo_lists_every_cell_within_the_terminal():
    import os

    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "zoo"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert r.returncode == 0
    for name in ("Tanh", "LSTM-b", "GRU", "MUT3", "CIFG", "FGR", "IndRNN", "RHN"):
        assert f"\n{name} " in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "h_next = tanh(W[x,h] + b)" in r.stdout  # short formulas are whole


def test_show_prints_formula_and_draws(tmp_path):
    png = tmp_path / "g.png"
    r = run("show", "GRU", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "h_next = " in r.stdout and "canonical hash" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_writes_a_module(tmp_path):
    out = tmp_path / "mut1.py"
    r = run("export", "--zoo", "MUT1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "class MUT1Layer" in out.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ("show", "NoSuchCell"),
        ("show", "missing.json"),
        ("export", "-o", "x.py"),
        ("export", "--zoo", "LSTM", "--graph", "g.json", "-o", "x.py"),
        ("export", "--zoo", "LSTM", "-o", "no/such/folder/x.py"),
        ("zoo", "--hidden", "0"),
        ("nosuchcommand",),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args):
    r = run(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_malformed_graph_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"schema": 1, "states": ["h"], "nodes": [{"id": "a", "op": "tanh", "inputs": ["a"]}], "outputs": {"h": "a"}}'
    )
    r = run("show", str(bad))
    assert r.returncode == 1
    assert "cycle" in r.stderr and "Traceback" not in r.stderr


def test_bad_loop_setting_is_refused_up_front(tmp_path):
    import os

    env = {**os.environ, "RNNSEARCH_LOOP": "turbo"}
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "train", "--cell", "GRU", "--task", "memorize", "--preset", "smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: RNNSEARCH_LOOP='turbo': use one of eager, torch, native, native-blas, native-split"
    ]
