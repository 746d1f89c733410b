"""Independent step functions for the zoo cells, written from the published equations.

They read the compiled module's parameters through its layout only (which block of
which parameter is W_xf, say); the arithmetic here shares nothing with the compiler.
"""

from __future__ import annotations

import torch


class Params:
    def __init__(self, layer):
        self.n = layer.hidden_size
        self.cell = layer.cell
        self.layout = layer.layout

    def W(self, node: str, slot: int) -> torch.Tensor:
        pname, r = self.layout.terms[(node, slot)]
        return getattr(self.cell, pname)[r * self.n : (r + 1) * self.n]

    def b(self, node: str) -> torch.Tensor:
        return self.cell.bias[self.layout.bias[node]]

    def u(self, node: str) -> torch.Tensor:
        return self.cell.diag[self.layout.diag[node]]


def lin(P: Params, node: str, *vs: torch.Tensor) -> torch.Tensor:
    out = P.b(node)
    for slot, v in enumerate(vs):
        out = out + v @ P.W(node, slot).T
    return out


σ = torch.sigmoid


def tanh_rnn(P, x, s):
    (h,) = s
    return (torch.tanh(lin(P, "a", x, h)),)


def lstm(P, x, s, input_gate=True, output_gate=True, forget_gate=True):
    h, c = s
    i = torch.tanh(lin(P, "Wi", x, h))
    j = σ(lin(P, "Wj", x, h)) if input_gate else 1.0
    f = σ(lin(P, "Wf", x, h)) if forget_gate else 1.0
    o = σ(lin(P, "Wo", x, h)) if output_gate else 1.0
    c2 = c * f + i * j
    return (torch.tanh(c2) * o, c2)


def gru_cho(P, x, s):
    """Cho et al. (2014): the reset gate on h before its matrix; z keeps the old state."""
    (h,) = s
    r = σ(lin(P, "Wr", x, h))
    z = σ(lin(P, "Wz", x, h))
    cand = torch.tanh(lin(P, "Wh", x, r * h))
    return (z * h + (1 - z) * cand,)


def mut1(P, x, s):
    (h,) = s
    z = σ(x @ P.W("Wz", 0).T + P.b("Wz"))
    r = σ(x @ P.W("Wr", 0).T + h @ P.W("Wr", 1).T + P.b("Wr"))
    return (torch.tanh((r * h) @ P.W("Wh", 0).T + torch.tanh(x) + P.b("Wh")) * z + h * (1 - z),)


def mut2(P, x, s):
    (h,) = s
    z = σ(x @ P.W("Wz", 0).T + h @ P.W("Wz", 1).T + P.b("Wz"))
    r = σ(x + h @ P.W("Wr", 0).T + P.b("Wr"))
    return (torch.tanh((r * h) @ P.W("Wh", 0).T + x @ P.W("Wh", 1).T + P.b("Wh")) * z + h * (1 - z),)


def mut3(P, x, s):
    (h,) = s
    z = σ(x @ P.W("Wz", 0).T + torch.tanh(h) @ P.W("Wz", 1).T + P.b("Wz"))
    r = σ(x @ P.W("Wr", 0).T + h @ P.W("Wr", 1).T + P.b("Wr"))
    return (torch.tanh((r * h) @ P.W("Wh", 0).T + x @ P.W("Wh", 1).T + P.b("Wh")) * z + h * (1 - z),)


def greff(P, x, s, nig=False, nfg=False, nog=False, niaf=False, noaf=False, np_=False, cifg=False, fgr=False):
    if fgr:
        y, c, gi, gf, go = s
        rec = (y, gi, gf, go)
    else:
        y, c = s
        rec = (y,)

    def pre(name):
        return lin(P, name, x, *rec)

    def peep(name, v):
        return 0.0 if np_ else P.u(name) * v

    zpre = lin(P, "Wz", x, y)  # the block input reads x and y only, FGR or not (Greff et al.)
    z = zpre if niaf else torch.tanh(zpre)
    i = 1.0 if nig else σ(pre("Wi") + peep("pi", c))
    if cifg:
        f = 1.0 - i
    else:
        f = 1.0 if nfg else σ(pre("Wf") + peep("pf", c))
    c2 = z * i + c * f
    o = 1.0 if nog else σ(pre("Wo") + peep("po", c2))
    y2 = (c2 if noaf else torch.tanh(c2)) * o
    if fgr:
        return (y2, c2, i, f, o)
    return (y2, c2)


def indrnn(P, x, s, bound=None):
    (h,) = s
    u = P.u("u") if bound is None else P.u("u").clamp(-bound, bound)
    return (torch.relu(x @ P.W("W", 0).T + P.b("W") + u * h),)


def rhn(P, x, s, depth=3):
    (sl,) = s
    for level in range(1, depth + 1):
        ins = (x, sl) if level == 1 else (sl,)
        hl = torch.tanh(lin(P, f"WH{level}", *ins))
        tl = σ(lin(P, f"WT{level}", *ins))
        sl = hl * tl + sl * (1 - tl)
    return (sl,)


def min_gru(P, x, s):
    """Feng et al. 2024, sequential minGRU."""
    (h,) = s
    z = σ(x @ P.W("Wz", 0).T + P.b("Wz"))
    h_tilde = x @ P.W("Wh", 0).T + P.b("Wh")
    return ((1 - z) * h + z * h_tilde,)


def min_lstm(P, x, s):
    """Feng et al. 2024, sequential minLSTM with normalised gates."""
    (h,) = s
    f = σ(x @ P.W("Wf", 0).T + P.b("Wf"))
    i = σ(x @ P.W("Wi", 0).T + P.b("Wi"))
    h_tilde = x @ P.W("Wh", 0).T + P.b("Wh")
    return ((f / (f + i)) * h + (i / (f + i)) * h_tilde,)


def sru(P, x, s):
    """Lei et al. 2018: gates peek at c through vectors; highway from x itself."""
    _, c = s
    f = σ(x @ P.W("Wf", 0).T + P.u("vf") * c + P.b("Wf"))
    r = σ(x @ P.W("Wr", 0).T + P.u("vr") * c + P.b("Wr"))
    c2 = f * c + (1 - f) * (x @ P.W("W", 0).T + P.b("W"))  # the paper's W x, plus the zoo's bias
    return (r * c2 + (1 - r) * x, c2)


GUARD = 1e-6  # the zoo's division: a denominator's magnitude at least GUARD, its sign kept


def _guarded(d):
    return torch.where(d.abs() >= GUARD, d, torch.where(d >= 0, GUARD, -GUARD).to(d.dtype))


def slstm(P, x, s, stabilised=True):
    """Beck et al. 2024 (xLSTM), one head: exponential gates, normaliser n, stabiliser m.

    ``stabilised=False`` is the naive form (exp of the raw pre-activations), which the
    stabiliser is there to avoid; it equals the stabilised one in exact arithmetic.
    """
    h, c, n, m = s

    def pre(name):
        return x @ P.W(name, 0).T + h @ P.W(name, 1).T + P.b(name)

    z, i_tilde, f_tilde, o = torch.tanh(pre("Wz")), pre("Wi"), pre("Wf"), σ(pre("Wo"))
    if stabilised:
        m2 = torch.maximum(f_tilde + m, i_tilde)
        i = torch.exp(i_tilde - m2)
        f = torch.exp(f_tilde + m - m2)
    else:
        m2 = m
        i, f = torch.exp(i_tilde), torch.exp(f_tilde)
    c2 = f * c + i * z
    n2 = f * n + i
    return (o * (c2 / _guarded(n2)), c2, n2, m2)


def qrnn_f(P, x, s):
    """Bradbury et al. 2017, window 1, f-pooling."""
    (h,) = s
    z = torch.tanh(x @ P.W("Wz", 0).T + P.b("Wz"))
    f = σ(x @ P.W("Wf", 0).T + P.b("Wf"))
    return (f * h + (1 - f) * z,)


def qrnn_fo(P, x, s):
    """Bradbury et al. 2017, window 1, fo-pooling."""
    _, c = s
    z = torch.tanh(x @ P.W("Wz", 0).T + P.b("Wz"))
    f = σ(x @ P.W("Wf", 0).T + P.b("Wf"))
    o = σ(x @ P.W("Wo", 0).T + P.b("Wo"))
    c2 = f * c + (1 - f) * z
    return (o * c2, c2)


REFERENCES = {
    "Tanh": tanh_rnn,
    "LSTM": lstm,
    "LSTM-b": lstm,
    "LSTM-i": lambda P, x, s: lstm(P, x, s, input_gate=False),
    "LSTM-o": lambda P, x, s: lstm(P, x, s, output_gate=False),
    "LSTM-f": lambda P, x, s: lstm(P, x, s, forget_gate=False),
    "GRU-Cho": gru_cho,
    "MUT1": mut1,
    "MUT2": mut2,
    "MUT3": mut3,
    "PeepholeLSTM": greff,
    "NIG": lambda P, x, s: greff(P, x, s, nig=True),
    "NFG": lambda P, x, s: greff(P, x, s, nfg=True),
    "NOG": lambda P, x, s: greff(P, x, s, nog=True),
    "NIAF": lambda P, x, s: greff(P, x, s, niaf=True),
    "NOAF": lambda P, x, s: greff(P, x, s, noaf=True),
    "NP": lambda P, x, s: greff(P, x, s, np_=True),
    "CIFG": lambda P, x, s: greff(P, x, s, cifg=True),
    "FGR": lambda P, x, s: greff(P, x, s, fgr=True),
    "IndRNN": indrnn,
    "IndRNN-T4": lambda P, x, s: indrnn(P, x, s, bound=2.0 ** (1 / 4)),
    "RHN": rhn,
    "RHN-1": lambda P, x, s: rhn(P, x, s, depth=1),
    "minGRU": min_gru,
    "minLSTM": min_lstm,
    "SRU": sru,
    "sLSTM": slstm,
    "QRNN-f": qrnn_f,
    "QRNN-fo": qrnn_fo,
}
