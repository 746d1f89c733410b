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

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rnnsearch.cells.cbuild import call, entry, load
from rnnsearch.cells.matmul import KERNEL_SOURCE, fast_products, packed_floats, product
from rnnsearch.cells.scratch import Scratch, keep_freed_memory

if TYPE_CHECKING:
    from rnnsearch.cells.reverse import ReverseEmitter


class NativeUnsupported(Exception):
    """The step uses something the C translator does not handle."""


# -- the C runtime every program shares -----------------------------------------------
# The multiply kernel (gemm.c, beside this file), then Cephes-style expf and tanhf: within
# 2 ulp of libm, vectorisable, NaN in gives NaN out.
_RUNTIME = r"""
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

extern void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
                   const float*, const int*, const float*, const int*, const float*, float*, const int*);

static inline float rs_exp(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -88.3762626647949f ? -88.3762626647949f : x;
    float fx = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    x = x - fx * 0.693359375f;
    x = x + fx * 2.12194440e-4f;
    float z = x * x;
    float y = 1.9875691500E-4f;
    y = y * x + 1.3981999507E-3f;
    y = y * x + 8.3334519073E-3f;
    y = y * x + 4.1665795894E-2f;
    y = y * x + 1.6666665459E-1f;
    y = y * x + 5.0000001201E-1f;
    y = y * z + x + 1.0f;
    union { int i; float f; } u;
    u.i = ((int)fx + 127) << 23;
    return y * u.f;
}
static inline float rs_sigmoid(float x) { return 1.0f / (1.0f + rs_exp(-x)); }
static inline float rs_tanh(float x) {
    float a = x < 0.0f ? -x : x;
    float e = rs_exp(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float z = x * x;
    float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
                    + 1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
    float r = x < 0.0f ? -big : big;
    return a < 0.625f ? small : r;
}
static inline float rs_relu(float x) { return x < 0.0f ? 0.0f : x; }
static inline float rs_tanh_back(float g, float y) { return g * (1.0f - y * y); }
static inline float rs_sigmoid_back(float g, float y) { return g * ((1.0f - y) * y); }
static inline float rs_relu_back(float g, float y) { return y <= 0.0f ? 0.0f : g; }

/* The loop's multiplies: by a weight packed once per call where gemm.c's kernel runs,
   else by BLAS (rs_weight gives NULL). Every function below runs inside the loop's
   parallel region: each of its threads (tid of nth) does its share. */
static int rs_threads(int nt) {
#ifdef RS_PACKED
    return nt < 1 ? 1 : nt;
#else
    return 1; /* BLAS runs its own threads */
#endif
}
/* the next packed weight's memory, carved from the caller's area; NULL under BLAS */
static float* rs_weight(float** area, int K, int N) {
#ifdef RS_PACKED
    float* P = *area;
    *area += rs_packed_floats(K, N);
    return P;
#else
    (void)area; (void)K; (void)N;
    return NULL;
#endif
}
/* P <- W[K, N] (row stride ldw), or W^T when trans; the threads share the panels */
static void rs_pack_w(int K, int N, const float* W, int ldw, int trans, float* P) {
    if (!P) return;
    const size_t sk = trans ? 1 : (size_t)ldw, sj = trans ? (size_t)ldw : 1;
#pragma omp for schedule(static)
    for (int p = 0; p < (N + RS_NR - 1) / RS_NR; p++) rs_pack_panel(K, N, W, sk, sj, P, p);
}
/* this thread's share of C[B, m] (+)= A[B, k] @ B[k, m], B packed: its rows when each
   thread gets a full tile of them (measured faster than splitting panels: a thread's
   accumulators see every panel once per step), else its panels */
static void rs_share(int tid, int nth, int B, int m, int k, const float* A, int lda, const float* P, float* C, int ldc,
                     int acc) {
#ifdef RS_PACKED
    const int np = (m + RS_NR - 1) / RS_NR;
    if (B >= nth * RS_MR) {
        for (int p = 0; p < np; p++)
            rs_gemm_panel(B * tid / nth, B * (tid + 1) / nth, m, k, A, (size_t)lda, 1, P, C, ldc, acc, p);
    } else {
        for (int p = np * tid / nth; p < np * (tid + 1) / nth; p++)
            rs_gemm_panel(0, B, m, k, A, (size_t)lda, 1, P, C, ldc, acc, p);
    }
#else
    (void)tid; (void)nth; (void)B; (void)m; (void)k; (void)A; (void)lda; (void)P; (void)C; (void)ldc; (void)acc;
#endif
}
/* row-major C[B, m] = beta * C + A[B, k] @ W[k, m] (beta 0 or 1); PW: W packed, or NULL */
static void rs_mm(int tid, int nth, int B, int k, int m, const float* A, int lda, const float* W, const float* PW,
                  float* C, int ldc, float beta) {
    if (PW) {
        rs_share(tid, nth, B, m, k, A, lda, PW, C, ldc, beta != 0.0f);
    } else if (tid == 0) {
        const float one = 1.0f;
        sgemm_("N", "N", &m, &B, &k, &one, W, &m, A, &lda, &beta, C, &ldc);
    }
#pragma omp barrier
}
/* row-major C[B, k] = G[B, m] @ W[k, m]^T; PWT: W^T packed, or NULL */
static void rs_mm_t(int tid, int nth, int B, int m, int k, const float* G, int ldg, const float* W, const float* PWT,
                    float* C, int ldc) {
    if (PWT) {
        rs_share(tid, nth, B, k, m, G, ldg, PWT, C, ldc, 0);
    } else if (tid == 0) {
        const float one = 1.0f, zero = 0.0f;
        sgemm_("T", "N", &k, &B, &m, &one, W, &m, G, &ldg, &zero, C, &ldc);
    }
#pragma omp barrier
}
/* rows split among the threads; rs_copy waits for all of them, rs_copy_nowait does not
   (for a copy nothing in this call reads) */
static void rs_copy_nowait(int B, int n, const float* src, int lds, float* dst, int ldd) {
#pragma omp for schedule(static) nowait
    for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * ldd, src + (size_t)b * lds, sizeof(float) * n);
}
static void rs_copy(int B, int n, const float* src, int lds, float* dst, int ldd) {
    rs_copy_nowait(B, n, src, lds, dst, ldd);
#pragma omp barrier
}
"""

_PRELUDE = KERNEL_SOURCE + _RUNTIME

_UNARY_C = {"sigmoid": "rs_sigmoid", "tanh": "rs_tanh", "relu": "rs_relu"}
_BACK_C = {"_tanh_backward": "rs_tanh_back", "_sigmoid_backward": "rs_sigmoid_back", "_relu_backward": "rs_relu_back"}
_BINOP_C = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


# -- the step as statements -------------------------------------------------------------
@dataclass
class _Loc:
    """Where a value lives: C pointer and row stride expressions, and a column offset in
    n-column blocks."""

    ptr: str
    ld: str
    off: int = 0

    def at(self, b: str = "b", j: str = "j") -> str:
        col = f"{self.off} * n + {j}" if self.off else j
        return f"{self.ptr}[(size_t){b} * {self.ld} + {col}]"

    def base(self) -> str:
        return f"({self.ptr} + {self.off} * n)" if self.off else self.ptr


@dataclass
class _Gemm:
    dest: str
    src: str
    weight: int
    transposed: bool  # dest = src @ w.T (the reverse step)
    add: str | None  # a block the product is added to (addmm)


@dataclass
class _Elem:
    dest: str
    expr: ast.expr


@dataclass
class _Write:
    slot: str
    col: int
    expr: ast.expr


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    raise NativeUnsupported(ast.dump(node))


class _Body:
    """Parses one generated function body into gemm / elementwise / write statements."""

    def __init__(self, lines: list[str], widths: dict[str, int], weight_widths: tuple[int, ...]):
        self.widths = dict(widths)  # value name -> width in blocks (args and gemm results)
        self.weight_widths = weight_widths
        self.pieces: dict[str, tuple[str, int]] = {}  # chunk piece -> (base, index)
        self.alias: dict[str, str] = {}
        self.stmts: list[_Gemm | _Elem | _Write] = []
        self._tmp = 0
        tree = ast.parse("\n".join(line.strip() for line in lines))
        for st in tree.body:
            self._statement(st)

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def width(self, name: str) -> int:
        name = self.resolve(name)
        return 1 if name in self.pieces else self.widths.get(name, 1)

    def _statement(self, st: ast.stmt) -> None:
        if isinstance(st, ast.Assign) and len(st.targets) == 1:
            target, value = st.targets[0], st.value
            if isinstance(target, ast.Tuple):  # a, b = x.chunk(k, -1)
                call = value
                if not (
                    isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "chunk"
                ):
                    raise NativeUnsupported(ast.unparse(st))
                base = self.resolve(_call_name(call.func.value))
                k = len(target.elts)
                if self.width(base) != k:
                    raise NativeUnsupported(ast.unparse(st))
                for i, el in enumerate(target.elts):
                    self.pieces[el.id] = (base, i)
                return
            dest = target.id
            if isinstance(value, ast.Name):
                self.alias[dest] = value.id
                return
            gemm = self._gemm(dest, value)
            if gemm is not None:
                self.stmts.append(gemm)
                self.widths[dest] = self._weight_width(gemm)
                return
            self.stmts.append(_Elem(dest, self._hoist(value)))
            return
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            call = st.value
            fn = call.func
            if _call_name(fn) == "torch.cat":
                slot = next(kw.value.id for kw in call.keywords if kw.arg == "out")
                for i, part in enumerate(call.args[0].elts):
                    self.stmts.append(_Write(slot, i, self._hoist(part)))
                return
            if isinstance(fn, ast.Attribute) and fn.attr == "copy_":
                self.stmts.append(_Write(fn.value.id, 0, self._hoist(call.args[0])))
                return
        raise NativeUnsupported(ast.unparse(st))

    def _weight_width(self, g: _Gemm) -> int:
        return 1 if g.transposed else self.weight_widths[g.weight]

    def _gemm(self, dest: str, value: ast.expr) -> _Gemm | None:
        if not isinstance(value, ast.Call):
            return None
        name = _call_name(value.func)
        if name == "torch.addmm":
            add, src, w = (a.id for a in value.args)
            return self._checked(_Gemm(dest, src, int(w[1:]), False, add))
        if name == "torch.mm":
            src, w = value.args
            if isinstance(w, ast.Name):
                return self._checked(_Gemm(dest, src.id, int(w.id[1:]), False, None))
            # torch.mm(g, w.t()): the reverse of a loop multiply
            return self._checked(_Gemm(dest, src.id, int(w.func.value.id[1:]), True, None))
        return None

    def _checked(self, g: _Gemm) -> _Gemm:
        if not 0 <= g.weight < len(self.weight_widths):
            raise NativeUnsupported(f"weight w{g.weight}")
        want = self.weight_widths[g.weight] if g.transposed else 1
        if self.width(g.src) != want:
            raise NativeUnsupported(f"multiply of {g.src}")
        return g

    def _hoist(self, expr: ast.expr) -> ast.expr:
        """Matrix multiplies inside an elementwise expression become their own statements."""

        class Hoist(ast.NodeTransformer):
            def visit_Call(inner, node):  # noqa: N805
                gemm = self._gemm("", node)
                if gemm is None:
                    inner.generic_visit(node)
                    return node
                self._tmp += 1
                gemm.dest = f"_mm{self._tmp}"
                self.stmts.append(gemm)
                self.widths[gemm.dest] = self._weight_width(gemm)
                return ast.Name(gemm.dest, ast.Load())

        return Hoist().visit(expr)


def _names(expr: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]


# -- C emission -------------------------------------------------------------------------
class _Function:
    """One C time loop over one parsed body.

    Every value lives somewhere for at least one step after it is made: args where the
    caller put them, multiply results and values read outside their fused loop in
    double-buffered scratch (parity of t), kept values in their per-step slot. So a new
    state is a pointer, never a copy.
    """

    def __init__(self, body: _Body, fixed: dict[str, _Loc], keep: dict[str, str], live_out: list[str], diags: int):
        """``fixed``: where args live (per-step pointer expressions); ``keep``: value ->
        its per-step slot when the forward saves (else scratch); ``live_out``: values read
        after the step (new states, returns, kept values)."""
        self.b = body
        self.fixed = fixed
        self.keep = {body.resolve(v): slot for v, slot in keep.items()}
        self.diag_names = {f"d{i}" for i in range(diags)}
        self.scratch: list[tuple[str, int]] = []  # (name, width in blocks)
        self.loc: dict[str, _Loc] = {}
        segment, seg = {}, 0
        for i, st in enumerate(body.stmts):
            if isinstance(st, _Gemm):
                seg += 1
            segment[i] = seg
            if isinstance(st, _Gemm):
                seg += 1
        made = {st.dest: segment[i] for i, st in enumerate(body.stmts) if isinstance(st, _Elem)}
        # values the step reads from memory whatever the fusion: carried out, multiplied
        in_memory = {body.resolve(v) for v in live_out}
        in_memory |= {body.resolve(st.src) for st in body.stmts if isinstance(st, _Gemm)}
        stored = set(in_memory)
        for i, st in enumerate(body.stmts):
            if isinstance(st, _Gemm):
                continue
            for u in _names(st.expr):
                u = body.resolve(u)
                if u in made and made[u] != segment[i]:
                    stored.add(u)
        self.stored = {v for v in stored if v in made}
        for st in body.stmts:
            if isinstance(st, _Gemm):
                w = body.widths[st.dest]
                self.loc[st.dest] = self._scratch(st.dest, w)
            elif isinstance(st, _Elem) and st.dest in self.stored:
                self.loc[st.dest] = self._scratch(st.dest, 1)
        # A product that elementwise code alone reads adds its block there (one pass over
        # the block fewer than copying it in before the multiply).
        self.addend: dict[str, str] = {}
        for st in body.stmts:
            if isinstance(st, _Gemm) and st.add is not None:
                readers = {st.dest} | {p for p, (base, _) in body.pieces.items() if base == st.dest}
                if not readers & in_memory:
                    self.addend[st.dest] = st.add
        self.placed: dict[str, str] = {}
        self.packs: set[tuple[int, bool]] = set()  # (weight, transposed) the body multiplies by

    def packed_weights(self, weight_w: tuple[int, ...]) -> tuple[list[str], list[str], tuple[tuple[int, int], ...]]:
        """Each weight the body multiplies by, packed once before the loop, in the
        orientation it is used: (their memory, carved from the caller's area ``pk``; the
        packing, inside the parallel region; each one's (K, N) in n)."""
        carve, pack, shapes = [], [], []
        for i, t in sorted(self.packs):
            m = weight_w[i]
            name = f"pwt{i}" if t else f"pw{i}"
            shape = f"{m} * n, n" if t else f"n, {m} * n"
            carve.append(f"float* {name} = rs_weight(&pk, {shape});")
            pack.append(f"rs_pack_w({shape}, w{i}, {m} * n, {int(t)}, {name});")
            shapes.append((m, 1) if t else (1, m))
        return carve, pack, tuple(shapes)

    def place(self, name: str, pointer: str) -> None:
        """Make ``name`` in memory at ``pointer`` (row stride n) instead of scratch."""
        self.scratch = [(v, w) for v, w in self.scratch if v != name]
        self.placed[name] = pointer
        self.loc[name] = _Loc(f"P_{name}", "n")

    def _scratch(self, name: str, width: int) -> _Loc:
        self.scratch.append((name, width))
        return _Loc(f"P_{name}", f"{width} * n" if width > 1 else "n")

    def locate(self, name: str) -> _Loc:
        name = self.b.resolve(name)
        if name in self.b.pieces:
            base, i = self.b.pieces[name]
            at = self.locate(base)
            return _Loc(at.ptr, at.ld, at.off + i)
        if name in self.fixed:
            return self.fixed[name]
        if name not in self.loc:
            raise NativeUnsupported(f"{name} is read but never made")
        return self.loc[name]

    def work_blocks(self) -> int:
        """Scratch size in units of B * n floats, both parities."""
        return 2 * sum(w for _, w in self.scratch)

    def pointers(self) -> list[str]:
        out, offset = [], 0
        for name, w in self.scratch:
            at = f"work + ((size_t){offset} + par * {w}) * Bn"
            if name in self.keep:
                at = f"save ? {self.keep[name]} : {at}"
            out.append(f"float* P_{name} = {at};")
            offset += 2 * w
        out += [f"float* P_{name} = {at};" for name, at in self.placed.items()]
        return out

    def expr(self, node: ast.expr, local: set[str]) -> str:
        if isinstance(node, ast.Name):
            name = self.b.resolve(node.id)
            if name in local:
                return f"L_{name}"
            if name in self.diag_names:
                return f"{name}[j]"
            base, piece = self.b.pieces.get(name, (name, 0))
            if base in self.addend:
                add = self.locate(self.addend[base])
                return f"({self.locate(name).at()} + {_Loc(add.ptr, add.ld, add.off + piece).at()})"
            return self.locate(name).at()
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return f"{float(node.value)!r}f"
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_C:
            return f"({self.expr(node.left, local)} {_BINOP_C[type(node.op)]} {self.expr(node.right, local)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{self.expr(node.operand, local)})"
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name.startswith("torch.") and name[6:] in _UNARY_C:
                return f"{_UNARY_C[name[6:]]}({self.expr(node.args[0], local)})"
            if name in _BACK_C:
                g, y = node.args[:2]
                return f"{_BACK_C[name]}({self.expr(g, local)}, {self.expr(y, local)})"
            if name == "torch.zeros_like":
                return "0.0f"
        raise NativeUnsupported(ast.unparse(node))

    def body(self) -> list[str]:
        """One step: multiplies as sgemm calls, the elementwise work between two of them as
        one loop over the elements."""
        out: list[str] = []
        pending: list[_Elem | _Write] = []

        def flush() -> None:
            if not pending:
                return
            local: set[str] = set()
            lines = []
            for st in pending:
                e = self.expr(st.expr, local)
                if isinstance(st, _Elem):
                    lines.append(f"const float L_{st.dest} = {e};")
                    local.add(st.dest)
                    if st.dest in self.stored:
                        lines.append(f"{self.loc[st.dest].at()} = L_{st.dest};")
                else:
                    slot = self.fixed[st.slot]
                    lines.append(f"{_Loc(slot.ptr, slot.ld, st.col).at()} = {e};")
            out.append("#pragma omp for schedule(static)")
            out.append("for (int b = 0; b < B; b++) {")
            out.append("#pragma GCC ivdep")
            out.append("for (int j = 0; j < n; j++) {")
            out.extend(lines)
            out.append("}}")
            pending.clear()

        for st in self.b.stmts:
            if not isinstance(st, _Gemm):
                pending.append(st)
                continue
            flush()
            src, dest = self.locate(st.src), self.loc[st.dest]
            if st.transposed:
                k = self.b.width(st.src)
                self.packs.add((st.weight, True))
                out.append(
                    f"rs_mm_t(tid, nth, B, {k} * n, n, {src.base()}, {src.ld}, w{st.weight}, pwt{st.weight}, {dest.ptr}, {dest.ld});"
                )
                continue
            m = self.b.widths[st.dest]
            beta = "0.0f"
            if st.add is not None and st.dest not in self.addend:
                add = self.locate(st.add)
                out.append(f"rs_copy(B, {m} * n, {add.base()}, {add.ld}, {dest.ptr}, {dest.ld});")
                beta = "1.0f"
            self.packs.add((st.weight, False))
            out.append(
                f"rs_mm(tid, nth, B, n, {m} * n, {src.base()}, {src.ld}, w{st.weight}, pw{st.weight}, {dest.ptr}, {dest.ld}, {beta});"
            )
        flush()
        return out

    def rotate(self, new: list[str], own_prefix: str, var: str) -> tuple[list[str], list[str]]:
        """After a step: the carried values (states, or state gradients) become pointers to
        where this step made them. One carried as another's carried value of the step
        before would be read two steps late, after its scratch is reused: that one is
        copied into a buffer of its own. Returns (declarations before the loop, lines)."""
        decl, lines = [], []
        base = self.work_blocks()
        for i, v in enumerate(new):
            at = self.locate(v)
            if v in self.fixed and v != own_prefix + str(i) and v.startswith(own_prefix):
                k = len(decl)
                decl.append(f"float* own{i} = work + ((size_t){base} + {2 * k}) * Bn;")
                lines.append(f"rs_copy(B, n, {at.base()}, {at.ld}, own{i} + par * Bn, n);")
                lines.append(f"const float* n{var}{i} = own{i} + par * Bn; const int n{var}{i}_ld = n;")
            else:
                lines.append(f"const float* n{var}{i} = {at.base()}; const int n{var}{i}_ld = {at.ld};")
        for i in range(len(new)):
            lines.append(f"{var}{i} = n{var}{i}; {var}{i}_ld = n{var}{i}_ld;")
        return decl, lines


@dataclass(frozen=True)
class LoopProgram:
    """A cell's C time loops and what the Python side passes them."""

    source: str
    blocks: tuple[int, ...]  # width of each block, in n columns
    states: int
    weights: tuple[int, ...]  # columns of each loop weight, in n
    diags: int
    saved: int
    group_source: tuple[int, ...]  # per loop weight: position of its source in saved
    group_grad: tuple[tuple[str, int], ...]  # per loop weight: ("gb", block) or ("ga", i)
    unaligned: tuple[int, ...]  # widths of the oa* slots
    diag_operand: tuple[int, ...]  # per diag: position of its operand in saved, -1: no gradient
    fwd_work: int  # scratch, in units of B * n floats
    bwd_work: int
    fwd_packs: tuple[tuple[int, int], ...]  # each packed weight's (K, N), in n
    bwd_packs: tuple[tuple[int, int], ...]

    def pack_floats(self, packs: tuple[tuple[int, int], ...], n: int) -> int:
        """Memory the loop packs its weights into."""
        return sum(packed_floats(K * n, N * n) for K, N in packs)

    def split(self, tensors):
        """(blocks, states, params) from the flat argument list the loops take."""
        k, s = len(self.blocks), self.states
        return tensors[:k], tensors[k : k + s], tensors[k + s :]


def translate(rev: ReverseEmitter) -> LoopProgram:
    """The C source of a cell's forward and reverse time loops (single form only)."""
    em, f = rev.em, rev.f
    if em.members:
        raise NativeUnsupported("the member-batched form")
    groups = list(em.loop_groups)
    S, D = len(em.g.states), len(em.diags)
    block_w = tuple(len(b) for b in em.blocks)
    weight_w = tuple(len(em.loop_groups[s]) for s in groups)
    saved = list(rev.saved)
    fwd_src, fwd_work, fwd_packs = _forward(f, block_w, weight_w, S, D, saved)
    group_grad, unaligned = [], []
    for i, s in enumerate(groups):
        if s in f.aligned_block:
            group_grad.append(("gb", f.aligned_block[s]))
        else:
            group_grad.append(("ga", len(unaligned)))
            unaligned.append(weight_w[i])
    bwd_src, bwd_work, bwd_packs = _backward(rev, block_w, weight_w, S, D, saved, tuple(unaligned), group_grad)
    return LoopProgram(
        source="\n".join([_PRELUDE, fwd_src, "", bwd_src, ""]),
        blocks=block_w,
        states=S,
        weights=weight_w,
        diags=D,
        saved=len(saved),
        group_source=tuple(rev.group_source[s] for s in groups),
        group_grad=tuple(group_grad),
        unaligned=tuple(unaligned),
        diag_operand=tuple(rev.diag_operand.get(i, -1) for i in range(D)),
        fwd_work=fwd_work,
        bwd_work=bwd_work,
        fwd_packs=fwd_packs,
        bwd_packs=bwd_packs,
    )


def _forward(f, block_w, weight_w, S, D, saved) -> tuple[str, int, tuple]:
    body = _Body(f.body, {f"xb{i}": w for i, w in enumerate(block_w)}, weight_w)
    fixed = {f"xb{i}": _Loc(f"xb{i}_t", f"{w} * n") for i, w in enumerate(block_w)}
    for i in range(S):
        fixed[f"s{i}"] = _Loc(f"st{i}", f"st{i}_ld")
    new = [body.resolve(v) for v in f.new]
    if any(not v.isidentifier() for v in new):
        raise NativeUnsupported("a constant state")
    keep = {v: f"keep{i} + t * Bn" for i, v in enumerate(saved)}
    fn = _Function(body, fixed, keep, new + saved, D)
    h_in_out = new[0] in fn.stored and new[0] not in fn.keep
    if h_in_out:  # h made straight into the outputs
        fn.place(new[0], "out + t * Bn")
    lines = [
        "void rs_forward(const long long* dims, float** p) {",
        "const int T = (int)dims[0], B = (int)dims[1], n = (int)dims[2], save = (int)dims[3], nt = (int)dims[4];",
        "const size_t Bn = (size_t)B * n;",
        "int q = 0;",
        *[f"const float* xb{i} = p[q++];" for i in range(len(block_w))],
        *[f"const float* st{i}_in = p[q++];" for i in range(S)],
        *[f"const float* w{i} = p[q++];" for i in range(len(weight_w))],
        *[f"const float* d{i} = p[q++];" for i in range(D)],
        "float* out = p[q++];",
        *[f"float* fs{i} = p[q++];" for i in range(S)],
        *[f"float* keep{i} = p[q++];" for i in range(len(saved))],
        "float* work = p[q++];",
        "float* pk = p[q++];",
    ]
    loop = ["const int par = t & 1;"]
    loop += [f"const float* xb{i}_t = xb{i} + (size_t)t * {w} * Bn;" for i, w in enumerate(block_w)]
    # kept values made elsewhere than their slot: the step's inputs are copied before its
    # first multiply (whose barrier then covers the copies), values it makes after the step
    early, late = [], []
    for i, v in enumerate(saved):
        r = body.resolve(v)
        if r not in fn.stored:
            at = fn.locate(r)
            copy = f"if (save) rs_copy_nowait(B, n, {at.base()}, {at.ld}, keep{i} + t * Bn, n);"
            (early if body.pieces.get(r, (r, 0))[0] in fixed else late).append(copy)
    if not h_in_out:
        h = fn.locate(new[0])
        late.append(f"rs_copy_nowait(B, n, {h.base()}, {h.ld}, out + t * Bn, n);")
    loop += fn.pointers() + early + fn.body() + late
    # the early copies need a barrier after them within the step: every statement of the
    # body ends at one (a multiply's, or an elementwise loop's end)
    settle = bool(late) or not body.stmts
    decl, rot = fn.rotate(new, "s", "st")
    states = [f"const float* st{i} = st{i}_in; int st{i}_ld = n;" for i in range(S)]
    final = [f"rs_copy_nowait(B, n, st{i}, st{i}_ld, fs{i}, n);" for i in range(S)]
    region, packs = _threaded(fn, weight_w, states + decl, "for (int t = 0; t < T; t++) {", loop, rot, final, settle)
    return "\n".join(lines + region), fn.work_blocks() + 2 * len(decl), packs


def _backward(rev, block_w, weight_w, S, D, saved, unaligned, group_grad) -> tuple[str, int, tuple]:
    # the incoming gradient of state 0 adds this step's output gradient, as the Python loop does
    head = ["go0 = gsin0 + gout"] + [f"go{i} = gsin{i}" for i in range(1, S)]
    widths = {f"ob{i}": w for i, w in enumerate(block_w)}
    slots = {f"ob{i}": _Loc(f"gb{i}_t", f"{w} * n") for i, w in enumerate(block_w)}
    for i, (kind, j) in enumerate(group_grad):
        if kind == "ga":
            widths[f"oa{i}"] = weight_w[i]
            slots[f"oa{i}"] = _Loc(f"ga{j}_t", f"{weight_w[i]} * n")
    body = _Body(head + rev.back_body, widths, weight_w)
    fixed = {"gout": _Loc("gout_t", "n"), **slots}
    for i in range(S):
        fixed[f"gsin{i}"] = _Loc(f"gs{i}", f"gs{i}_ld")
    for i, v in enumerate(saved):
        fixed[v] = _Loc(f"keep{i}_t", "n")
    returns = [body.resolve(r) for r in rev.back_returns]
    gs, dg = returns[:S], returns[S:]
    if any(not v.isidentifier() for v in returns):
        raise NativeUnsupported("a constant gradient")
    fn = _Function(body, fixed, {}, gs + [d for d in dg if d != "None"], D)
    lines = [
        "void rs_backward(const long long* dims, float** p) {",
        "const int T = (int)dims[0], B = (int)dims[1], n = (int)dims[2], nt = (int)dims[3];",
        "const size_t Bn = (size_t)B * n;",
        "int q = 0;",
        "const float* gout = p[q++];",
        *[f"const float* gs{i}_in = p[q++];" for i in range(S)],
        *[f"const float* keep{i} = p[q++];" for i in range(len(saved))],
        *[f"const float* w{i} = p[q++];" for i in range(len(weight_w))],
        *[f"const float* d{i} = p[q++];" for i in range(D)],
        *[f"float* gb{i} = p[q++];" for i in range(len(block_w))],
        *[f"float* ga{j} = p[q++];" for j in range(len(unaligned))],
        *[f"float* gd{i} = p[q++];" for i in range(D)],
        *[f"float* gS{i} = p[q++];" for i in range(S)],
        "float* work = p[q++];",
        "float* pk = p[q++];",
    ]
    loop = ["const int par = t & 1;", "const float* gout_t = gout + t * Bn;"]
    loop += [f"const float* keep{i}_t = keep{i} + t * Bn;" for i in range(len(saved))]
    loop += [f"float* gb{i}_t = gb{i} + (size_t)t * {w} * Bn;" for i, w in enumerate(block_w)]
    loop += [f"float* ga{j}_t = ga{j} + (size_t)t * {w} * Bn;" for j, w in enumerate(unaligned)]
    loop += fn.pointers() + fn.body()
    for i, d in enumerate(dg):
        if d != "None":
            at = fn.locate(d)
            loop.append(f"rs_copy_nowait(B, n, {at.base()}, {at.ld}, gd{i} + t * Bn, n);")
    decl, rot = fn.rotate(gs, "gsin", "gs")
    states = [f"const float* gs{i} = gs{i}_in; int gs{i}_ld = n;" for i in range(S)]
    final = [f"rs_copy_nowait(B, n, gs{i}, gs{i}_ld, gS{i}, n);" for i in range(S)]
    settle = any(d != "None" for d in dg)  # the diagonals' gradients were copied without a barrier
    head = "for (int t = T - 1; t >= 0; t--) {"
    region, packs = _threaded(fn, weight_w, states + decl, head, loop, rot, final, settle)
    return "\n".join(lines + region), fn.work_blocks() + 2 * len(decl), packs


def _threaded(fn: _Function, weight_w, private: list[str], head, loop: list[str], rot: list[str], final, settle):
    """The time loop inside one parallel region: every thread walks all steps (its own
    copy of the pointers), multiplies its share and takes its rows of the elementwise
    work. With ``settle`` a step ends at a barrier: it copied without one after its last
    multiply, and the copies' sources are scratch that a later step reuses. Returns the
    lines and the packed weights' shapes."""
    carve, pack, shapes = fn.packed_weights(weight_w)
    return [
        *carve,
        "const unsigned fp_mode = rs_fp_mode();",
        "#pragma omp parallel num_threads(rs_threads(nt))",
        "{",
        "const unsigned fp_saved = rs_fp_enter(fp_mode);",
        "const int tid = omp_get_thread_num(), nth = omp_get_num_threads();",
        *private,
        *pack,
        head,
        *loop,
        *(["#pragma omp barrier"] if settle else []),
        *rot,
        "}",
        *final,
        "rs_fp_leave(fp_saved);",
        "}",
        "}",
    ], shapes


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

    def __init__(self, program: LoopProgram):
        self.program = program
        lib = load(program.source, flags=("-fopenmp",))
        self.forward_c, self.backward_c = entry(lib, "rs_forward"), entry(lib, "rs_backward")
        self.packed = bool(lib.rs_is_packed())
        self.scratch = Scratch()
        keep_freed_memory()

    def __reduce__(self):  # pickled (Ray, copies of a model) as its program; reloaded on arrival
        return (NativeLoop, (self.program,))

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

    def backward(self, g_out, g_state, keep, params):
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
        params = ctx.saved_tensors
        keep, ctx.keep = ctx.keep, None
        gb, g_init, g_params = ctx.loop.backward(g_out, g_state, keep, params)
        return (None, None, *gb, *g_init, *g_params)


class NativeMemberLoop:
    """The member-batched layer's time loop in C: each member runs the single cell's
    program on its own slices (its weights, blocks and states), so K settings cost K
    loops of C and one of everything around them (embedding, softmax, optimizer)."""

    def __init__(self, program: LoopProgram):
        self.single = NativeLoop(program)

    def __reduce__(self):
        return (NativeMemberLoop, (self.single.program,))

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
        outputs = torch.stack([r[0] for r in runs])
        finals = [torch.stack(f) for f in zip(*[r[1] for r in runs], strict=True)]
        return (outputs, *finals)

    @staticmethod
    def backward(ctx, g_out, *g_state):
        loop = ctx.loop
        keeps, ctx.keeps = ctx.keeps, None
        per = [
            loop.backward(g_out[m], [g[m] for g in g_state], keeps[m], ctx.member_params[m]) for m in range(len(keeps))
        ]
        gb = [torch.stack(x) for x in zip(*[r[0] for r in per], strict=True)]
        g_init = [torch.stack(x) for x in zip(*[r[1] for r in per], strict=True)]
        g_params = []
        for i, shape in enumerate(ctx.param_shapes):
            parts = [r[2][i] for r in per]
            g_params.append(None if parts[0] is None else torch.stack(parts).reshape(shape))
        ctx.member_params = None
        return (None, None, *gb, *g_init, *g_params)
