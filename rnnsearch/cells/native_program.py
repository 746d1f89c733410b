"""The C backend, whole loops: a cell's forward and reverse time loops as one C program.

Each loop is one call over all T steps inside one OpenMP parallel region; its steps are
``native_c``'s translation of the plan's IR. :class:`LoopProgram` is the source with what
the Python side (``native``) passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from rnnsearch.cells.ir import Elem, Num, Ref, call
from rnnsearch.cells.matmul import KERNEL_SOURCE, packed_floats
from rnnsearch.cells.native_c import Loc, NativeUnsupported, StepBody, StepC
from rnnsearch.cells.ops import KERNELS

if TYPE_CHECKING:
    from rnnsearch.cells.plan import CellPlan

# gemm.c, loop_runtime.c (beside this file), then each kernel's C definition
_PRELUDE = "\n".join(
    [
        KERNEL_SOURCE,
        (resources.files(__package__) / "loop_runtime.c").read_text(),
        *[k.c_def for k in KERNELS.values() if k.c_def],
    ]
)


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


def translate(plan: CellPlan) -> LoopProgram:
    """The C source of a cell's forward and reverse time loops (one member's: the
    member-batched loop runs it per member)."""
    f, rev = plan.step, plan.reverse
    groups = list(plan.loop_groups)
    S, D = len(plan.graph.states), len(plan.diags)
    block_w = tuple(len(b) for b in plan.blocks)
    weight_w = tuple(len(plan.loop_groups[s]) for s in groups)
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
    body = StepBody(f.body, {f"xb{i}": w for i, w in enumerate(block_w)}, weight_w)
    fixed = {f"xb{i}": Loc(f"xb{i}_t", f"{w} * n") for i, w in enumerate(block_w)}
    for i in range(S):
        fixed[f"s{i}"] = Loc(f"st{i}", f"st{i}_ld")
    if any(isinstance(v, Num) for v in f.new):
        raise NativeUnsupported("a constant state")
    new = [body.resolve(v.name) for v in f.new]
    keep = {v: f"keep{i} + t * Bn" for i, v in enumerate(saved)}
    fn = StepC(body, fixed, keep, new + saved, D)
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
    head = [Elem("go0", call("add", Ref("gsin0"), Ref("gout")))]
    head += [Elem(f"go{i}", Ref(f"gsin{i}")) for i in range(1, S)]
    widths = {f"ob{i}": w for i, w in enumerate(block_w)}
    slots = {f"ob{i}": Loc(f"gb{i}_t", f"{w} * n") for i, w in enumerate(block_w)}
    for i, (kind, j) in enumerate(group_grad):
        if kind == "ga":
            widths[f"oa{i}"] = weight_w[i]
            slots[f"oa{i}"] = Loc(f"ga{j}_t", f"{weight_w[i]} * n")
    body = StepBody(tuple(head) + rev.body, widths, weight_w)
    fixed = {"gout": Loc("gout_t", "n"), **slots}
    for i in range(S):
        fixed[f"gsin{i}"] = Loc(f"gs{i}", f"gs{i}_ld")
    for i, v in enumerate(saved):
        fixed[v] = Loc(f"keep{i}_t", "n")
    returns = [r if r is None else body.resolve(r) for r in rev.returns]
    gs, dg = returns[:S], returns[S:]
    fn = StepC(body, fixed, {}, gs + [d for d in dg if d is not None], D)
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
        if d is not None:
            at = fn.locate(d)
            loop.append(f"rs_copy_nowait(B, n, {at.base()}, {at.ld}, gd{i} + t * Bn, n);")
    decl, rot = fn.rotate(gs, "gsin", "gs")
    states = [f"const float* gs{i} = gs{i}_in; int gs{i}_ld = n;" for i in range(S)]
    final = [f"rs_copy_nowait(B, n, gs{i}, gs{i}_ld, gS{i}, n);" for i in range(S)]
    settle = any(d is not None for d in dg)  # the diagonals' gradients were copied without a barrier
    head = "for (int t = T - 1; t >= 0; t--) {"
    region, packs = _threaded(fn, weight_w, states + decl, head, loop, rot, final, settle)
    return "\n".join(lines + region), fn.work_blocks() + 2 * len(decl), packs


def _threaded(fn: StepC, weight_w, private: list[str], head, loop: list[str], rot: list[str], final, settle):
    """The time loop inside one parallel region: every thread walks all steps (its own
    copy of the pointers), multiplies its share and takes its rows of the elementwise
    work. With ``settle`` a step ends at a barrier: it copied without one after its last
    multiply, and the copies' sources are scratch that a later step reuses. Returns the
    lines and the packed weights' shapes."""
    carve, pack, shapes = fn.packed_weights(weight_w)
    return [
        *carve,
        "const unsigned fp_mode = rs_fp_mode();",
        # only gemm.c's kernel runs inside the threads: MKL's sgemm called from within a
        # parallel region (even of one thread) starts a nested team, new threads per call
        "#ifdef RS_THREADED",
        "#pragma omp parallel num_threads(rs_threads(nt))",
        "#endif",
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
