"""compile_cell: a graph in, a torch sequence layer out (from the generated source)."""

from __future__ import annotations

import hashlib
import linecache
import sys
import types

from torch import nn

from rnnsearch.cells.codegen import class_prefix, generate
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.plan import CellLayout, build_plan

# how a layer's time loop runs: the generated Python step, the step under torch.compile,
# or the step and its reverse translated to C (rnnsearch.cells.native), its products by
# gemm.c's kernel where it runs (AVX-512) or, with native-blas, by the BLAS torch uses;
# native-split: under BLAS, the threads split each step's rows and one thread multiplies
COMPILE_MODES = ("eager", "torch", "native", "native-blas", "native-split")
NATIVE_MODES = ("native", "native-blas", "native-split")


def compile_mode(compile: bool | str | None) -> str:
    """``False``/``None`` -> eager, ``True`` -> torch, or one of :data:`COMPILE_MODES`."""
    if compile is None or compile is False:
        return "eager"
    if compile is True:
        return "torch"
    if compile in COMPILE_MODES:
        return compile
    raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)} (or True/False), not {compile!r}")


def build_namespace(source: str, tag: str) -> dict:
    """Execute generated source (ours, never text from a file) as its own module.

    The source is registered with linecache so tracebacks and torch.compile can read it,
    and the module in ``sys.modules`` (one per distinct source) so torch.compile can
    inline its functions into a caller's graph.
    """
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<rnnsearch-cell-{digest}-{tag}>"
    name = f"rnnsearch._generated.{tag}_{digest}"
    module = sys.modules.get(name)
    if module is None:
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(name)
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - generated from the op table
        sys.modules[name] = module
    return module.__dict__


def compile_cell(
    graph: CellGraph,
    hidden_size: int,
    *,
    name: str = "Generated",
    compile: bool | str = False,
    device=None,
    dtype=None,
) -> nn.Module:
    """The cell as a sequence layer: ``forward(x_seq, state) -> (outputs, state)``.

    ``x_seq`` is time-first ``[T, batch, n]`` (as ``torch.nn.LSTM``'s default); ``state``
    a tuple of ``[batch, n]`` tensors, ``h`` first; ``outputs`` stacks ``h`` per step.
    ``compile``: ``"eager"`` (or False) runs the generated Python step; ``"torch"`` (or
    True) runs it under ``torch.compile``; ``"native"`` (``"native-blas"``: its multiplies
    by torch's BLAS even where gemm.c's kernel runs) runs the time loop and its reverse
    as C compiled on this machine for float32 CPU inputs (the Python step for the rest;
    raises ``NativeUnavailable`` without a working C compiler). The module carries
    ``.layout`` (a :class:`CellLayout`) and ``.source`` (the generated Python).
    """
    mode = compile_mode(compile)
    plan = build_plan(graph)
    source, layout = generate(plan, name)
    layer = build_namespace(source, class_prefix(name))[f"{class_prefix(name)}Layer"](hidden_size)
    if mode in NATIVE_MODES:
        from rnnsearch.cells.native import NativeLoop, translate

        layer.loop = NativeLoop(translate(plan), blas=mode == "native-blas", split=mode == "native-split")
    return _finish(layer, source, layout, mode == "torch", device, dtype)


def compile_members(
    graph: CellGraph,
    hidden_size: int,
    members: int,
    *,
    name: str = "Generated",
    compile: bool | str = False,
    device=None,
    dtype=None,
) -> nn.Module:
    """K copies of the cell as one layer, to train K settings together: parameters
    ``[K, ...]``, ``forward(x [K, T, B, n], state) -> (outputs [K, T, B, n], state)`` with
    batched matrix multiplies. Member k's slice has :func:`compile_cell`'s layout, and
    ``layer.cell.reset_member(k, scale, generator)`` draws exactly what the single cell's
    ``reset_parameters(scale, generator)`` draws."""
    mode = compile_mode(compile)
    plan = build_plan(graph)
    source, layout = generate(plan, name, members=True)
    prefix = class_prefix(name) + "Member"
    layer = build_namespace(source, prefix)[f"{prefix}Layer"](hidden_size, members)
    if mode in NATIVE_MODES:
        from rnnsearch.cells.native import NativeMemberLoop, translate

        # each member runs the single cell's program on its slices
        layer.loop = NativeMemberLoop(translate(plan), blas=mode == "native-blas", split=mode == "native-split")
    return _finish(layer, source, layout, mode == "torch", device, dtype)


def _finish(layer: nn.Module, source: str, layout: CellLayout, compile: bool, device, dtype) -> nn.Module:
    if device is not None or dtype is not None:
        layer = layer.to(device=device, dtype=dtype)
    if compile:
        layer.compile_step(dynamic=False)
    layer.layout = layout
    layer.source = source
    return layer


def layout_of(layer: nn.Module) -> CellLayout:
    return layer.layout


__all__ = ["compile_cell", "compile_members", "compile_mode", "CellLayout", "build_namespace", "COMPILE_MODES"]
