import json
import subprocess
import sys

from rnnsearch.analysis.study import study_table
from rnnsearch.db import Store


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True)


def test_study_gives_every_cell_the_same_settings_and_prints_the_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    png = tmp_path / "study.png"
    args = ("study", "--db", url, "--preset", "smoke", "--tasks", "arithmetic,xml", "--cells", "LSTM,LSTM-f", "--local")
    r = cli(*args, "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "adding the GRU" in r.stderr
    out = r.stdout.strip().splitlines()
    at = next(i for i, ln in enumerate(out) if ln.startswith("smoke preset:"))
    lines, note = out[:at], " ".join(out[at:])  # the note is wrapped where COLUMNS is set
    assert lines[0].startswith("cell") and [ln.split()[0] for ln in lines[1:]] == ["LSTM", "LSTM-f", "GRU"]
    assert note.startswith("smoke preset:") and "mean nothing" in note
    assert png.read_bytes()[:4] == b"\x89PNG"
    with Store(url) as store:
        search = store.get_search("study")
        evs = store.evaluations(search.id)
        table = study_table(store, "study")
    # the same settings (hyperparameters and seeds) for every cell on each task
    by_arch: dict = {}
    for e in evs:
        by_arch.setdefault(e.architecture_id, set()).add((e.task, json.dumps(e.hparams, sort_keys=True), e.seed))
    assert len(by_arch) == 3 and len({frozenset(v) for v in by_arch.values()}) == 1
    assert list(table["cell"]) == ["LSTM", "LSTM-f", "GRU"]
    assert table.loc[table["cell"] == "GRU", "xml_rel"].iloc[0] == 1.0
    assert set(table["arithmetic_settings"]) == {"2/2"}
    # resumable like a search: the same command again runs nothing new
    again = cli(*args, "--format", "json")
    assert again.returncode == 0, again.stderr
    with Store(url) as store:
        assert len(store.evaluations(store.get_search("study").id)) == len(evs)
    assert [row["cell"] for row in json.loads(again.stdout)] == ["LSTM", "LSTM-f", "GRU"]


def test_study_bad_input(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    for args, message in (
        (("--cells", "LSTM,Nope"), "unknown zoo cell"),
        (("--format", "yaml"), "unknown --format"),
        (("--tasks", "music"), "unknown search task"),
    ):
        r = cli("study", "--db", url, "--preset", "smoke", "--local", *args)
        assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
