"""The op table is the one place an op lives: every declaration is whole, and every part
that reads it agrees with every other. Each test runs over the table, so an op added to
it is tested here without a line changed."""

import math

import numpy as np
import pytest
import torch

from rnnsearch.cells.canonical import canonical_hash, canonicalize
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.cells.formula import formula, legend_lines
from rnnsearch.cells.graph import CellGraph
from rnnsearch.cells.ops import KERNELS, OP_SETS, OPS, drawable
from rnnsearch.search.mutations import mutate

from .gradients import outputs_and_gradients

COMPUTED = [name for name, spec in OPS.items() if spec.kernel is not None]
UNARY = [n for n in COMPUTED if OPS[n].max_arity == 1]
BINARY = [n for n in COMPUTED if OPS[n].max_arity == 2]
# points away from each op's kinks (relu at 0, max at a tie, the guards at 1e-6)
POINTS = [-25.0, -3.0, -0.7, -0.01, 0.02, 0.4, 1.0, 2.5, 30.0]


def _cell(op: str) -> CellGraph:
    """h_next = op(h) or op(h, c) (c_next = c + h keeps c a state): the op alone."""
    g = CellGraph(("h",) if OPS[op].max_arity == 1 else ("h", "c"))
    node = g.add(op, *g.states)
    g.set_output("h", node)
    if len(g.states) == 2:
        g.set_output("c", g.add("add", "c", "h"))
    return g.validate()


def _in_a_cell(op: str) -> CellGraph:
    """The op between learned layers, as a search would use it."""
    g = CellGraph(("h", "c"))
    a = g.add("linear", "x", "h")
    b = g.add("linear", "x", "c")
    node = g.add(op, a, b) if OPS[op].max_arity == 2 else g.add(op, a)
    g.set_output("h", g.add("tanh", g.add("linear", node, "h")))
    g.set_output("c", g.add("add", "c", g.add("mul", node, g.add("sigmoid", b))))
    return g.validate()


def _step(op: str, *values: np.ndarray, dtype=torch.float64, compile="eager") -> np.ndarray:
    layer = compile_cell(_cell(op), values[0].shape[-1], dtype=dtype, compile=compile)
    states = tuple(torch.as_tensor(v, dtype=dtype).reshape(1, -1) for v in values)
    with torch.no_grad():
        out, _ = layer(torch.zeros(1, 1, values[0].shape[-1], dtype=dtype), states)
    return out[0, 0].numpy()


def test_every_op_is_declared_whole():
    for name, spec in OPS.items():
        if spec.role is None:  # input, output, const, linear, diag: the plan handles them
            continue
        assert spec.draw in OP_SETS and spec.grad is not None and spec.scalar is not None, name
        assert name == "identity" or spec.meaning and spec.symbol, name
        assert name == "identity" or spec.kernel.py and spec.kernel.c, name
    for k in KERNELS.values():
        assert k.py and k.c, k.name
    assert set(drawable("activation")) == {"identity", "tanh", "sigmoid", "relu"}
    assert set(drawable("elementwise")) == {"add", "sub", "mul"}
    assert set(drawable("activation")) < set(drawable("activation", "extended"))


@pytest.mark.parametrize("op", COMPUTED)
def test_folding_computes_what_the_step_computes(op):
    """The constant-folding rule (the op on numbers) and the torch form agree."""
    spec = OPS[op]
    if spec.max_arity == 1:
        a = np.array(POINTS)
        got = _step(op, a)
        want = np.array([spec.scalar(v) for v in a])
    else:
        a, b = (m.ravel() for m in np.meshgrid(POINTS, POINTS + [0.0, 1e-7, -1e-7]))
        got = _step(op, a, b)
        want = np.array([spec.scalar(u, v) for u, v in zip(a, b, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("op", COMPUTED)
def test_folding_rules_hold(op):
    """Each neutral element leaves the other operand, the absorbing element and the self
    value are what the op gives, on the torch form."""
    spec = OPS[op]
    v = np.array(POINTS[1:-1])
    for slot, value in spec.neutral:
        args = [v, v]
        args[slot] = np.full_like(v, value)
        np.testing.assert_allclose(_step(op, *args), v, rtol=1e-15)
    if spec.absorbing is not None:
        np.testing.assert_array_equal(_step(op, v, np.full_like(v, spec.absorbing)), spec.absorbing)
    if spec.self_value is not None:
        np.testing.assert_array_equal(_step(op, v, v), spec.self_value)


@pytest.mark.parametrize("op", COMPUTED)
def test_the_generated_backward_is_the_op_derivative(op):
    """The op table's derivative (the generated backward) equals autograd through the step."""
    torch.manual_seed(3)
    layer = compile_cell(_in_a_cell(op), 6, dtype=torch.float64)
    x = torch.randn(5, 4, 6, dtype=torch.float64)
    states = (torch.randn(4, 6, dtype=torch.float64), torch.rand(4, 6, dtype=torch.float64) + 0.2)
    generated = outputs_and_gradients(layer, x, states)
    layer.generated_backward = False
    recorded = outputs_and_gradients(layer, x, states)
    for a, b in zip(generated, recorded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", COMPUTED)
def test_the_c_loop_computes_the_op_as_torch_does(op):
    """The op's C form (forward and derivative) against its torch form, float32."""
    torch.manual_seed(4)
    python = compile_cell(_in_a_cell(op), 6)
    native = compile_cell(_in_a_cell(op), 6, compile="native")
    native.load_state_dict(python.state_dict())
    x = torch.randn(5, 4, 6)
    states = (torch.randn(4, 6), torch.rand(4, 6) + 0.2)
    for a, b in zip(outputs_and_gradients(native, x, states), outputs_and_gradients(python, x, states), strict=True):
        scale = max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("op", UNARY)
def test_unary_c_forms_match_torch_over_their_range(op):
    """Far beyond the points above: overflow, the guards, tiny and huge arguments."""
    values = np.concatenate([np.linspace(-120, 120, 4001), np.logspace(-30, 1, 400), -np.logspace(-30, 1, 400)])
    got = _step(op, values.astype(np.float32), dtype=torch.float32, compile="native")
    want = _step(op, values.astype(np.float32), dtype=torch.float32)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6, atol=1e-37)


@pytest.mark.parametrize("op", COMPUTED)
def test_every_op_has_a_formula_and_a_legend_line(op):
    g = _cell(op)
    text = formula(g)
    assert OPS[op].symbol in text or op == "identity"
    assert any(f"({op}" in line for line in legend_lines()) or op == "identity"


def test_commuting_ops_hash_the_same_either_way_round():
    for op in BINARY:
        a, b = CellGraph(("h", "c")), CellGraph(("h", "c"))
        a.set_output("h", a.add(op, "h", a.add("linear", "x")))
        b.set_output("h", b.add(op, b.add("linear", "x"), "h"))
        for g in (a, b):
            g.set_output("c", g.add("add", "c", "h"))
        same = canonical_hash(canonicalize(a.validate())) == canonical_hash(canonicalize(b.validate()))
        assert same == OPS[op].commutative, op


def test_mutations_draw_the_extended_ops_only_when_asked():
    from rnnsearch.cells import zoo

    extended = set(drawable("activation", "extended")) | set(drawable("elementwise", "extended"))
    modern = extended - set(drawable("activation")) - set(drawable("elementwise"))
    seen = {"paper": set(), "extended": set()}
    for ops in seen:
        rng = np.random.default_rng(11)
        for _ in range(300):
            child, _ = mutate(zoo.get("GRU"), rng, ops=ops)
            seen[ops] |= {child.op(n) for n in child.internal_nodes()}
    assert not seen["paper"] & modern
    assert modern <= seen["extended"], modern - seen["extended"]
    with pytest.raises(ValueError, match="paper, extended"):
        mutate(zoo.get("GRU"), np.random.default_rng(0), ops="everything")


def test_guards_are_documented_numbers():
    """log reads max(v, 1e-6); div's denominator keeps its sign with magnitude >= 1e-6."""
    assert OPS["log"].scalar(0.0) == pytest.approx(math.log(1e-6))
    assert OPS["div"].scalar(1.0, 0.0) == pytest.approx(1e6)
    assert OPS["div"].scalar(1.0, -1e-9) == pytest.approx(-1e6)
    assert OPS["div"].scalar(3.0, 2.0) == 1.5


def test_softsign_is_torchs():
    """The op added as one declaration: it is torch's softsign, and the extended set draws it."""
    v = np.linspace(-50, 50, 101)
    np.testing.assert_allclose(_step("softsign", v), torch.nn.functional.softsign(torch.tensor(v)).numpy())
    assert "softsign" in drawable("activation", "extended") and "softsign" not in drawable("activation")
