"""The compiler's intermediate form: expressions and statements of one time step.

The plan (``rnnsearch.cells.plan``) writes a cell's step and reverse step in these terms
once; the Python emitter prints them and the C emitter translates them, so neither
backend reads the other's text. An expression applies a *kernel*: a graph op of the op
table (``tanh``, ``mul``, ...) or one of the helper kernels the op table's derivatives use
(``tanh_back``, ``neg``, ...). Every kernel has a Python and a C form, declared once in
:mod:`rnnsearch.cells.ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A value by name (a local of the step, an argument, or a fixed slice like ``b[0]``)."""

    name: str


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Apply:
    kernel: str
    args: tuple[Expr, ...]


Expr = Ref | Num | Apply


def call(kernel: str, *args: Expr) -> Apply:
    return Apply(kernel, tuple(args))


def names_in(e: Expr) -> list[str]:
    """The names an expression reads, in order."""
    if isinstance(e, Ref):
        return [e.name]
    if isinstance(e, Apply):
        return [n for a in e.args for n in names_in(a)]
    return []


def kernels_used(stmts) -> set[str]:
    """The kernels a sequence of statements applies."""
    out: set[str] = set()

    def walk(e: Expr) -> None:
        if isinstance(e, Apply):
            out.add(e.kernel)
            for a in e.args:
                walk(a)

    for st in stmts:
        for e in (st.expr,) if isinstance(st, Elem) else st.parts if isinstance(st, Write) else ():
            walk(e)
    return out


# -- statements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Elem:
    """``dest = expr``, elementwise (an expression that is a :class:`Ref` is an alias)."""

    dest: str
    expr: Expr


@dataclass(frozen=True)
class Gemm:
    """``dest = [add +] src @ w{weight}`` (the loop weights are passed transposed), or with
    ``transposed``, ``dest = src @ w{weight}.T`` (the reverse of a loop multiply)."""

    dest: str
    src: str
    weight: int
    transposed: bool = False
    add: str | None = None


@dataclass(frozen=True)
class Chunk:
    """``dests = base.chunk(len(dests), -1)``: names for the n-column pieces of a value."""

    dests: tuple[str, ...]
    base: str


@dataclass(frozen=True)
class Write:
    """Into the caller's buffer ``slot``: the parts side by side, n columns each."""

    slot: str
    parts: tuple[Expr, ...]


Stmt = Elem | Gemm | Chunk | Write


# -- kernels --------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """One function of the step's arithmetic in both backends.

    ``py`` and ``c`` are format strings over the arguments (``{0}``, ``{1}``); ``prec``
    is the Python precedence of an infix form (0: a call, which never needs brackets; a
    right operand of equal precedence is bracketed, so Python sums in the written order);
    ``py_def`` and ``c_def`` are what the generated module and the C program define
    once for it (an alias of an aten kernel, a static inline function)."""

    name: str
    py: str
    c: str
    prec: int = 0
    py_def: str = ""
    c_def: str = ""
    # its Python form calls torch functions on the operands, which take tensors only: a
    # number operand is written as a 0-dim tensor (which broadcasts like a number)
    tensor_args: bool = False


SUM, PRODUCT, UNARY = 1, 2, 3


def render_py(e: Expr, kernels: dict[str, Kernel]) -> str:
    """The expression as Python, with brackets only where precedence needs them."""
    return _py(e, kernels)[0]


def _py(e: Expr, kernels: dict[str, Kernel]) -> tuple[str, int]:
    if isinstance(e, Ref):
        return e.name, 9
    if isinstance(e, Num):
        return repr(float(e.value)), (9 if e.value >= 0 else UNARY)
    k = kernels[e.kernel]
    args = []
    for i, a in enumerate(e.args):
        text, prec = _py(a, kernels)
        if k.tensor_args and isinstance(a, Num):
            text, prec = f"torch.tensor({text})", 9
        if k.prec and (prec < k.prec or (prec == k.prec and (i > 0 or k.prec == UNARY))):
            text = f"({text})"
        args.append(text)
    return k.py.format(*args), (k.prec or 9)


def render_c(e: Expr, kernels: dict[str, Kernel], ref) -> str:
    """The expression as C; ``ref(name)`` gives the C text of a value read by name."""
    if isinstance(e, Ref):
        return ref(e.name)
    if isinstance(e, Num):
        return f"{float(e.value)!r}f"
    return kernels[e.kernel].c.format(*(render_c(a, kernels, ref) for a in e.args))


def render_stmt_py(st: Stmt, kernels: dict[str, Kernel], members: bool) -> str:
    """One statement as a line of the generated step (indented for a method body)."""
    if isinstance(st, Elem):
        return f"        {st.dest} = {render_py(st.expr, kernels)}"
    if isinstance(st, Chunk):
        return f"        {', '.join(st.dests)} = {st.base}.chunk({len(st.dests)}, -1)"
    if isinstance(st, Gemm):
        w = f"w{st.weight}"
        if st.transposed:
            w = f"{w}.transpose(1, 2)" if members else f"{w}.t()"
        if st.add is not None:
            fn = "torch.baddbmm" if members else "torch.addmm"
            return f"        {st.dest} = {fn}({st.add}, {st.src}, {w})"
        return f"        {st.dest} = {'torch.bmm' if members else 'torch.mm'}({st.src}, {w})"
    if isinstance(st, Write):
        parts = [render_py(p, kernels) for p in st.parts]
        if len(parts) == 1:
            return f"        {st.slot}.copy_({parts[0]})"
        return f"        torch.cat([{', '.join(parts)}], -1, out={st.slot})"
    raise AssertionError(st)
