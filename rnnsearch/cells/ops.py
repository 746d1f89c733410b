"""The op table: the one place that says what each op is.

Each op is declared once, with everything every part needs: arity and whether operands
commute; its Python (torch) and C forms; its derivative, as expressions over the
kernels below; how the formula writes it; its constant-folding rules; and which
mutation set may draw it. Validation, the canonical form, folding, the formula, the
Python step and its generated backward, and the C loop all read this table, so adding
an op is one declaration here plus its tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rnnsearch.cells.ir import PRODUCT, SUM, UNARY, Expr, Kernel, call


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


# log and div keep away from zero: log reads max(v, GUARD); div's denominator has at least
# this magnitude, keeping its sign (the sign bit: -0.0 counts as negative).
GUARD = 1e-6


def _guarded(b: float) -> float:
    return math.copysign(max(abs(b), GUARD), b) if b == b else b


# A derivative: (g, y, *operands) -> one expression per operand, the operand's share of
# the gradient (g: the gradient of the op's value y). None: no gradient flows there.
Grad = Callable[..., tuple[Expr | None, ...]]


@dataclass(frozen=True)
class OpSpec:
    name: str
    min_arity: int
    max_arity: int
    commutative: bool  # operand order does not matter (slots are not part of identity)
    learned: bool  # owns parameters
    attrs: tuple[str, ...]  # attribute names allowed on the node
    symbol: str  # how the formula writes it
    # the formula writes it as a call (tanh(a), max(a, b)) or infix (a + b) at this precedence
    infix: int = 0
    # Constant folding: the op on numbers (parameter-free ops); operand values that make
    # the op its other operand, as (slot, value) (x + 0, x * 1, x - 0); and a value
    # that makes the result that value whatever the other operand is (x * 0); and the
    # value of the op on one node twice (x - x).
    scalar: Callable[..., float] | None = None
    neutral: tuple[tuple[int, float], ...] = ()
    absorbing: float | None = None
    self_value: float | None = None
    # the step: the forward as a kernel (Python and C forms) and its derivative
    kernel: Kernel | None = None
    grad: Grad | None = None
    # which mutation set draws it: "paper" (Jozefowicz et al.'s), "extended", or None
    draw: str | None = None
    # what mutations do with it: replace one activation by another, or one binary op by another
    role: str | None = None  # "activation" | "elementwise"
    meaning: str = ""  # what `rnnsearch show --legend` says it is
    helpers: tuple[Kernel, ...] = ()  # kernels its derivative uses (one fused kernel where torch has one)


def _unary(name, py, c, *, c_def="", py_def="") -> Kernel:
    return Kernel(name, py, c, 0, py_def, c_def)


# Kernels every derivative may use; an op's own helper kernels are declared with it.
COMMON: tuple[Kernel, ...] = (
    Kernel("neg", "-{0}", "(-{0})", UNARY),
    Kernel("zeros_like", "torch.zeros_like({0})", "0.0f"),
)


def _mul(a: Expr, b: Expr) -> Expr:
    return call("mul", a, b)


def _on_value(helper: str) -> Grad:
    """The derivative of an activation from its value y (one fused kernel)."""
    return lambda g, y, a: (call(helper, g, y),)


def _on_operand(helper: str) -> Grad:
    """The derivative of an activation from its operand."""
    return lambda g, y, a: (call(helper, g, a),)


# A linear node may sum many terms, but a graph file must not make us allocate
# unbounded weights.
MAX_LINEAR_INPUTS = 16

OPS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        OpSpec("input", 0, 0, False, False, (), ""),
        OpSpec("output", 1, 1, False, False, (), ""),
        # linear and diag own parameters: the plan lays them out and differentiates them
        OpSpec("linear", 1, MAX_LINEAR_INPUTS, True, True, ("bias_init", "init", "gain"), "W"),
        OpSpec("diag", 1, 1, False, True, ("init", "bound"), "u"),
        OpSpec("const", 0, 0, False, False, ("value",), ""),
        OpSpec(
            "identity",
            1,
            1,
            False,
            False,
            (),
            "",
            scalar=lambda v: v,
            grad=lambda g, y, a: (g,),
            draw="paper",
            role="activation",
        ),
        OpSpec(
            "tanh",
            1,
            1,
            False,
            False,
            (),
            "tanh",
            scalar=math.tanh,
            kernel=_unary("tanh", "torch.tanh({0})", "rs_tanh({0})"),
            helpers=(
                Kernel(
                    "tanh_back",
                    "_tanh_backward({0}, {1})",
                    "rs_tanh_back({0}, {1})",
                    py_def="_tanh_backward = torch.ops.aten.tanh_backward.default",
                    c_def="static inline float rs_tanh_back(float g, float y) { return g * (1.0f - y * y); }",
                ),
            ),
            grad=_on_value("tanh_back"),
            draw="paper",
            role="activation",
            meaning="hyperbolic tangent",
        ),
        OpSpec(
            "sigmoid",
            1,
            1,
            False,
            False,
            (),
            "σ",
            scalar=_sigmoid,
            kernel=_unary("sigmoid", "torch.sigmoid({0})", "rs_sigmoid({0})"),
            helpers=(
                Kernel(
                    "sigmoid_back",
                    "_sigmoid_backward({0}, {1})",
                    "rs_sigmoid_back({0}, {1})",
                    py_def="_sigmoid_backward = torch.ops.aten.sigmoid_backward.default",
                    c_def="static inline float rs_sigmoid_back(float g, float y) { return g * ((1.0f - y) * y); }",
                ),
            ),
            grad=_on_value("sigmoid_back"),
            draw="paper",
            role="activation",
            meaning="logistic sigmoid",
        ),
        OpSpec(
            "relu",
            1,
            1,
            False,
            False,
            (),
            "relu",
            scalar=lambda v: max(v, 0.0),
            kernel=_unary(
                "relu",
                "torch.relu({0})",
                "rs_relu({0})",
                c_def="static inline float rs_relu(float x) { return x < 0.0f ? 0.0f : x; }",
            ),
            helpers=(
                Kernel(
                    "relu_back",
                    "_relu_backward({0}, {1}, 0)",
                    "rs_relu_back({0}, {1})",
                    py_def="_relu_backward = torch.ops.aten.threshold_backward.default",
                    c_def="static inline float rs_relu_back(float g, float y) { return y <= 0.0f ? 0.0f : g; }",
                ),
            ),
            grad=_on_value("relu_back"),
            draw="paper",
            role="activation",
            meaning="rectifier, max(p, 0)",
        ),
        OpSpec(
            "add",
            2,
            2,
            True,
            False,
            (),
            "+",
            infix=SUM,
            scalar=lambda a, b: a + b,
            neutral=((0, 0.0), (1, 0.0)),
            kernel=Kernel("add", "{0} + {1}", "({0} + {1})", SUM),
            grad=lambda g, y, a, b: (g, g),
            draw="paper",
            role="elementwise",
            meaning="sum",
        ),
        OpSpec(
            "sub",
            2,
            2,
            False,
            False,
            (),
            "-",
            infix=SUM,
            scalar=lambda a, b: a - b,
            neutral=((1, 0.0),),
            self_value=0.0,
            kernel=Kernel("sub", "{0} - {1}", "({0} - {1})", SUM),
            grad=lambda g, y, a, b: (g, call("neg", g)),
            draw="paper",
            role="elementwise",
            meaning="difference",
        ),
        OpSpec(
            "mul",
            2,
            2,
            True,
            False,
            (),
            "*",
            infix=PRODUCT,
            scalar=lambda a, b: a * b,
            neutral=((0, 1.0), (1, 1.0)),
            absorbing=0.0,
            kernel=Kernel("mul", "{0} * {1}", "({0} * {1})", PRODUCT),
            grad=lambda g, y, a, b: (_mul(g, b), _mul(g, a)),
            draw="paper",
            role="elementwise",
            meaning="product",
        ),
        # -- the extended set: what modern cells (minLSTM, sLSTM) are made of -----------
        OpSpec(
            "exp",
            1,
            1,
            False,
            False,
            (),
            "exp",
            scalar=lambda v: math.exp(min(v, 88.0)),
            kernel=_unary(
                "exp",
                "torch.exp({0})",
                "rs_exp_op({0})",
                # rs_exp saturates (what sigmoid and tanh want); the op overflows as torch's does
                c_def=(
                    "static inline float rs_exp_op(float x) {\n"
                    "    if (x > 88.72283935546875f) return __builtin_inff();\n"
                    "    if (x < 88.0f) return rs_exp(x);\n"
                    "    const float e = rs_exp(0.5f * x); /* x / 2 is exact */\n"
                    "    return e * e;\n"
                    "}"
                ),
            ),
            grad=lambda g, y, a: (_mul(g, y),),
            draw="extended",
            role="activation",
            meaning="exponential",
        ),
        OpSpec(
            "log",
            1,
            1,
            False,
            False,
            (),
            "log",
            scalar=lambda v: math.log(max(v, GUARD)),
            kernel=_unary(
                "log",
                f"torch.log(torch.clamp_min({{0}}, {GUARD!r}))",
                "rs_log({0})",
                c_def=f"static inline float rs_log(float x) {{ return __builtin_logf(x < {GUARD!r}f ? {GUARD!r}f : x); }}",
            ),
            helpers=(
                Kernel(
                    "log_back",
                    "_log_backward({0}, {1})",
                    "rs_log_back({0}, {1})",
                    py_def=(f"def _log_backward(g, v):\n    return torch.where(v >= {GUARD!r}, g / v, 0.0)"),
                    c_def=f"static inline float rs_log_back(float g, float v) {{ return v >= {GUARD!r}f ? g / v : 0.0f; }}",
                ),
            ),
            grad=_on_operand("log_back"),
            draw="extended",
            role="activation",
            meaning="natural log of max(p, 1e-6)",
        ),
        OpSpec(
            "softplus",
            1,
            1,
            False,
            False,
            (),
            "softplus",
            scalar=lambda v: v if v > 20.0 else math.log1p(math.exp(v)),
            kernel=_unary(
                "softplus",
                "torch.nn.functional.softplus({0})",
                "rs_softplus({0})",
                c_def="static inline float rs_softplus(float x) { return x > 20.0f ? x : __builtin_log1pf(rs_exp(x)); }",
            ),
            helpers=(
                Kernel(
                    "softplus_back",
                    "_softplus_backward({0}, {1}, 1.0, 20.0)",
                    "rs_softplus_back({0}, {1})",
                    py_def="_softplus_backward = torch.ops.aten.softplus_backward.default",
                    c_def=(
                        "static inline float rs_softplus_back(float g, float v) {\n"
                        "    if (v > 20.0f) return g;\n"
                        "    const float z = rs_exp(v);\n"
                        "    return g * z / (z + 1.0f);\n"
                        "}"
                    ),
                ),
            ),
            grad=_on_operand("softplus_back"),
            draw="extended",
            role="activation",
            meaning="log(1 + exp(p))",
        ),
        OpSpec(
            "leaky_relu",
            1,
            1,
            False,
            False,
            (),
            "lrelu",
            scalar=lambda v: v if v > 0 else 0.01 * v,
            kernel=_unary(
                "leaky_relu",
                "torch.nn.functional.leaky_relu({0})",
                "rs_leaky_relu({0})",
                c_def="static inline float rs_leaky_relu(float x) { return x > 0.0f ? x : 0.01f * x; }",
            ),
            helpers=(
                Kernel(
                    "leaky_relu_back",
                    "_leaky_relu_backward({0}, {1}, 0.01, True)",
                    "rs_leaky_relu_back({0}, {1})",
                    py_def="_leaky_relu_backward = torch.ops.aten.leaky_relu_backward.default",
                    c_def="static inline float rs_leaky_relu_back(float g, float y) { return y > 0.0f ? g : 0.01f * g; }",
                ),
            ),
            grad=_on_value("leaky_relu_back"),
            draw="extended",
            role="activation",
            meaning="leaky rectifier: p, or 0.01 p below 0",
        ),
        OpSpec(
            "softsign",
            1,
            1,
            False,
            False,
            (),
            "softsign",
            scalar=lambda v: v / (1.0 + abs(v)),
            kernel=_unary(
                "softsign",
                "torch.nn.functional.softsign({0})",
                "rs_softsign({0})",
                c_def="static inline float rs_softsign(float x) { return x / (1.0f + __builtin_fabsf(x)); }",
            ),
            helpers=(
                Kernel(
                    "softsign_back",
                    "_softsign_backward({0}, {1})",
                    "rs_softsign_back({0}, {1})",
                    py_def="def _softsign_backward(g, v):\n    return g / (1 + v.abs()) ** 2",
                    c_def=(
                        "static inline float rs_softsign_back(float g, float v) {\n"
                        "    const float d = 1.0f + __builtin_fabsf(v);\n"
                        "    return g / (d * d);\n"
                        "}"
                    ),
                ),
            ),
            grad=_on_operand("softsign_back"),
            draw="extended",
            role="activation",
            meaning="p / (1 + |p|)",
        ),
        OpSpec(
            "div",
            2,
            2,
            False,
            False,
            (),
            "/",
            infix=PRODUCT,
            scalar=lambda a, b: a / _guarded(b),
            neutral=((1, 1.0),),
            kernel=Kernel(
                "div",
                f"{{0}} / torch.copysign(torch.clamp_min(torch.abs({{1}}), {GUARD!r}), {{1}})",
                "rs_div({0}, {1})",
                PRODUCT,
                c_def=(
                    "static inline float rs_div(float a, float b) {\n"
                    "    float m = __builtin_fabsf(b);\n"
                    f"    m = m < {GUARD!r}f ? {GUARD!r}f : m; /* NaN stays NaN */\n"
                    "    return a / __builtin_copysignf(m, b);\n"
                    "}"
                ),
                tensor_args=True,
            ),
            helpers=(
                Kernel(
                    "div_back",
                    "_div_backward({0}, {1}, {2})",
                    "rs_div_back({0}, {1}, {2})",
                    py_def=(
                        "def _div_backward(g, a, b):\n"
                        f"    # d(a / b)/db where |b| >= {GUARD!r}; below it the denominator is a constant\n"
                        f"    return torch.where(b.abs() >= {GUARD!r}, -g * a / (b * b), 0.0)"
                    ),
                    c_def=(
                        "static inline float rs_div_back(float g, float a, float b) {\n"
                        f"    return __builtin_fabsf(b) >= {GUARD!r}f ? -g * a / (b * b) : 0.0f;\n"
                        "}"
                    ),
                    tensor_args=True,
                ),
            ),
            grad=lambda g, y, a, b: (call("div", g, b), call("div_back", g, a, b)),
            draw="extended",
            role="elementwise",
            meaning="quotient; |q| raised to at least 1e-6, keeping its sign",
        ),
        OpSpec(
            "max",
            2,
            2,
            True,
            False,
            (),
            "max",
            scalar=max,
            kernel=Kernel(
                "max",
                "torch.maximum({0}, {1})",
                "rs_max({0}, {1})",
                c_def="static inline float rs_max(float a, float b) { return (a != a || a > b) ? a : b; }",
                tensor_args=True,
            ),
            helpers=(
                Kernel(
                    "max_back",
                    "_max_backward({0}, {1}, {2})",
                    "rs_max_back({0}, {1}, {2})",
                    py_def=(
                        "def _max_backward(g, a, b):\n"
                        "    # torch.maximum's rule: a tie splits the gradient\n"
                        "    return torch.where(a == b, g / 2, g).masked_fill(a < b, 0.0)"
                    ),
                    c_def=(
                        "static inline float rs_max_back(float g, float a, float b) {\n"
                        "    return a > b ? g : (a == b ? 0.5f * g : 0.0f);\n"
                        "}"
                    ),
                    tensor_args=True,
                ),
            ),
            grad=lambda g, y, a, b: (call("max_back", g, a, b), call("max_back", g, b, a)),
            draw="extended",
            role="elementwise",
            meaning="the larger of p and q",
        ),
    )
}

# Every kernel the step's arithmetic uses, by name: the ops' own and the helpers.
KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (*COMMON, *[s.kernel for s in OPS.values() if s.kernel], *[h for s in OPS.values() for h in s.helpers])
}

OP_SETS = ("paper", "extended")


def drawable(role: str, ops: str = "paper") -> tuple[str, ...]:
    """The ops of one role ("activation" or "elementwise") that mutations draw under an op
    set: "paper" (Jozefowicz et al.'s), or "extended" (the paper's and the modern ones)."""
    if ops not in OP_SETS:
        raise ValueError(f"op set must be one of {', '.join(OP_SETS)}, not {ops!r}")
    allowed = ("paper",) if ops == "paper" else OP_SETS
    return tuple(s.name for s in OPS.values() if s.role == role and s.draw in allowed)


RESERVED_OPS = ("input", "output")

LINEAR_INITS = ("random", "identity")
DIAG_INITS = ("random", "uniform01")

# Default attribute values: a node that leaves one out means this.
DEFAULTS: dict[str, dict[str, object]] = {
    "linear": {"bias_init": 0.0, "init": "random", "gain": 1.0},
    "diag": {"init": "random", "bound": None},
    "const": {"value": 0.0},
}


def full_attrs(op: str, attrs: dict[str, object]) -> dict[str, object]:
    """The node's attributes with defaults filled in (what identity is computed on)."""
    out = dict(DEFAULTS.get(op, {}))
    out.update(attrs)
    return out
