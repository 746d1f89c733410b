"""The sequence-wide matrix multiplies of the native path, through gemm.c's kernel.

A native layer's time loop multiplies in C; what it does once per sequence (the input
projection before the loop, its two gradients, the loop weights' gradients after it) are
large float32 products that torch sends to MKL, which runs its AVX2 code on AMD CPUs.
On a CPU with AVX-512 these go to gemm.c's kernel instead, threaded with OpenMP over
torch's thread count. :func:`fast_products` is the scope in which ``torch.mm``,
``torch.addmm``, ``torch.bmm``, ``torch.baddbmm`` and ``F.linear`` of float32 CPU tensors
do so, with their gradients (a native layer's ``prepare``, a native model's softmax);
everything else, and every other machine, runs torch's own.
"""

from __future__ import annotations

import contextlib
import functools
from importlib import resources

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from rnnsearch.cells.cbuild import NativeUnavailable, call, entry, load
from rnnsearch.cells.scratch import Scratch

# gemm.c, beside this file: the kernel this library and every native loop include
KERNEL_SOURCE = (resources.files(__package__) / "gemm.c").read_text()

_ENTRY = r"""
#ifdef RS_PACKED
/* C[b] = A[b] @ B[b] (+ C[b] when acc, + Z[b] when Z is given) for b < batch; d: batch, M,
   N, K, the strides of A (batch, row, column), of B (batch, row, column), C's (batch,
   row), acc, threads, Z's (batch, row, column); ptr: A, B, C, room for B packed
   (rs_packed_floats(K, N)), Z or NULL. Work items (a panel of B by a block of rows of C)
   are shared among the threads; each writes Z into its block just before adding to it. */
void rs_matmul(const long long* d, void** ptr) {
    const int batch = (int)d[0], M = (int)d[1], N = (int)d[2], K = (int)d[3];
    const size_t sa0 = (size_t)d[4], sai = (size_t)d[5], sak = (size_t)d[6];
    const size_t sb0 = (size_t)d[7], sbk = (size_t)d[8], sbj = (size_t)d[9];
    const size_t sc0 = (size_t)d[10];
    const int ldc = (int)d[11], threads = (int)d[13];
    const size_t sz0 = (size_t)d[14], szi = (size_t)d[15], szj = (size_t)d[16];
    const float* A = (const float*)ptr[0];
    const float* B = (const float*)ptr[1];
    float* C = (float*)ptr[2];
    float* P = (float*)ptr[3];
    const float* Z = (const float*)ptr[4];
    const int acc = (int)d[12];
    const int np = (N + RS_NR - 1) / RS_NR, mc = 16 * RS_MR, nmc = (M + mc - 1) / mc;
    const unsigned fp_mode = rs_fp_mode();
#pragma omp parallel num_threads(threads)
    {
    const unsigned fp_saved = rs_fp_enter(fp_mode);
    for (int b = 0; b < batch; b++) {
#pragma omp for schedule(static)
        for (int p = 0; p < np; p++) rs_pack_panel(K, N, B + b * sb0, sbk, sbj, P, p);
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < np * nmc; it++) {
            const int p = it / nmc, i0 = (it % nmc) * mc, i1 = i0 + mc < M ? i0 + mc : M;
            if (Z && szj != 1) { /* a bias without unit column stride: written first, then added to */
                const int j0 = p * RS_NR, w = N - j0 < RS_NR ? N - j0 : RS_NR;
                for (int i = i0; i < i1; i++)
                    for (int j = 0; j < w; j++) C[b * sc0 + (size_t)i * ldc + j0 + j] = Z[b * sz0 + i * szi + (j0 + j) * szj];
            }
            const float* z = Z && szj == 1 ? Z + b * sz0 : NULL;
            rs_gemm_panel_z(i0, i1, N, K, A + b * sa0, sai, sak, P, C + b * sc0, ldc, acc || (Z && szj != 1), p, z, szi);
        }
    }
    rs_fp_leave(fp_saved);
    }
}
#endif
"""

_scratch = Scratch(spare=4)


def packed_floats(K: int, N: int) -> int:
    """Floats a packed [K, N] right-hand side takes (gemm.c's ``rs_packed_floats``)."""
    return -(-N // 64) * 64 * K


@functools.cache
def _matmul_fn():
    """gemm.c's threaded entry, or None where it does not run (no AVX-512, no compiler)."""
    try:
        lib = load(KERNEL_SOURCE + _ENTRY, prefix="matmul", flags=("-fopenmp",))
    except NativeUnavailable:
        return None
    return entry(lib, "rs_matmul") if lib.rs_is_packed() else None


def available() -> bool:
    """Whether :func:`product` runs gemm.c's kernel here (else torch's)."""
    return _matmul_fn() is not None


def _fits(*tensors: torch.Tensor) -> bool:
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors)


def product(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor | None = None,
    accumulate: bool = False,
    bias: torch.Tensor | None = None,
    kernel: bool | None = None,
):
    """``out = a @ b`` (``out += a @ b`` when ``accumulate``; ``out = bias + a @ b`` with a
    ``bias`` that broadcasts to it) for [M, K] @ [K, N] or batched [S, M, K] @ [S, K, N]
    float32 CPU tensors of any strides; ``out`` (made when None) must have unit column
    stride. No autograd. gemm.c's kernel where it runs and, for this shape class, measured
    faster than torch's matmul (``kernel`` forces either); torch's matmul otherwise."""
    fn = _matmul_fn()
    batched = a.dim() == 3
    if out is None:
        out = a.new_empty((*a.shape[:-1], b.shape[-1]))
        accumulate = False
    if fn is not None and kernel is None:
        kernel = kernel_pays(a.shape[-2] * (a.shape[0] if batched else 1), a.shape[-1], b.shape[-1])
    if (
        fn is None
        or not kernel
        or not _fits(a, b, out)
        or out.stride(-1) != 1
        or (bias is not None and not _fits(bias))
    ):
        ref = torch.matmul(a, b)
        if bias is not None:
            return out.copy_(ref + bias)
        return out.add_(ref) if accumulate else out.copy_(ref)
    if bias is not None:
        accumulate = False
        bias = bias.expand_as(out)
    a3, b3, o3 = (t if batched else t.unsqueeze(0) for t in (a, b, out))
    z3 = None if bias is None else (bias if batched else bias.unsqueeze(0))
    S, M, K = a3.shape
    N = b3.shape[2]
    if M == 0 or N == 0:
        return out
    if K == 0:
        if bias is not None:
            return out.copy_(bias)
        return out if accumulate else out.zero_()
    dims = [
        S,
        M,
        N,
        K,
        *a3.stride(),
        *b3.stride(),
        o3.stride(0),
        o3.stride(1),
        int(accumulate),
        torch.get_num_threads(),
        *((0, 0, 0) if z3 is None else z3.stride()),
    ]
    packed = _scratch.take(packed_floats(K, N))
    call(fn, dims, [a3, b3, o3, packed, z3])
    _scratch.give(packed)
    return out


def kernel_pays(rows: int, k: int, n: int) -> bool:
    """Whether gemm.c's kernel beats torch's matmul for [rows, k] @ [k, n] here (the
    planner's ``products`` question, one measurement per shape class and machine)."""
    from rnnsearch.cells.planner import bucket, planner

    R, K, N = bucket(rows), bucket(k), bucket(n)

    def setup(kernel: bool):
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(R, K, generator=gen), torch.randn(K, N, generator=gen)
        out = torch.empty(R, N)

        def run():
            product(a, b, out, kernel=kernel)

        run.mode = "gemm" if kernel else "torch"
        return run

    choice = planner().choose(
        "products", f"r{R}-k{K}-n{N}", {"gemm": lambda: setup(True), "torch": lambda: setup(False)}
    )
    return choice.chosen == "gemm"


def _right_grad(a: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a @ b)/db, laid out as b is: the gradient of a transposed view (a weight's
    ``W.t()``) is the transpose of a contiguous product, which autograd hands on to W
    without a copy."""
    if b.stride(-2) == 1 and b.stride(-1) != 1:
        return product(g.transpose(-1, -2), a).transpose(-1, -2)
    return product(a.transpose(-1, -2), g)


class _Product(torch.autograd.Function):
    """``bias + a @ b`` (bias may be None) with both gradients through :func:`product`."""

    @staticmethod
    def forward(ctx, bias, a, b):
        out = product(a, b, bias=bias)
        ctx.save_for_backward(a, b)
        ctx.bias_shape = None if bias is None else bias.shape
        return out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_bias, need_a, need_b = ctx.needs_input_grad
        g_bias = g.sum_to_size(ctx.bias_shape) if need_bias else None
        g_a = product(g, b.transpose(-1, -2)) if need_a else None
        g_b = _right_grad(a, g, b) if need_b else None
        return g_bias, g_a, g_b


_PRODUCTS = {torch.mm: 2, torch.addmm: 2, torch.bmm: 3, torch.baddbmm: 3}
_WITH_BIAS = (torch.addmm, torch.baddbmm)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` as one product over all leading dimensions."""
    out = _Product.apply(bias, x.reshape(-1, x.shape[-1]), weight.t())
    return out.view(*x.shape[:-1], weight.shape[0])


class _FastProducts(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and not kwargs and args[0].dim() >= 1 and args[1].dim() == 2:
            if _fits(*(t for t in args if t is not None)):
                return _linear(*args)
        dim = _PRODUCTS.get(func)
        if dim is not None and not kwargs:
            bias, a, b = args if func in _WITH_BIAS else (None, *args)
            operands = (a, b) if bias is None else (bias, a, b)
            if a.dim() == dim and b.dim() == dim and _fits(*operands):
                return _Product.apply(bias, a, b)
        return func(*args, **kwargs)


def fast_products() -> contextlib.AbstractContextManager:
    """A scope in which float32 CPU ``mm``/``addmm``/``bmm``/``baddbmm`` (no ``out=``, alpha
    or beta) and ``F.linear`` run gemm.c's kernel, gradients too; everything else runs
    torch's. Where the kernel does not run, an empty scope."""
    return _FastProducts() if available() else contextlib.nullcontext()


__all__ = ["KERNEL_SOURCE", "available", "fast_products", "packed_floats", "product"]
