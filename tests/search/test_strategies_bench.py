"""bench/strategies.py --dry-run: each strategy runs as a real `rnnsearch launch` (smoke preset,
three architectures, in-process) and the table has a row for each, so the script is known to
work before anyone spends an hour of CPU on it."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "strategies.py"
STRATEGIES = ("paper", "regularized", "random")


def test_strategies_bench_dry_run(tmp_path):
    r = subprocess.run(
        [sys.executable, str(BENCH), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    assert header > 0
    assert all(len(line) <= 100 for line in lines)
    for strategy in STRATEGIES:
        runs = [line.split() for line in lines[header:] if line.split()[:2] == [strategy, "0"]]
        assert len(runs) == 1, r.stdout
        assert runs[0][2] != "launch", r.stdout  # not "launch failed"
        assert int(runs[0][9]) > 0  # evaluations finished
        assert any(line.split()[:2] == [strategy, "mean"] for line in lines[header:])
    assert "functional dedup (FEC), all runs:" in r.stdout
    md = (tmp_path / "strategies.md").read_text()
    for strategy in STRATEGIES:
        assert f"| {strategy} | 0 |" in md
        assert (tmp_path / f"{strategy}-s0.db").exists()
