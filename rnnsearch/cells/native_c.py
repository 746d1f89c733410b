"""The C backend, one step: the plan's IR statements of a step (or reverse step) as C.

One call runs all T steps: each step one matrix multiply per loop weight (gemm.c's
AVX-512 kernel on a weight packed once per call; BLAS ``sgemm`` from the running torch
without AVX-512) and one fused, vectorised loop over the elements between two multiplies,
all of it threaded with OpenMP. The statements are the plan's (``plan.step`` and
``plan.reverse``), the same the Python step runs, so both paths mean the same thing; each
kernel's C form is the op table's. ``native_program`` wraps the steps in their time loops,
``native`` compiles and calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnsearch.cells.ir import Chunk, Elem, Expr, Gemm, Ref, Stmt, Write, names_in, render_c
from rnnsearch.cells.ops import KERNELS

if TYPE_CHECKING:
    pass


class NativeUnsupported(Exception):
    """The step uses something the C translator does not handle."""


# -- the step as statements -------------------------------------------------------------
@dataclass
class Loc:
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


@dataclass(frozen=True)
class _Write:
    """One n-column part of a :class:`~rnnsearch.cells.ir.Write`."""

    slot: str
    col: int
    expr: Expr


class StepBody:
    """One step's statements as the C emitter needs them: multiplies, elementwise values
    and writes in order, with chunks and aliases turned into names for memory."""

    def __init__(self, stmts: tuple[Stmt, ...], widths: dict[str, int], weight_widths: tuple[int, ...]):
        self.widths = dict(widths)  # value name -> width in blocks (args and gemm results)
        self.weight_widths = weight_widths
        self.pieces: dict[str, tuple[str, int]] = {}  # chunk piece -> (base, index)
        self.alias: dict[str, str] = {}
        self.stmts: list[Gemm | Elem | _Write] = []
        for st in stmts:
            self._statement(st)

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def width(self, name: str) -> int:
        name = self.resolve(name)
        return 1 if name in self.pieces else self.widths.get(name, 1)

    def _statement(self, st: Stmt) -> None:
        if isinstance(st, Chunk):
            base = self.resolve(st.base)
            if self.width(base) != len(st.dests):
                raise NativeUnsupported(f"{st.dests} = {base}.chunk({len(st.dests)})")
            for i, d in enumerate(st.dests):
                self.pieces[d] = (base, i)
        elif isinstance(st, Elem) and isinstance(st.expr, Ref):
            self.alias[st.dest] = st.expr.name
        elif isinstance(st, Gemm):
            if not 0 <= st.weight < len(self.weight_widths):
                raise NativeUnsupported(f"weight w{st.weight}")
            if self.width(st.src) != (self.weight_widths[st.weight] if st.transposed else 1):
                raise NativeUnsupported(f"multiply of {st.src}")
            self.stmts.append(st)
            self.widths[st.dest] = 1 if st.transposed else self.weight_widths[st.weight]
        elif isinstance(st, Elem):
            self.stmts.append(st)
        elif isinstance(st, Write):
            self.stmts += [_Write(st.slot, i, part) for i, part in enumerate(st.parts)]
        else:  # pragma: no cover - the IR is closed
            raise NativeUnsupported(repr(st))


# -- C emission -------------------------------------------------------------------------
class StepC:
    """One C time loop over one parsed body.

    Every value lives somewhere for at least one step after it is made: args where the
    caller put them, multiply results and values read outside their fused loop in
    double-buffered scratch (parity of t), kept values in their per-step slot. So a new
    state is a pointer, never a copy.
    """

    def __init__(self, body: StepBody, fixed: dict[str, Loc], keep: dict[str, str], live_out: list[str], diags: int):
        """``fixed``: where args live (per-step pointer expressions); ``keep``: value ->
        its per-step slot when the forward saves (else scratch); ``live_out``: values read
        after the step (new states, returns, kept values)."""
        self.b = body
        self.fixed = fixed
        self.keep = {body.resolve(v): slot for v, slot in keep.items()}
        self.diag_names = {f"d{i}" for i in range(diags)}
        self.scratch: list[tuple[str, int]] = []  # (name, width in blocks)
        self.loc: dict[str, Loc] = {}
        segment, seg = {}, 0
        for i, st in enumerate(body.stmts):
            if isinstance(st, Gemm):
                seg += 1
            segment[i] = seg
            if isinstance(st, Gemm):
                seg += 1
        made = {st.dest: segment[i] for i, st in enumerate(body.stmts) if isinstance(st, Elem)}
        # values the step reads from memory whatever the fusion: carried out, multiplied
        in_memory = {body.resolve(v) for v in live_out}
        in_memory |= {body.resolve(st.src) for st in body.stmts if isinstance(st, Gemm)}
        stored = set(in_memory)
        for i, st in enumerate(body.stmts):
            if isinstance(st, Gemm):
                continue
            for u in names_in(st.expr):
                u = body.resolve(u)
                if u in made and made[u] != segment[i]:
                    stored.add(u)
        self.stored = {v for v in stored if v in made}
        for st in body.stmts:
            if isinstance(st, Gemm):
                w = body.widths[st.dest]
                self.loc[st.dest] = self._scratch(st.dest, w)
            elif isinstance(st, Elem) and st.dest in self.stored:
                self.loc[st.dest] = self._scratch(st.dest, 1)
        # A product that elementwise code alone reads adds its block there (one pass over
        # the block fewer than copying it in before the multiply).
        self.addend: dict[str, str] = {}
        for st in body.stmts:
            if isinstance(st, Gemm) and st.add is not None:
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
        self.loc[name] = Loc(f"P_{name}", "n")

    def _scratch(self, name: str, width: int) -> Loc:
        self.scratch.append((name, width))
        return Loc(f"P_{name}", f"{width} * n" if width > 1 else "n")

    def locate(self, name: str) -> Loc:
        name = self.b.resolve(name)
        if name in self.b.pieces:
            base, i = self.b.pieces[name]
            at = self.locate(base)
            return Loc(at.ptr, at.ld, at.off + i)
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

    def expr(self, e: Expr, local: set[str]) -> str:
        """An expression as C: values made in this fused loop are its locals, diagonals
        are read at column j, a product that elementwise code alone reads adds its block."""

        def ref(name: str) -> str:
            name = self.b.resolve(name)
            if name in local:
                return f"L_{name}"
            if name in self.diag_names:
                return f"{name}[j]"
            base, piece = self.b.pieces.get(name, (name, 0))
            if base in self.addend:
                add = self.locate(self.addend[base])
                return f"({self.locate(name).at()} + {Loc(add.ptr, add.ld, add.off + piece).at()})"
            return self.locate(name).at()

        return render_c(e, KERNELS, ref)

    def body(self) -> list[str]:
        """One step: multiplies as sgemm calls, the elementwise work between two of them as
        one loop over the elements."""
        out: list[str] = []
        pending: list[Elem | _Write] = []

        def flush() -> None:
            if not pending:
                return
            local: set[str] = set()
            lines = []
            for st in pending:
                e = self.expr(st.expr, local)
                if isinstance(st, Elem):
                    lines.append(f"const float L_{st.dest} = {e};")
                    local.add(st.dest)
                    if st.dest in self.stored:
                        lines.append(f"{self.loc[st.dest].at()} = L_{st.dest};")
                else:
                    slot = self.fixed[st.slot]
                    lines.append(f"{Loc(slot.ptr, slot.ld, st.col).at()} = {e};")
            out.append("#pragma omp for schedule(static)")
            out.append("for (int b = 0; b < B; b++) {")
            out.append("#pragma GCC ivdep")
            out.append("for (int j = 0; j < n; j++) {")
            out.extend(lines)
            out.append("}}")
            pending.clear()

        for st in self.b.stmts:
            if not isinstance(st, Gemm):
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
