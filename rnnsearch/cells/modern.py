"""The modern recurrent cells of the zoo: minGRU and minLSTM (Feng et al. 2024), SRU
(Lei et al. 2018), sLSTM (Beck et al. 2024) and QRNN with window 1 (Bradbury et al.
2017). They use the extended ops (exp, div, max); the notation is zoo.py's.
"""

from __future__ import annotations

from rnnsearch.cells.graph import CellGraph


def _one(g: CellGraph) -> str:
    return g.add("const", name="one", value=1.0)


def min_gru() -> CellGraph:
    """minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), the sequential form:

    z  = σ(W_z x + b_z)
    h̃  = W_h x + b_h
    h' = (1 - z) * h + z * h̃

    Neither the gate nor the candidate reads h: the recurrence is the gated sum alone.
    """
    g = CellGraph(("h",))
    z = g.add("sigmoid", g.add("linear", "x", name="Wz"), name="z")
    cand = g.add("linear", "x", name="Wh")
    omz = g.add("sub", _one(g), z, name="omz")
    g.set_output("h", g.add("add", g.add("mul", omz, "h", name="zh"), g.add("mul", z, cand, name="zc"), name="h2"))
    return g.validate()


def min_lstm() -> CellGraph:
    """minLSTM (Feng et al. 2024), the sequential form with normalised gates:

    f  = σ(W_f x + b_f)
    i  = σ(W_i x + b_i)
    h̃  = W_h x + b_h
    f' = f / (f + i);  i' = i / (f + i)
    h' = f' * h + i' * h̃

    The division is the op table's guarded one; f + i > 0, and it differs from the
    plain one only where f + i < 1e-6 (both pre-activations below about -14).
    """
    g = CellGraph(("h",))
    f = g.add("sigmoid", g.add("linear", "x", name="Wf"), name="f")
    i = g.add("sigmoid", g.add("linear", "x", name="Wi"), name="i")
    cand = g.add("linear", "x", name="Wh")
    total = g.add("add", f, i, name="fi")
    fn = g.add("div", f, total, name="fn")
    inn = g.add("div", i, total, name="in")
    g.set_output("h", g.add("add", g.add("mul", fn, "h", name="fh"), g.add("mul", inn, cand, name="ic"), name="h2"))
    return g.validate()


def sru() -> CellGraph:
    """SRU (Lei et al. 2018, "Simple Recurrent Units for Highly Parallelizable
    Recurrence"); v_f, v_r are learned vectors:

    f  = σ(W_f x + v_f * c + b_f)
    r  = σ(W_r x + v_r * c + b_r)
    c' = f * c + (1 - f) * (W x + b)
    h' = r * c' + (1 - r) * x          highway straight from x (x has width n here)

    The paper's W x has no bias; a linear node always has one, so here W x carries a
    bias b, initialised to 0. h' reads c' and x, never h.
    """
    g = CellGraph(("h", "c"))
    one = _one(g)
    f = g.add(
        "sigmoid", g.add("add", g.add("linear", "x", name="Wf"), g.add("diag", "c", name="vf"), name="af"), name="f"
    )
    r = g.add(
        "sigmoid", g.add("add", g.add("linear", "x", name="Wr"), g.add("diag", "c", name="vr"), name="ar"), name="r"
    )
    wx = g.add("linear", "x", name="W")
    keep = g.add("mul", f, "c", name="fc")
    new = g.add("mul", g.add("sub", one, f, name="omf"), wx, name="fw")
    c2 = g.add("add", keep, new, name="c2")
    high = g.add("mul", g.add("sub", one, r, name="omr"), "x", name="rx")
    g.set_output("h", g.add("add", g.add("mul", r, c2, name="rc"), high, name="h2"))
    g.set_output("c", c2)
    return g.validate()


def slstm() -> CellGraph:
    """sLSTM (Beck et al. 2024, xLSTM), one head, exponential input and forget gates;
    states h, c, n (normaliser), m (stabiliser), all 0 at t = 0:

    z  = tanh(W_z x + R_z h + b_z)
    ĩ  = W_i x + R_i h + b_i
    f̃  = W_f x + R_f h + b_f
    o  = σ(W_o x + R_o h + b_o)
    m' = max(f̃ + m, ĩ)
    i  = exp(ĩ - m');  f = exp(f̃ + m - m')
    c' = f * c + i * z
    n' = f * n + i
    h' = o * (c' / n')

    The division is the op table's guarded one: it differs from the plain one only
    where n' < 1e-6. From n >= 0, n' >= min(n, 1), so that happens only from the zero
    state, when f̃ - ĩ > 13.8 at the first step (n' then stays that small while the
    forget gate sets m'). The xLSTM code avoids it by taking m' = ĩ while n = 0; the
    zoo keeps the paper's equations.
    Each R is one full n x n matrix (a single head), not the paper's block-diagonal heads.
    """
    g = CellGraph(("h", "c", "n", "m"))
    z = g.add("tanh", g.add("linear", "x", "h", name="Wz"), name="z")
    it = g.add("linear", "x", "h", name="Wi")
    ft = g.add("linear", "x", "h", name="Wf")
    o = g.add("sigmoid", g.add("linear", "x", "h", name="Wo"), name="o")
    fm = g.add("add", ft, "m", name="fm")
    m2 = g.add("max", fm, it, name="m2")
    i = g.add("exp", g.add("sub", it, m2, name="ia"), name="i")
    f = g.add("exp", g.add("sub", fm, m2, name="fa"), name="f")
    c2 = g.add("add", g.add("mul", f, "c", name="fc"), g.add("mul", i, z, name="iz"), name="c2")
    n2 = g.add("add", g.add("mul", f, "n", name="fn"), i, name="n2")
    g.set_output("h", g.add("mul", o, g.add("div", c2, n2, name="cn"), name="h2"))
    g.set_output("c", c2)
    g.set_output("n", n2)
    g.set_output("m", m2)
    return g.validate()


def qrnn(output_gate: bool = False) -> CellGraph:
    """QRNN (Bradbury et al. 2017) with window 1 (each step sees x_t alone):

    z  = tanh(W_z x + b_z)
    f  = σ(W_f x + b_f)
    o  = σ(W_o x + b_o)                 (fo-pooling only)
    f-pooling  (QRNN-f):  h' = f * h + (1 - f) * z
    fo-pooling (QRNN-fo): c' = f * c + (1 - f) * z;  h' = o * c'
    """
    g = CellGraph(("h", "c") if output_gate else ("h",))
    z = g.add("tanh", g.add("linear", "x", name="Wz"), name="z")
    f = g.add("sigmoid", g.add("linear", "x", name="Wf"), name="f")
    pooled = "c" if output_gate else "h"
    new = g.add("mul", g.add("sub", _one(g), f, name="omf"), z, name="fz")
    c2 = g.add("add", g.add("mul", f, pooled, name="fc"), new, name="c2")
    if output_gate:
        o = g.add("sigmoid", g.add("linear", "x", name="Wo"), name="o")
        g.set_output("h", g.add("mul", o, c2, name="h2"))
        g.set_output("c", c2)
    else:
        g.set_output("h", c2)
    return g.validate()


def qrnn_f() -> CellGraph:
    """QRNN-f: the window-1 QRNN with f-pooling (Bradbury et al. 2017):

    z  = tanh(W_z x + b_z)
    f  = σ(W_f x + b_f)
    h' = f * h + (1 - f) * z
    """
    return qrnn(output_gate=False)


def qrnn_fo() -> CellGraph:
    """QRNN-fo: the window-1 QRNN with fo-pooling (Bradbury et al. 2017):

    z  = tanh(W_z x + b_z)
    f  = σ(W_f x + b_f)
    o  = σ(W_o x + b_o)
    c' = f * c + (1 - f) * z
    h' = o * c'
    """
    return qrnn(output_gate=True)
