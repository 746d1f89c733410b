"""The op table: the one place that says what each op is.

Every other part (validation, canonical form, formula, code generation) reads this
table, so adding an op means adding one row here and its rules in `codegen`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpSpec:
    name: str
    min_arity: int
    max_arity: int
    commutative: bool  # operand order does not matter (slots are not part of identity)
    learned: bool  # owns parameters
    attrs: tuple[str, ...]  # attribute names allowed on the node
    symbol: str  # how the formula writes it


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
        OpSpec("tanh", 1, 1, False, False, (), "tanh"),
        OpSpec("sigmoid", 1, 1, False, False, (), "σ"),
        OpSpec("relu", 1, 1, False, False, (), "relu"),
        OpSpec("identity", 1, 1, False, False, (), ""),
        OpSpec("add", 2, 2, True, False, (), "+"),
        OpSpec("sub", 2, 2, False, False, (), "-"),
        OpSpec("mul", 2, 2, True, False, (), "*"),
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
