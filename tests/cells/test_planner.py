"""Fast paths chosen by measurement: the planner picks the cheaper candidate under a
deterministic cost model (no wall-clock here), caches the choice per CPU, and yields to
an override; the models ask it."""

import subprocess
import sys

import pytest
import torch

from rnnsearch.cells import cbuild, planner
from rnnsearch.cells.planner import Planner, bucket


def _costed(cost: float, calls: list):
    """A candidate whose run costs ``cost`` under the cost-model timer, and records its setup."""

    def setup():
        calls.append(cost)

        def run():
            return cost

        return run

    return setup


def cost_model(run) -> float:
    return run()  # the run reports its own cost: a deterministic model, not a clock


def test_the_cheaper_candidate_is_chosen_and_cached(tmp_path):
    calls: list = []
    p = Planner(tmp_path / "plan.json", timer=cost_model)
    d = p.choose("loop", "n256-b32", {"native": _costed(3.0, calls), "eager": _costed(2.0, calls)})
    assert (d.chosen, d.source, d.timings) == ("eager", "measured", {"native": 3.0, "eager": 2.0})
    d = p.choose("loop", "n256-b32", {"native": _costed(1.0, calls), "eager": _costed(2.0, calls)})
    assert d.chosen == "eager" and calls == [3.0, 2.0]  # asked again: not measured again
    # another process on this machine reads the choice, measuring nothing
    again = Planner(tmp_path / "plan.json", timer=cost_model)
    d = again.choose("loop", "n256-b32", {"native": _costed(1.0, calls), "eager": _costed(2.0, calls)})
    assert (d.chosen, d.source, d.timings) == ("eager", "cached", {"native": 3.0, "eager": 2.0})
    assert calls == [3.0, 2.0]
    # another shape class is its own question
    d = again.choose("loop", "n512-b32", {"native": _costed(1.0, calls), "eager": _costed(2.0, calls)})
    assert d.chosen == "native" and [x.shape for x in again.decisions()] == ["n256-b32", "n512-b32"]


def test_a_lone_candidate_is_not_measured(tmp_path):
    calls: list = []
    d = Planner(tmp_path / "plan.json", cost_model).choose("softmax", "n256", {"torch": _costed(1.0, calls)})
    assert (d.chosen, d.source, calls) == ("torch", "only", [])


def test_a_torn_cache_is_measured_again(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    calls: list = []
    d = Planner(path, cost_model).choose("loop", "n8-b8", {"native": _costed(1.0, calls), "eager": _costed(2.0, calls)})
    assert d.source == "measured" and d.chosen == "native"


def test_the_cache_key_includes_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSEARCH_CACHE", str(tmp_path))
    here = planner.plan_path()
    monkeypatch.setattr(cbuild, "_machine_tag", lambda: "model name: Another CPU\nflags: avx2 avx512f\n")
    assert planner.plan_path() != here
    assert planner.plan_path().parent == here.parent


def test_the_override_wins_and_a_bad_one_is_named(monkeypatch, tmp_path):
    calls: list = []
    p = Planner(tmp_path / "plan.json", cost_model)
    both = {"native": _costed(1.0, calls), "eager": _costed(2.0, calls)}
    monkeypatch.setenv("RNNSEARCH_PLAN", "loop=eager")
    d = p.choose("loop", "n8-b8", both)
    assert (d.chosen, d.source, calls) == ("eager", "override", [])
    monkeypatch.setenv("RNNSEARCH_PLAN", "loop=turbo")
    with pytest.raises(ValueError, match="loop=turbo: choose one of native, eager"):
        p.choose("loop", "n8-b8", both)
    monkeypatch.setenv("RNNSEARCH_PLAN", "colour=blue")
    with pytest.raises(ValueError, match="questions loop, softmax"):
        p.choose("loop", "n8-b8", both)


def test_models_ask_the_planner(monkeypatch, tmp_path):
    """loop_for on a CPU, with sizes, is the planner's choice for their class (the C
    loop made the cheaper one under the cost model, then the Python step)."""
    from rnnsearch.tasks.model import loop_for

    monkeypatch.delenv("RNNSEARCH_LOOP", raising=False)
    monkeypatch.delenv("RNNSEARCH_PLAN", raising=False)
    for cheaper in ("native", "eager"):
        fake = Planner(tmp_path / f"{cheaper}.json", timer=lambda run, c=cheaper: 1.0 if run.mode == c else 2.0)
        monkeypatch.setattr(planner, "_planner", fake)
        monkeypatch.setattr(planner, "plan_path", lambda f=fake: f.path)
        assert loop_for(torch.device("cpu"), 200, 20) == cheaper
        assert fake.decisions()[0].shape == f"n{bucket(200)}-b{bucket(20)}" == "n256-b32"
    monkeypatch.setenv("RNNSEARCH_LOOP", "native")  # the older override still sets every loop
    assert loop_for(torch.device("cpu"), 200, 20) == "native"
    assert loop_for(torch.device("cuda"), 200, 20) == "native"
    monkeypatch.delenv("RNNSEARCH_LOOP")
    assert loop_for(torch.device("cuda"), 200, 20) == "eager"


def test_doctor_prints_the_machine_and_its_choices(tmp_path):
    env = {"RNNSEARCH_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "doctor", "--no-measure"],
        capture_output=True,
        text=True,
        env={**env, "RNNSEARCH_PLAN": "loop=eager"},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for needle in (
        "CPU: ",
        "AVX2 ",
        "AVX-512 ",
        f"torch {torch.__version__}",
        "CUDA",
        "C compiler",
        "Ray",
        "fast paths",
    ):
        assert needle in out, needle
    assert "loop forced to eager by RNNSEARCH_PLAN" in out
    assert max(len(line) for line in out.splitlines() if "cached in" not in line and "/" not in line) <= 80


def test_products_ask_the_planner_only_where_the_kernel_runs(monkeypatch, tmp_path):
    """product(): torch's matmul without gemm.c's kernel (no question asked); with it, the
    planner's choice for the shape class (forced here: this CPU may lack AVX-512)."""
    from rnnsearch.cells import matmul

    asked = []
    fake = Planner(
        tmp_path / "p.json", timer=lambda run: asked.append(run.mode) or (1.0 if run.mode == "torch" else 2.0)
    )
    monkeypatch.setattr(planner, "_planner", fake)
    monkeypatch.setattr(planner, "plan_path", lambda: fake.path)
    a, b = torch.randn(30, 20), torch.randn(20, 10)
    torch.testing.assert_close(matmul.product(a, b), a @ b)
    if not matmul.available():
        assert asked == [] and fake.decisions() == []
    else:
        assert not matmul.kernel_pays(30, 20, 10) and sorted(asked) == ["gemm", "torch"]
