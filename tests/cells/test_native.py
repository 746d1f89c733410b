"""The native loop (the step and its reverse translated to C) equals the Python step:
outputs, final states and every gradient, for every zoo cell and 120 random graphs
(float32, where the C loop runs). test_compiler checks it against nn.LSTM / nn.GRU."""

import copy
import dataclasses
import math
import os
import platform
import subprocess
import sys

import pytest
import torch

from rnnsearch.cells import zoo
from rnnsearch.cells.cbuild import cache_dir
from rnnsearch.cells.compiler import compile_cell, compile_members
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.native import NativeLoop

from .gradients import outputs_and_gradients as _run
from .randgraph import random_graph

N, B, T = 7, 3, 6


def _pair(graph, n=N):
    torch.manual_seed(0)
    python = compile_cell(graph, n, name="C")
    with torch.no_grad():
        for p in python.parameters():  # biases and diagonals away from their inits
            p.uniform_(-0.7, 0.7)
    native = compile_cell(graph, n, name="C", compile="native")
    native.load_state_dict(python.state_dict())
    assert isinstance(native.loop, NativeLoop)
    return python, native


def _inputs(layer, dtype=torch.float32, t=T, b=B):
    n = layer.hidden_size
    g = torch.Generator().manual_seed(1)
    x = torch.randn(t, b, n, dtype=dtype, generator=g)
    states = tuple(torch.randn(b, n, dtype=dtype, generator=g) * 0.5 for _ in layer.cell.states)
    return x, _positive_normaliser(layer.cell.states, states)


def _positive_normaliser(names, states):
    """sLSTM's normaliser n is positive from its first step on (n' = f n + i, i > 0); near 0
    its division would amplify the last-ulp differences of two exp implementations."""
    return tuple(s.abs() + 0.5 if name == "n" else s for name, s in zip(names, states, strict=True))


def _close(got, ref, tol=2e-5, exact=None) -> None:
    """Within ``tol`` of the Python step's float32 results; where those are themselves far
    from the float64 ones (``exact``: a division by a value near 0 amplifies each rounding),
    within a few times their own error."""
    for i, (a, b) in enumerate(zip(got, ref, strict=True)):
        scale = max(1.0, float(b.abs().max()))
        if exact is None:
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale)
            continue
        own = (b.double() - exact[i]).abs()
        allowed = tol * scale + tol * b.abs().double() + 4 * own
        bad = (a.double() - b.double()).abs() > allowed
        assert not bad.any(), f"output {i}: {int(bad.sum())} elements off, worst {float((a - b).abs().max())}"


def _float64(layer, x, states):
    """The same layer's results in float64 (what rounding is measured against)."""
    wide = copy.deepcopy(layer).double()
    return _run(wide, x.double(), tuple(s.double() for s in states))


def _assert_same(graph, n=N, b=B, native=None) -> bool:
    python, paired = _pair(graph, n)
    native = native or paired
    native.load_state_dict(python.state_dict())
    x, states = _inputs(python, b=b)
    ref = _run(python, x, states)
    if not all(torch.isfinite(t).all() for t in ref):
        return False  # a cell that overflows on these inputs says nothing about the loop
    tol = 2e-5 if n == N else 1e-4  # float32 both: rounding grows with the sums' length
    exact = _float64(python, x, states)
    _close(_run(native, x, states), ref, tol, exact)
    with torch.no_grad():  # the forward that saves nothing
        _close(list(native(x, states)[0:1]) + list(native(x, states)[1]), ref[: 1 + len(states)], tol, exact)
    return True


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_native_loop_equals_python_step(name):
    assert _assert_same(zoo.get(name))


def test_random_graphs_native_loop_equals_python_step():
    checked = sum(_assert_same(random_graph(seed)) for seed in range(120))
    assert checked >= 100


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["LSTM", "GRU", "MUT2", "RHN", "NP"])
def test_native_loop_across_the_kernel_tiles(name, threads):
    """n = 70, batch 13: an LSTM's 280 gate columns are five 64-column panels (the last 24
    wide), its reverse multiply two k-blocks (of 192); 13 rows are two 6-row tiles and one
    more; two threads split panels or rows."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert _assert_same(zoo.get(name), n=70, b=13)
    finally:
        torch.set_num_threads(before)


def test_the_blas_build_equals_the_kernel():
    """Where AVX-512 is missing the loops multiply with BLAS: the same program built so."""
    for name in ("LSTM", "MUT1"):
        _, native = _pair(zoo.get(name), 40)
        program = native.loop.program
        native.loop = NativeLoop(dataclasses.replace(program, source="#define RS_BLAS 1\n" + program.source))
        assert not native.loop.packed
        assert _assert_same(zoo.get(name), n=40, b=9, native=native)


def test_scratch_is_reused_between_calls():
    _, native = _pair(zoo.get("GRU"))
    x, states = _inputs(native)
    _run(native, x, states)
    free = {k: [t.data_ptr() for t in v] for k, v in native.loop.scratch._free.items()}
    assert free  # the kept values, the work area and the packed weights came back
    _run(native, x, states)
    again = {k: sorted(t.data_ptr() for t in v) for k, v in native.loop.scratch._free.items()}
    assert again == {k: sorted(v) for k, v in free.items()}  # taken and given back, none new


def test_gradients_flow_through_training_steps():
    """A few SGD steps of the native and the Python loop stay together (float32)."""
    python, native = _pair(zoo.get("GRU"))
    x, states = _inputs(python)
    target = torch.randn(T, B, N, generator=torch.Generator().manual_seed(2))
    losses = []
    for layer in (python, native):
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
        run = []
        for _ in range(20):
            out, _ = layer(x, states)
            loss = ((out - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][-1] < losses[0][0]  # it learns
    for a, b in zip(*losses, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4)


def test_non_finite_values_propagate():
    """A diverged run must stay visibly diverged: NaN and inf in, non-finite out."""
    python, native = _pair(zoo.get("LSTM"))
    x, states = _inputs(python)
    x[2, 1, 3] = float("nan")
    x[4, 0, 0] = float("inf")
    with torch.no_grad():
        out_p, _ = python(x, states)
        out_n, _ = native(x, states)
    assert torch.equal(torch.isfinite(out_p), torch.isfinite(out_n))
    assert not torch.isfinite(out_n).all()


def test_other_dtypes_run_the_python_step():
    python, native = _pair(zoo.get("MUT1"))
    python, native = python.double(), native.double()
    x, states = _inputs(python, torch.float64)
    assert not native.loop.accepts(x)
    for a, b in zip(_run(native, x, states), _run(python, x, states), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu"])
def test_activations_match_torch_over_their_range(op):
    """The C sigmoid and tanh (Cephes-style polynomials) within a few float32 ulp of torch's."""
    g = CellGraph(("h",))
    g.set_output("h", g.add(op, "h"))
    layer = compile_cell(g, 4, compile="native")
    values = torch.cat([torch.linspace(-100, 100, 40000), torch.logspace(-30, 1, 4000), -torch.logspace(-30, 1, 4000)])
    h = values.reshape(-1, 4)  # one step, a batch of rows
    with torch.no_grad():
        out, _ = layer(torch.zeros(1, h.shape[0], 4), (h,))
    ref = getattr(torch, op)(h)
    torch.testing.assert_close(out[0], ref, rtol=3e-7, atol=1e-37)


def test_compiled_loops_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSEARCH_CACHE", str(tmp_path))
    from rnnsearch.cells import cbuild as native_mod

    monkeypatch.setattr(native_mod, "_loaded", {})
    compile_cell(zoo.get("MUT2"), 8, compile="native")
    built = list(cache_dir().glob("loop_*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native_mod, "_loaded", {})
    compile_cell(zoo.get("MUT2"), 8, compile="native")
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


@pytest.mark.parametrize("graph", [*zoo.names(), *[f"random-{s}" for s in range(0, 40, 4)]])
def test_member_batched_native_loop_equals_python_step(graph):
    g = random_graph(int(graph[7:])) if graph.startswith("random-") else zoo.get(graph)
    K = 3
    torch.manual_seed(0)
    python = compile_members(g, N, K)
    with torch.no_grad():
        for p in python.parameters():
            p.uniform_(-0.7, 0.7)
    native = compile_members(g, N, K, compile="native")
    native.load_state_dict(python.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(K, T, B, N, generator=gen)
    states = tuple(torch.randn(K, B, N, generator=gen) * 0.5 for _ in python.cell.states)
    states = _positive_normaliser(python.cell.states, states)
    ref = _run(python, x, states)
    if not all(torch.isfinite(t).all() for t in ref):
        pytest.skip("this cell overflows on these inputs")
    exact = _float64(python, x, states)
    _close(_run(native, x, states), ref, exact=exact)
    with torch.no_grad():
        out, final = native(x, states)
    _close([out, *final], ref[: 1 + len(states)], exact=exact)


def test_models_use_the_native_loop_on_a_cpu(monkeypatch):
    from rnnsearch.tasks.model import loop_for

    monkeypatch.delenv("RNNSEARCH_LOOP", raising=False)
    assert loop_for(torch.device("cpu")) == "native"
    assert loop_for(torch.device("cuda")) == "eager"
    monkeypatch.setenv("RNNSEARCH_LOOP", "eager")
    assert loop_for(torch.device("cpu")) == "eager"
    monkeypatch.setenv("RNNSEARCH_LOOP", "turbo")
    with pytest.raises(ValueError, match="compile must be one of"):
        loop_for(torch.device("cpu"))


def test_without_a_compiler_models_fall_back_to_the_python_step(tmp_path, monkeypatch):
    from rnnsearch.cells import cbuild as native_mod
    from rnnsearch.tasks.model import CellModel

    monkeypatch.setenv("RNNSEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    monkeypatch.setattr(native_mod, "_loaded", {})
    with pytest.warns(UserWarning, match="native loop is unavailable"):
        model = CellModel(zoo.get("GRU"), 8, 2, 10, compile="native")
    assert all(layer.loop is None for layer in model.layers)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile must be one of"):
        compile_cell(zoo.get("GRU"), 4, compile="fast")


def _freed_memory_kept(env: dict) -> str:
    code = "from rnnsearch.cells.scratch import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_native_processes_keep_freed_memory_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert _freed_memory_kept(env) == "True"
    assert _freed_memory_kept({**env, "MALLOC_TRIM_THRESHOLD_": "1000000"}) == "False"  # the user's own tuning stays


def test_scratch_lets_go_of_sizes_no_longer_used():
    from rnnsearch.cells.scratch import Scratch

    pool = Scratch(sizes=3)
    for numel in range(10, 20):  # sequence lengths that vary from batch to batch
        pool.give(pool.take(numel))
    assert sorted(pool._free) == [17, 18, 19]
    kept = pool._free[19][0]
    assert pool.take(19) is kept  # a size still in use is reused


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="FTZ/DAZ are x86 modes")
def test_the_loop_threads_take_the_callers_denormal_mode():
    # h_next = x + h with denormal x: flushed to 0 on every row when the caller flushes
    # denormals, whichever of the loop's threads computes the row; kept otherwise (the
    # rows are split among 2 threads where gemm.c's AVX-512 kernel runs; elsewhere the
    # loop runs in the calling thread)
    g = CellGraph(("h",))
    g.set_output("h", g.add("add", "x", "h"))
    layer = compile_cell(g, 16, compile="native")
    assert isinstance(layer.loop, NativeLoop)
    x = torch.full((3, 24, 16), 1e-40)
    h0 = (torch.zeros(24, 16),)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            kept, _ = layer(x, h0)
            torch.set_flush_denormal(True)
            try:
                flushed, _ = layer(x, h0)
            finally:
                torch.set_flush_denormal(False)
    finally:
        torch.set_num_threads(threads)
    assert (kept != 0).all()
    assert (flushed == 0).all()


@pytest.mark.parametrize("mode", ["native-blas", "native-split"])
def test_the_loop_variants_equal_the_python_step(mode):
    """native-blas (the multiplies by torch's BLAS even where gemm.c's kernel runs) and
    native-split (the threads split each step's rows, one multiplies), the planner's other
    candidates, compute what the Python step computes, on 2 threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _check_variant(mode)
    finally:
        torch.set_num_threads(threads)


def _check_variant(mode):
    python, _ = _pair(zoo.get("LSTM"))
    variant = compile_cell(zoo.get("LSTM"), N, name="C", compile=mode)
    variant.load_state_dict(python.state_dict())
    assert (variant.loop.blas, variant.loop.split) == (mode == "native-blas", mode == "native-split")
    x, states = _inputs(python, b=13)
    _close(_run(variant, x, states), _run(python, x, states))
    members = compile_members(zoo.get("GRU"), N, 2, compile=mode)
    assert members.loop.single.split == (mode == "native-split")
