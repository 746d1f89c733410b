"""bench/gpu.py runs on a machine without CUDA (CI): its checks pass on the CPU and it names
every row it skipped, so the script is known to work before a GPU machine is lent."""

import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def test_gpu_bench_dry_run_on_this_machine():
    r = subprocess.run([sys.executable, str(BENCH), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "LSTM = torch.nn.LSTM (copied weights): ok" in out
    assert "GRU = torch.nn.GRU (copied weights): ok" in out
    assert "member-batched (K=3) = 3 single layers: ok" in out
    assert "Python step" in out and "member-batched K=2" in out
    if not torch.cuda.is_available():
        skipped = next(line for line in out.splitlines() if line.startswith("skipped (no CUDA)"))
        for row in ("step under CUDA graphs", "largest K that fits", "smoke search with --gpus-per-eval 0.25"):
            assert row in skipped
