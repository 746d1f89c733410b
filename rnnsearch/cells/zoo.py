"""Every cell of the literature rnnsearch anchors on, built as a graph.

Notation: x the input, h (and c, ...) the states, W/R learned matrices, b biases
(one per ``linear`` node), u/p learned vectors, σ the logistic sigmoid, * elementwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.cells.modern import min_gru, min_lstm, qrnn_f, qrnn_fo, slstm, sru


def _one(g: CellGraph) -> str:
    return g.add("const", name="one", value=1.0)


def tanh_rnn() -> CellGraph:
    """Tanh RNN: h' = tanh(W_x x + W_h h + b)."""
    g = CellGraph(("h",))
    g.set_output("h", g.add("tanh", g.add("linear", "x", "h", name="a"), name="hn"))
    return g.validate()


def lstm(
    forget_bias: float = 0.0, input_gate: bool = True, output_gate: bool = True, forget_gate: bool = True
) -> CellGraph:
    """Jozefowicz et al.'s LSTM (the output gate with σ, as torch.nn.LSTM):

    i = tanh(W_xi x + W_hi h + b_i)     block input
    j = σ(W_xj x + W_hj h + b_j)        input gate   (LSTM-i: j = 1)
    f = σ(W_xf x + W_hf h + b_f)        forget gate  (LSTM-f: f = 1; LSTM-b: b_f starts at 1)
    o = σ(W_xo x + W_ho h + b_o)        output gate  (LSTM-o: o = 1)
    c' = c * f + i * j
    h' = tanh(c') * o
    """
    g = CellGraph(("h", "c"))
    i = g.add("tanh", g.add("linear", "x", "h", name="Wi"), name="i")
    new = (
        g.add("mul", i, g.add("sigmoid", g.add("linear", "x", "h", name="Wj"), name="j"), name="ij")
        if input_gate
        else i
    )
    if forget_gate:
        f = g.add(
            "sigmoid",
            g.add("linear", "x", "h", name="Wf", **({"bias_init": forget_bias} if forget_bias else {})),
            name="f",
        )
        keep = g.add("mul", "c", f, name="cf")
    else:
        keep = "c"
    c2 = g.add("add", keep, new, name="c2")
    out = g.add("tanh", c2, name="tc")
    if output_gate:
        out = g.add("mul", out, g.add("sigmoid", g.add("linear", "x", "h", name="Wo"), name="o"), name="h2")
    g.set_output("c", c2)
    g.set_output("h", out)
    return g.validate()


def lstm_b() -> CellGraph:
    """LSTM-b: the LSTM with the forget-gate bias b_f initialised to 1.

    i = tanh(W_xi x + W_hi h + b_i);  j = σ(W_xj x + W_hj h + b_j)
    f = σ(W_xf x + W_hf h + b_f), b_f = 1 at init;  o = σ(W_xo x + W_ho h + b_o)
    c' = c * f + i * j;  h' = tanh(c') * o
    """
    return lstm(forget_bias=1.0)


def lstm_i() -> CellGraph:
    """LSTM-i: no input gate.  c' = c * f + i;  h' = tanh(c') * o  (i, f, o as in the LSTM)."""
    return lstm(input_gate=False)


def lstm_o() -> CellGraph:
    """LSTM-o: no output gate.  c' = c * f + i * j;  h' = tanh(c')."""
    return lstm(output_gate=False)


def lstm_f() -> CellGraph:
    """LSTM-f: no forget gate.  c' = c + i * j;  h' = tanh(c') * o."""
    return lstm(forget_gate=False)


def gru() -> CellGraph:
    """GRU in torch.nn.GRU's form (the reset gate multiplies W_hn h, not h):

        r = σ(W_xr x + W_hr h + b_r)
        z = σ(W_xz x + W_hz h + b_z)
        n = tanh(W_xn x + b_xn + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Jozefowicz et al. write W_hh (r * h); torch's form is the one the zoo must equal.
    """
    g = CellGraph(("h",))
    r = g.add("sigmoid", g.add("linear", "x", "h", name="Wr"), name="r")
    z = g.add("sigmoid", g.add("linear", "x", "h", name="Wz"), name="z")
    hn = g.add("mul", r, g.add("linear", "h", name="Whn"), name="rh")
    n = g.add("tanh", g.add("add", g.add("linear", "x", name="Wxn"), hn, name="pre_n"), name="n")
    one_minus_z = g.add("sub", _one(g), z, name="omz")
    g.set_output("h", g.add("add", g.add("mul", one_minus_z, n, name="zn"), g.add("mul", z, "h", name="zh"), name="h2"))
    return g.validate()


def gru_cho() -> CellGraph:
    """GRU as Cho et al. (2014) wrote it and Jozefowicz et al. (2015) ran it (the reset gate
    multiplies h before its matrix, where torch.nn.GRU's multiplies W_hn h + b_hn):

    r  = σ(W_xr x + W_hr h + b_r)
    z  = σ(W_xz x + W_hz h + b_z)
    h~ = tanh(W_xh x + W_hh (r * h) + b_h)
    h' = z * h + (1 - z) * h~
    """
    g = CellGraph(("h",))
    r = g.add("sigmoid", g.add("linear", "x", "h", name="Wr"), name="r")
    z = g.add("sigmoid", g.add("linear", "x", "h", name="Wz"), name="z")
    cand = g.add("tanh", g.add("linear", "x", g.add("mul", r, "h", name="rh"), name="Wh"), name="cand")
    keep = g.add("mul", z, "h", name="zh")
    g.set_output(
        "h", g.add("add", keep, g.add("mul", g.add("sub", _one(g), z, name="omz"), cand, name="new"), name="hn")
    )
    return g.validate()


def _mut_tail(g: CellGraph, z: str, cand: str) -> None:
    """h' = cand * z + h * (1 - z)."""
    omz = g.add("sub", _one(g), z, name="omz")
    g.set_output("h", g.add("add", g.add("mul", cand, z, name="cz"), g.add("mul", "h", omz, name="hz"), name="h2"))


def mut1() -> CellGraph:
    """MUT1 (Jozefowicz et al.):

    z = σ(W_xz x + b_z)
    r = σ(W_xr x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + tanh(x) + b_h) * z + h * (1 - z)
    """
    g = CellGraph(("h",))
    z = g.add("sigmoid", g.add("linear", "x", name="Wz"), name="z")
    r = g.add("sigmoid", g.add("linear", "x", "h", name="Wr"), name="r")
    rh = g.add("mul", r, "h", name="rh")
    pre = g.add("add", g.add("linear", rh, name="Wh"), g.add("tanh", "x", name="tx"), name="pre")
    _mut_tail(g, z, g.add("tanh", pre, name="cand"))
    return g.validate()


def mut2() -> CellGraph:
    """MUT2 (Jozefowicz et al.):

    z = σ(W_xz x + W_hz h + b_z)
    r = σ(x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    """
    g = CellGraph(("h",))
    z = g.add("sigmoid", g.add("linear", "x", "h", name="Wz"), name="z")
    r = g.add("sigmoid", g.add("add", "x", g.add("linear", "h", name="Wr"), name="pr"), name="r")
    rh = g.add("mul", r, "h", name="rh")
    _mut_tail(g, z, g.add("tanh", g.add("linear", rh, "x", name="Wh"), name="cand"))
    return g.validate()


def mut3() -> CellGraph:
    """MUT3 (Jozefowicz et al.):

    z = σ(W_xz x + W_hz tanh(h) + b_z)
    r = σ(W_xr x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    """
    g = CellGraph(("h",))
    z = g.add("sigmoid", g.add("linear", "x", g.add("tanh", "h", name="th"), name="Wz"), name="z")
    r = g.add("sigmoid", g.add("linear", "x", "h", name="Wr"), name="r")
    rh = g.add("mul", r, "h", name="rh")
    _mut_tail(g, z, g.add("tanh", g.add("linear", rh, "x", name="Wh"), name="cand"))
    return g.validate()


def greff(
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    input_activation: bool = True,
    output_activation: bool = True,
    peepholes: bool = True,
    coupled: bool = False,
    full_recurrence: bool = False,
) -> CellGraph:
    """Greff et al.'s vanilla LSTM with peepholes (y is the state h; p are learned vectors):

        z  = tanh(W_z x + R_z y + b_z)               block input  (NIAF: no tanh)
        i  = σ(W_i x + R_i y + p_i * c + b_i)        input gate   (NIG: i = 1)
        f  = σ(W_f x + R_f y + p_f * c + b_f)        forget gate  (NFG: f = 1; CIFG: f = 1 - i)
        c' = z * i + c * f
        o  = σ(W_o x + R_o y + p_o * c' + b_o)       output gate, peeks at c'  (NOG: o = 1)
        y' = tanh(c') * o                            (NOAF: no tanh)

    NP drops the peepholes p. FGR adds full gate recurrence: each gate also reads the
    previous step's i, f, o (states gi, gf, go) through nine more matrices (R_ii, R_if,
    R_io for i, and so for f and o); the block input z still reads only x and y.
    """
    states = ("h", "c", "gi", "gf", "go") if full_recurrence else ("h", "c")
    g = CellGraph(states)
    recur = ("h", "gi", "gf", "go") if full_recurrence else ("h",)  # what the gates read

    def gate(name: str, peep_from: str | None) -> str:
        pre = g.add("linear", "x", *recur, name=f"W{name}")
        if peepholes and peep_from is not None:
            pre = g.add("add", pre, g.add("diag", peep_from, name=f"p{name}"), name=f"a{name}")
        return g.add("sigmoid", pre, name=name)

    zpre = g.add("linear", "x", "h", name="Wz")  # z never reads the gates, FGR or not
    z = g.add("tanh", zpre, name="z") if input_activation else zpre
    i = gate("i", "c") if input_gate else None
    new = g.add("mul", z, i, name="zi") if i is not None else z
    if coupled:
        f = g.add("sub", _one(g), i, name="f")
    elif forget_gate:
        f = gate("f", "c")
    else:
        f = None
    keep = g.add("mul", "c", f, name="cf") if f is not None else "c"
    c2 = g.add("add", new, keep, name="c2")
    out = g.add("tanh", c2, name="tc") if output_activation else c2
    o = gate("o", c2) if output_gate else None
    y = g.add("mul", out, o, name="y") if o is not None else out
    if y == c2:  # NOG with NOAF: y' = c' is legal; keep h a node of its own for clarity
        y = g.add("identity", c2, name="y")
    g.set_output("h", y)
    g.set_output("c", c2)
    if full_recurrence:
        g.set_output("gi", i)
        g.set_output("gf", f)
        g.set_output("go", o)
    return g.validate()


def indrnn(bound: float | None = None) -> CellGraph:
    """IndRNN (Li et al. 2018): h' = relu(W x + u * h + b), u ~ U(0, 1) at init.

    ``bound`` clips |u| <= bound (use 2 ** (1 / T) for sequences of length T).
    """
    g = CellGraph(("h",))
    u = g.add("diag", "h", name="u", init="uniform01", **({"bound": float(bound)} if bound is not None else {}))
    g.set_output("h", g.add("relu", g.add("add", g.add("linear", "x", name="W"), u, name="pre"), name="h2"))
    return g.validate()


def rhn(depth: int = 3, transform_bias: float = -2.0) -> CellGraph:
    """Recurrent Highway Network (Zilly et al. 2017), recurrence depth L, coupled carry gate.

    s_0 = h;  for l = 1..L (x enters only at l = 1):
    h_l = tanh(W_H x [l=1] + R_H,l s_{l-1} + b_H,l)
    t_l = σ(W_T x [l=1] + R_T,l s_{l-1} + b_T,l),   b_T starts at -2
    s_l = h_l * t_l + s_{l-1} * (1 - t_l);   h' = s_L
    """
    if not 1 <= depth <= 32:
        raise CellGraphError(None, "RHN depth must be 1-32")
    g = CellGraph(("h",))
    one = _one(g)
    s = "h"
    for level in range(1, depth + 1):
        ins = ("x", s) if level == 1 else (s,)
        hl = g.add("tanh", g.add("linear", *ins, name=f"WH{level}"), name=f"h{level}")
        tl = g.add("sigmoid", g.add("linear", *ins, name=f"WT{level}", bias_init=transform_bias), name=f"t{level}")
        carry = g.add("mul", s, g.add("sub", one, tl, name=f"c{level}"), name=f"k{level}")
        s = g.add("add", g.add("mul", hl, tl, name=f"ht{level}"), carry, name=f"s{level}")
    g.set_output("h", s)
    return g.validate()


ZOO: dict[str, Callable[[], CellGraph]] = {
    "Tanh": tanh_rnn,
    "LSTM": lstm,
    "LSTM-b": lstm_b,
    "LSTM-i": lstm_i,
    "LSTM-o": lstm_o,
    "LSTM-f": lstm_f,
    "GRU": gru,
    "GRU-Cho": gru_cho,
    "MUT1": mut1,
    "MUT2": mut2,
    "MUT3": mut3,
    "PeepholeLSTM": greff,
    "NIG": lambda: greff(input_gate=False),
    "NFG": lambda: greff(forget_gate=False),
    "NOG": lambda: greff(output_gate=False),
    "NIAF": lambda: greff(input_activation=False),
    "NOAF": lambda: greff(output_activation=False),
    "NP": lambda: greff(peepholes=False),
    "CIFG": lambda: greff(coupled=True),
    "FGR": lambda: greff(full_recurrence=True),
    "IndRNN": indrnn,
    "RHN": rhn,
    "minGRU": min_gru,
    "minLSTM": min_lstm,
    "SRU": sru,
    "sLSTM": slstm,
    "QRNN-f": qrnn_f,
    "QRNN-fo": qrnn_fo,
}

_GREFF_DOC = {
    "NIG": "NIG: Greff's peephole LSTM without the input gate (i = 1).",
    "NFG": "NFG: without the forget gate (f = 1).",
    "NOG": "NOG: without the output gate (o = 1).",
    "NIAF": "NIAF: no input activation (z = W_z x + R_z y + b_z).",
    "NOAF": "NOAF: no output activation (y' = c' * o).",
    "NP": "NP: no peepholes.",
    "CIFG": "CIFG: coupled input and forget gate (f = 1 - i).",
    "FGR": "FGR: full gate recurrence (the gates i, f, o read the previous i, f, o; z does not).",
}

_PARAMETRIC = re.compile(r"^(RHN)-(\d{1,2})$|^(IndRNN)-T(\d{1,6})$")


def names() -> list[str]:
    return list(ZOO)


def describe(name: str) -> str:
    """The equations of a zoo cell (its builder's docstring)."""
    key = _PARAMETRIC.match(name)
    base = (key.group(1) or key.group(3)) if key else name
    if base in _GREFF_DOC:
        return _GREFF_DOC[base] + "\n\n" + (greff.__doc__ or "")
    fn = ZOO.get(base)
    return (fn.__doc__ or "") if fn else ""


# Jozefowicz et al.'s verdicts at their scale (Table 1): the best cells, and the two that
# trail the GRU far on arithmetic and XML. A preset is tuned until it tells them apart.
KNOWN_GOOD = ("GRU", "LSTM-b", "MUT1")
KNOWN_BAD = ("Tanh", "LSTM-f")


def get(name: str) -> CellGraph:
    """Build a zoo cell by name; ``RHN-5`` sets the depth, ``IndRNN-T100`` bounds |u| for T=100."""
    if name in ZOO:
        return ZOO[name]()
    m = _PARAMETRIC.match(name)
    if m and m.group(1):
        return rhn(int(m.group(2)))
    if m and m.group(3):
        return indrnn(bound=2.0 ** (1.0 / max(1, int(m.group(4)))))
    known = ", ".join(ZOO)
    raise KeyError(f"unknown zoo cell {name!r} (known: {known}; also RHN-<depth>, IndRNN-T<steps>)")


def lookup_name(graph: CellGraph) -> str | None:
    """The zoo name of a graph, if it is one (by canonical identity)."""
    from rnnsearch.cells.canonical import canonical_hash

    return name_for_hash(canonical_hash(graph))


def name_for_hash(canonical_hash: str) -> str | None:
    """The zoo name of the cell with this canonical hash, if it is one."""
    return _zoo_hashes().get(canonical_hash)


_HASHES: dict[str, str] | None = None


def _zoo_hashes() -> dict[str, str]:
    global _HASHES
    if _HASHES is None:
        from rnnsearch.cells.canonical import canonical_hash

        _HASHES = {}
        for name in ZOO:
            _HASHES.setdefault(canonical_hash(ZOO[name]()), name)
    return _HASHES


__all__ = ["KNOWN_BAD", "KNOWN_GOOD", "ZOO", "get", "names", "describe", "lookup_name", "name_for_hash", "math"]
