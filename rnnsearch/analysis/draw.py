"""Draw a cell graph: with Graphviz's ``dot`` where it is installed (SVG, or PNG for a
file), else with matplotlib (``rnnsearch.analysis.layout``).

Node labels use the formula's notation (``rnnsearch.cells.formula``): ``W`` a linear map
with random init, ``W~0.9I`` one initialised to 0.9 times the identity, ``+ b(1)`` a bias
that starts at 1 (a zero bias is not shown), ``u *`` a learned diagonal, ``σ``, ``tanh``,
``relu``, ``+``, ``a − b`` (its operands' edges say which is which), ``×``, constants as
numbers, inputs ``x``, ``h``, ``c`` and outputs ``h_next``, ``c_next``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rnnsearch.cells.formula import bias_text, weight_text
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.ops import OPS

ENGINES = ("auto", "dot", "matplotlib")
FONT = "Helvetica,Arial,sans-serif"


@dataclass(frozen=True)
class Style:
    fill: str
    shape: str  # a Graphviz shape; the matplotlib drawing rounds boxes and ellipses alike


STYLES = {
    "input": Style("#9ecae1", "ellipse"),
    "output": Style("#a1d99b", "ellipse"),
    "linear": Style("#fdae6b", "box"),
    "diag": Style("#fdd0a2", "box"),
    "const": Style("#eeeeee", "box"),
}
ACTIVATION = Style("#dadaeb", "ellipse")
COMMUTING = Style("#ffffff", "circle")  # add, mul, max: their operands need no names
ORDERED = Style("#ffffff", "ellipse")  # sub, div: "a − b", "a / b"
# A drawing sets a product and a difference in print glyphs; every other op is drawn
# with the symbol the op table gives the formula.
TYPESET = {"identity": "id", "sub": "−", "mul": "×"}


def node_label(graph: CellGraph, node: str) -> str:
    op = graph.op(node)
    if op in ("input", "output"):
        return node
    a = graph.full_attrs(node)
    if op == "const":
        return f"{a['value']:g}"
    if op == "linear":  # a zero bias is not drawn
        return f"{weight_text(a)} + {bias_text(a)}" if a["bias_init"] else weight_text(a)
    if op == "diag":
        return f"{OPS[op].symbol} *"
    symbol = TYPESET.get(op) or OPS[op].symbol
    return f"a {symbol} b" if _ordered(op) else symbol


def _ordered(op: str) -> bool:
    return OPS[op].max_arity == 2 and not OPS[op].commutative and not OPS[op].learned


def style(graph: CellGraph, node: str) -> Style:
    op = graph.op(node)
    if op in STYLES:
        return STYLES[op]
    if OPS[op].role == "elementwise":
        return ORDERED if _ordered(op) else COMMUTING
    return ACTIVATION


def edge_label(graph: CellGraph, slot: int, target: str) -> str:
    """Only an ordered op's operands (a − b, a / b) need telling apart: the others commute or take one."""
    return "ab"[slot] if _ordered(graph.op(target)) else ""


def has_dot() -> bool:
    return shutil.which("dot") is not None


def to_dot(graph: CellGraph, title: str = "") -> str:
    ids = {n: f"n{i}" for i, n in enumerate(graph.topological())}

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "digraph cell {",
        f'  graph [rankdir=TB, bgcolor="transparent", nodesep=0.25, ranksep=0.36, fontname={q(FONT)}, '
        f"fontsize=16, labelloc=t, label={q(title)}];",
        f'  node [fontname={q(FONT)}, fontsize=13, style=filled, color="#444444", height=0.36, margin="0.1,0.04"];',
        f'  edge [color="#555555", arrowsize=0.7, fontname={q(FONT)}, fontsize=12, fontcolor="#8c2d04"];',
    ]
    for n, i in ids.items():
        st = style(graph, n)
        extra = ", penwidth=2" if graph.op(n) == "output" else ""
        extra += ', style="filled,rounded"' if st.shape == "box" else ""
        lines.append(f"  {i} [label={q(node_label(graph, n))}, shape={st.shape}, fillcolor={q(st.fill)}{extra}];")
    for u, v, slot in sorted(graph.g.edges(data="slot"), key=lambda e: (ids[e[1]], e[2])):
        lab = edge_label(graph, slot, v)
        lines.append(f"  {ids[u]} -> {ids[v]}" + (f" [headlabel={q(lab)}, labeldistance=1.6]" if lab else "") + ";")
    # Inputs on the first row and outputs on the last, as in the papers' diagrams.
    lines.append("  { rank=source; " + " ".join(ids[n] for n in graph.inputs if n in ids) + " }")
    lines.append("  { rank=sink; " + " ".join(ids[n] for n in graph.outputs if n in ids) + " }")
    lines.append("}")
    return "\n".join(lines)


def _run_dot(graph: CellGraph, title: str, fmt: str) -> bytes:
    r = subprocess.run(
        ["dot", f"-T{fmt}"], input=to_dot(graph, title).encode("utf-8"), capture_output=True, timeout=60, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"dot failed: {r.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return r.stdout


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to sit inside a page next to others: no XML prolog,
    DOCTYPE, comments or tooltips, and ids prefixed so two drawings never share one."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"<title>.*?</title>", "", svg, flags=re.S)
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    svg = re.sub(r'(href="#|url\(#)', rf"\g<1>{prefix}", svg)
    return re.sub(r"\n\s*\n", "\n", svg).strip()


@dataclass(frozen=True)
class Drawing:
    """A drawn cell: SVG text, or PNG bytes with the size to show them at."""

    svg: str | None = None
    png: bytes | None = None
    width: int = 0
    height: int = 0


def render_cell(graph: CellGraph, title: str = "", engine: str = "auto", prefix: str = "cell") -> Drawing:
    """Draw a cell for a page: SVG from ``dot``, or a PNG from matplotlib when ``dot`` is
    missing or ``engine="matplotlib"``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    if engine == "dot" or (engine == "auto" and has_dot()):
        try:
            return Drawing(svg=inline_svg(_run_dot(graph, title, "svg").decode("utf-8"), prefix + "-"))
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            if engine == "dot":
                raise  # asked for by name: say why it failed
    from rnnsearch.analysis.layout import draw_png

    png, (w, h) = draw_png(graph, title)
    return Drawing(png=png, width=w, height=h)


def draw_graph(graph: CellGraph, path: str | Path, title: str = "", engine: str = "auto") -> Path:
    """Write a drawing of the cell to ``path``: SVG when it ends in ``.svg``, else PNG."""
    path = Path(path)
    svg = path.suffix.lower() == ".svg"
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    if engine == "dot" or (engine == "auto" and has_dot()):
        path.write_bytes(_run_dot(graph, title, "svg" if svg else "png"))
        return path
    from rnnsearch.analysis.layout import draw_png, draw_svg

    path.write_bytes(draw_svg(graph, title) if svg else draw_png(graph, title)[0])
    return path
