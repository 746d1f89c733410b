"""The op table: the one place that says what each op is.

Every other part (validation, canonical form, formula, code generation) reads this
table, so adding an op means adding one row here and its rules in `codegen`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


@dataclass(frozen=True)
class OpSpec:
    name: str
    min_arity: int
    max_arity: int
    commutative: bool  # operand order does not matter (slots are not part of identity)
    learned: bool  # owns parameters
    attrs: tuple[str, ...]  # attribute names allowed on the node
    symbol: str  # how the formula writes it
    # Constant folding: the op on numbers (parameter-free ops); operand values that make
    # the op its other operand, as (slot, value) (x + 0, x * 1, x - 0); and a value
    # that makes the result that value whatever the other operand is (x * 0); and the
    # value of the op on one node twice (x - x).
    scalar: Callable[..., float] | None = None
    neutral: tuple[tuple[int, float], ...] = ()
    absorbing: float | None = None
    self_value: float | None = None


# A linear node may sum many terms, but a graph file must not make us allocate
# unbounded weights.
MAX_LINEAR_INPUTS = 16

OPS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        OpSpec("input", 0, 0, False, False, (), ""),
        OpSpec("output", 1, 1, False, False, (), ""),
        OpSpec("linear", 1, MAX_LINEAR_INPUTS, True, True, ("bias_init", "init", "gain"), "W"),
        OpSpec("diag", 1, 1, False, True, ("init", "bound"), "u"),
        OpSpec("tanh", 1, 1, False, False, (), "tanh", math.tanh),
        OpSpec("sigmoid", 1, 1, False, False, (), "σ", _sigmoid),
        OpSpec("relu", 1, 1, False, False, (), "relu", lambda v: max(v, 0.0)),
        OpSpec("identity", 1, 1, False, False, (), "", lambda v: v),
        OpSpec("add", 2, 2, True, False, (), "+", lambda a, b: a + b, ((0, 0.0), (1, 0.0))),
        OpSpec("sub", 2, 2, False, False, (), "-", lambda a, b: a - b, ((1, 0.0),), None, 0.0),
        OpSpec("mul", 2, 2, True, False, (), "*", lambda a, b: a * b, ((0, 1.0), (1, 1.0)), 0.0),
        OpSpec("const", 0, 0, False, False, ("value",), ""),
    )
}

ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
ELEMENTWISE = ("add", "sub", "mul")
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
