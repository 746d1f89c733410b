"""The native loop: a cell's time loop and its reverse, translated to C and compiled here.

The generated Python step costs one interpreter round trip and one kernel launch per
operation per time step; on a cell's small matrices that, not arithmetic, sets the
speed. This backend takes the generated ``step_save`` and ``step_back`` (the same
straight-line code the Python path runs, so both paths mean the same thing), translates
them to C and compiles them with the machine's C compiler: one call runs all T steps,
each step one matrix multiply per loop weight (gemm.c's AVX-512 kernel on a weight
packed once per call; BLAS ``sgemm`` from the running torch without AVX-512) and one
fused, vectorised loop over the elements between two multiplies, all of it threaded
with OpenMP. The backward is one call too; the weight gradients stay one matrix multiply
over all steps (rnnsearch.cells.matmul), as do the cell's x-only products in ``prepare``.

float32 on the CPU only: other dtypes and devices run the Python step. A graph whose
step uses something the translator does not know raises :class:`NativeUnsupported`;
a machine without a working compiler :class:`~rnnsearch.cells.cbuild.NativeUnavailable`.
"""

from __future__ import annotations

import torch

from rnnsearch.cells.cbuild import call, entry, load
from rnnsearch.cells.matmul import fast_products, product
from rnnsearch.cells.native_c import NativeUnsupported
from rnnsearch.cells.native_program import LoopProgram, translate
from rnnsearch.cells.scratch import Scratch, keep_freed_memory

__all__ = ["NativeLoop", "NativeMemberLoop", "NativeUnsupported", "translate"]


# -- the Python side --------------------------------------------------------------------
def _prepare(cell, x_seq: torch.Tensor):
    """The cell's x-only work for the whole sequence, its products through gemm.c's kernel
    where it runs: (blocks, loop parameters)."""
    with fast_products():
        return cell.prepare(x_seq)


class NativeLoop:
    """Runs a layer in C: ``loop(cell, x_seq, state) -> (outputs, state)``.

    Attached to a generated layer as ``layer.loop``; the layer asks ``accepts(x)`` first
    (float32 on the CPU), and otherwise runs its Python step.
    """

    def __init__(self, program: LoopProgram, blas: bool = False, split: bool = False):
        self.program, self.blas, self.split = program, blas, split
        # RS_BLAS: the loop's multiplies by torch's BLAS even where gemm.c's kernel runs;
        # RS_SPLIT: under BLAS, the threads split each step's rows (see loop_runtime.c)
        flags = ("-fopenmp", *(("-DRS_BLAS",) if blas else ()), *(("-DRS_SPLIT",) if split else ()))
        lib = load(program.source, flags=flags)
        self.forward_c, self.backward_c = entry(lib, "rs_forward"), entry(lib, "rs_backward")
        self.packed = bool(lib.rs_is_packed())
        self.scratch = Scratch()
        keep_freed_memory()

    def __reduce__(self):  # pickled (Ray, copies of a model) as its program; reloaded on arrival
        return (NativeLoop, (self.program, self.blas, self.split))

    def __deepcopy__(self, memo):
        return self  # the library, the program and the scratch are shared

    @staticmethod
    def accepts(x: torch.Tensor) -> bool:
        return x.device.type == "cpu" and x.dtype == torch.float32

    def __call__(self, cell, x_seq: torch.Tensor, state):
        """The layer: the cell's ``prepare``, then the C loop."""
        blocks, params = _prepare(cell, x_seq)
        T = x_seq.shape[0]
        tensors = (*blocks, *state, *params)
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            outputs, *state = _NativeRecurrence.apply(self, T, *tensors)
            return outputs, tuple(state)
        outputs, state, _ = self.forward(T, blocks, state, params, save=False)
        return outputs, state

    def _work(self, blocks: int, packs, B: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        packed = self.program.pack_floats(packs, n) if self.packed else 0
        return self.scratch.take(max(blocks, 1) * B * n), self.scratch.take(packed)

    def forward(self, T: int, blocks, state, params, save: bool):
        """The C forward; with ``save``, also what the backward reads, ``[saved, T, B, n]``
        (``backward`` hands its memory back to ``scratch``)."""
        pr = self.program
        blocks = [b.contiguous() for b in blocks]
        state = [s.contiguous() for s in state]
        params = [p.contiguous() for p in params]
        B, n = state[0].shape
        new = state[0].new_empty
        out = new((T, B, n))
        final = [new((B, n)) for _ in state]
        keep = self.scratch.take(pr.saved * T * B * n).view(pr.saved, T, B, n) if save else [None] * pr.saved
        work, packs = self._work(pr.fwd_work, pr.fwd_packs, B, n)
        call(
            self.forward_c,
            [T, B, n, int(save), torch.get_num_threads()],
            [*blocks, *state, *params, out, *final, *keep, work, packs],
        )
        self.scratch.give(work, packs)
        return out, tuple(final), keep

    def backward(self, g_out, g_state, keep, params, release: bool = True):
        """The C backward; ``release``: hand ``keep`` back to the scratch (no second
        backward will read it)."""
        pr = self.program
        T, B, n = g_out.shape
        new = g_out.new_empty
        gb = [new((T, B, w * n)) for w in pr.blocks]
        ga = [new((T, B, w * n)) for w in pr.unaligned]
        gd = [new((T, B, n)) if pr.diag_operand[i] >= 0 else None for i in range(pr.diags)]
        g_init = [new((B, n)) for _ in range(pr.states)]
        work, packs = self._work(pr.bwd_work, pr.bwd_packs, B, n)
        g_state = [g.contiguous() for g in g_state]
        tensors = [g_out.contiguous(), *g_state, *keep, *params, *gb, *ga, *gd, *g_init, work, packs]
        call(self.backward_c, [T, B, n, torch.get_num_threads()], tensors)
        self.scratch.give(work, packs)
        grads_w = []
        for i, (kind, j) in enumerate(pr.group_grad):
            src = keep[pr.group_source[i]].view(T * B, n)
            d_a = (gb if kind == "gb" else ga)[j]
            # the transpose of a contiguous product: autograd accumulates the parameter (the
            # loop weight's transpose) without a copy
            grads_w.append(product(d_a.view(T * B, -1).t(), src).t())
        grads_d = [
            None if pr.diag_operand[i] < 0 else (gd[i] * keep[pr.diag_operand[i]]).sum((0, 1)) for i in range(pr.diags)
        ]
        if release:
            self.scratch.give(keep)
        return gb, g_init, grads_w + grads_d


class _NativeRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loop: NativeLoop, T: int, *tensors):
        blocks, state, params = loop.program.split(tensors)
        params = [p.contiguous() for p in params]
        out, final, keep = loop.forward(T, blocks, state, params, save=True)
        ctx.loop, ctx.keep = loop, keep
        ctx.save_for_backward(*params)
        return (out, *final)

    @staticmethod
    def backward(ctx, g_out, *g_state):
        params = ctx.saved_tensors  # torch's own error after a backward that freed the graph
        keep, release = _kept(ctx, "keep")
        gb, g_init, g_params = ctx.loop.backward(g_out, g_state, keep, params, release)
        return (None, None, *gb, *g_init, *g_params)


class NativeMemberLoop:
    """The member-batched layer's time loop in C: each member runs the single cell's
    program on its own slices (its weights, blocks and states), so K settings cost K
    loops of C and one of everything around them (embedding, softmax, optimizer)."""

    def __init__(self, program: LoopProgram, blas: bool = False, split: bool = False):
        self.single = NativeLoop(program, blas, split)

    def __reduce__(self):
        return (NativeMemberLoop, (self.single.program, self.single.blas, self.single.split))

    def __deepcopy__(self, memo):
        return self

    accepts = staticmethod(NativeLoop.accepts)

    def __call__(self, cell, x_seq: torch.Tensor, state):
        blocks, params = _prepare(cell, x_seq)
        T = x_seq.shape[1]
        tensors = (*blocks, *state, *params)
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            outputs, *state = _NativeMemberRecurrence.apply(self.single, T, *tensors)
            return outputs, tuple(state)
        runs = [
            self.single.forward(T, *_member(k, blocks, state, params), save=False) for k in range(state[0].shape[0])
        ]
        return torch.stack([r[0] for r in runs]), tuple(torch.stack(s) for s in zip(*[r[1] for r in runs], strict=True))


def _member(k: int, blocks, state, params):
    """Member k's slices: the C loop reads only their memory, so a diagonal's [1, n] slice
    serves as its [n]."""
    return [b[k] for b in blocks], [s[k] for s in state], [p[k] for p in params]


class _NativeMemberRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loop: NativeLoop, T: int, *tensors):
        blocks, state, params = loop.program.split(tensors)
        K = state[0].shape[0]
        runs, keeps, member_params = [], [], []
        for m in range(K):
            b, st, p = _member(m, blocks, state, params)
            p = [q.contiguous() for q in p]
            out, final, keep = loop.forward(T, b, st, p, save=True)
            runs.append((out, final))
            keeps.append(keep)
            member_params.append(p)
        ctx.loop, ctx.keeps, ctx.member_params = loop, keeps, member_params
        ctx.param_shapes = [p.shape for p in params]
        ctx.save_for_backward(*params)  # for torch's own error on a second backward
        outputs = torch.stack([r[0] for r in runs])
        finals = [torch.stack(f) for f in zip(*[r[1] for r in runs], strict=True)]
        return (outputs, *finals)

    @staticmethod
    def backward(ctx, g_out, *g_state):
        loop = ctx.loop
        ctx.saved_tensors  # noqa: B018 - raises torch's error after a backward that freed the graph
        keeps, release = _kept(ctx, "keeps")
        member_params = ctx.member_params
        per = [
            loop.backward(g_out[m], [g[m] for g in g_state], keeps[m], member_params[m], release)
            for m in range(len(keeps))
        ]
        gb = [torch.stack(x) for x in zip(*[r[0] for r in per], strict=True)]
        g_init = [torch.stack(x) for x in zip(*[r[1] for r in per], strict=True)]
        g_params = []
        for i, shape in enumerate(ctx.param_shapes):
            parts = [r[2][i] for r in per]
            g_params.append(None if parts[0] is None else torch.stack(parts).reshape(shape))
        if release:
            ctx.member_params = None
        return (None, None, *gb, *g_init, *g_params)


def _kept(ctx, field: str):
    """What the forward kept for the backward, and whether this backward is its last (no
    retain_graph): then it is released, as torch releases its own saved tensors."""
    kept = getattr(ctx, field)
    if kept is None:
        raise RuntimeError(
            "Trying to backward through the graph a second time; specify retain_graph=True "
            "the first time to backward through it again"
        )
    release = not _keep_graph()
    if release:
        setattr(ctx, field, None)
    return kept, release


_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", lambda: True)
