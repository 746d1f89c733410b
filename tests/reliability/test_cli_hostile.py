"""Every command with missing, malformed and out-of-range arguments: one clear line, a
non-zero exit, no traceback, nothing written."""

import subprocess
import sys

import pytest

BAD = [
    ("zoo", "--hidden", "-1"),
    ("zoo", "--hidden", "many"),
    ("show",),
    ("show", "'; import os #"),
    ("show", "nope.json"),
    ("show", "MUT1", "--hidden", "0"),
    ("export", "-o", "x.py"),
    ("export", "--zoo", "MUT1"),
    ("export", "--zoo", "Bogus", "-o", "x.py"),
    ("export", "--graph", "missing.json", "-o", "x.py"),
    ("export", "--zoo", "MUT1", "-o", "no/dir/x.py"),
    ("train", "--cell", "LSTM"),
    ("train", "--cell", "LSTM", "--task", "music"),
    ("train", "--cell", "LSTM", "--task", "xml", "--preset", "huge"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "lr=-1"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "layers=0"),
    ("train", "--cell", "LSTM", "--task", "xml", "--hparams", "bogus=1"),
    ("train", "--cell", "LSTM", "--task", "xml", "--seed", "-5"),
    ("train", "--cell", "LSTM", "--task", "ptb", "--data-dir", "nowhere"),
    ("train", "--cell", "LSTM", "--task", "xml", "--device", "tpu"),
    ("launch", "--preset", "huge", "--db", "sqlite:///r.db"),
    ("launch", "--tasks", "xml,xml", "--db", "sqlite:///r.db"),
    ("launch", "--budget", "evaluations=-3", "--db", "sqlite:///r.db"),
    ("launch", "--budget", "forever", "--db", "sqlite:///r.db"),
    ("launch", "--seeds", "LSTM", "--db", "sqlite:///r.db"),
    ("launch", "--mutate", "2", "--db", "sqlite:///r.db"),
    ("launch", "--db", "mysql://x@y/z"),
    ("launch", "--db", "sqlite:///no/such/dir/r.db"),
    ("leaderboard", "--db", "sqlite:///r.db"),
    ("leaderboard", "--format", "xml", "--db", "sqlite:///r.db"),
    ("leaderboard", "--top", "0", "--db", "sqlite:///r.db"),
    ("report", "--db", "sqlite:///r.db"),
    ("study", "--cells", "LSTM,Bogus", "--db", "sqlite:///r.db", "--local"),
    ("study", "--format", "yaml", "--db", "sqlite:///r.db"),
    ("db", "status", "--db", "not a url"),
    ("db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"),
    ("db", "frobnicate"),
    ("frobnicate",),
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments(tmp_path, args):
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("Token authentication")]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert list(tmp_path.iterdir()) == [], "something was written"


def test_a_local_ray_has_no_dashboard_and_uses_tokens(ray_local):
    import ray

    ctx = ray.get_runtime_context()
    assert ray.is_initialized()
    out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    assert ":8265 " not in out  # the dashboard's port
    assert ctx.gcs_address
