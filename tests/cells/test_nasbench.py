"""NAS-Bench-NLP recipes in: every sample recipe imports, its compiled cell equals an
independent implementation of the benchmark's CustomRNNCell semantics (written here from
its README, float64, to 1e-6), the classic cells are recognised, and malformed recipes are
refused in one line naming the recipe and the node."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnsearch.cells import zoo
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.cells.nasbench import RecipeError, load_recipes, near_zoo, recipe_graph
from rnnsearch.cells.resolve import resolve_cell
from rnnsearch.errors import UserError

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "nasbench-nlp" / "recepies_example.json"
N, B, T = 6, 3, 5


def _recipes():
    return load_recipes(SAMPLE)


class CustomRNNCell:
    """The benchmark's cell semantics over a recipe: a node's value from its op and its
    inputs' values, states h_prev_K in, h_new_K out; parameters read from the compiled
    layer through its layout (recipe node N is graph node r_N)."""

    def __init__(self, recipe, layer):
        self.recipe, self.layer = recipe, layer

    def W(self, node, slot):
        name, row = self.layer.layout.terms[(f"r_{node}", slot)]
        return getattr(self.layer.cell, name)[row * N : (row + 1) * N]

    def b(self, node):
        return self.layer.cell.bias[self.layer.layout.bias[f"r_{node}"]]

    def step(self, x, states):
        values = {"x": x, **{f"h_prev_{k}": s for k, s in enumerate(states)}}

        def value(name):
            if name not in values:
                spec = self.recipe[name]
                ins = [value(u) for u in spec["input"]]
                op = spec["op"]
                if op == "linear":
                    out = self.b(name) + sum(v @ self.W(name, i).T for i, v in enumerate(ins))
                elif op == "activation_tanh":
                    out = torch.tanh(ins[0])
                elif op == "activation_sigm":
                    out = torch.sigmoid(ins[0])
                elif op == "activation_leaky_relu":
                    out = torch.nn.functional.leaky_relu(ins[0], 0.01)
                elif op == "elementwise_sum":
                    out = sum(ins[1:], ins[0])
                elif op == "elementwise_prod":
                    out = ins[0]
                    for v in ins[1:]:
                        out = out * v
                else:
                    assert op == "blend"
                    z, a, b = ins
                    out = z * a + (1 - z) * b
                values[name] = out
            return values[name]

        return tuple(value(f"h_new_{k}") for k in range(len(states)))


@pytest.mark.parametrize("k", range(10))
def test_every_sample_recipe_equals_the_benchmarks_semantics(k):
    recipe = _recipes()[k]
    torch.manual_seed(k)
    layer = compile_cell(recipe_graph(recipe, k), N, dtype=torch.float64)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-0.6, 0.6)
    ref = CustomRNNCell(recipe, layer)
    x = torch.randn(T, B, N, dtype=torch.float64)
    states = tuple(torch.randn(B, N, dtype=torch.float64) * 0.5 for _ in layer.cell.states)
    out, final = layer(x, states)
    s, outs = states, []
    for t in range(T):
        s = ref.step(x[t], s)
        outs.append(s[0])
    torch.testing.assert_close(out, torch.stack(outs), rtol=1e-6, atol=1e-6)
    for a, b in zip(final, s, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_the_classic_cells_are_recognised():
    names = [zoo.lookup_name(recipe_graph(r, k)) for k, r in enumerate(_recipes())]
    assert names[0] == names[3] == "Tanh"
    assert names[2] == "GRU-Cho"  # the benchmark's GRU: r * h before the matrix (Cho et al.)
    # the benchmark's LSTM recipe has a tanh output gate: one op from the LSTM, and said so
    assert names[1] is None
    assert near_zoo(recipe_graph(_recipes()[1], 1)) == "LSTM, but o_act is tanh where the LSTM has σ"


@pytest.mark.parametrize(
    "recipe,why",
    [
        ({"h_new_0": {"op": "activation_relu6", "input": ["x"]}}, "node 'h_new_0': unknown op 'activation_relu6'"),
        (
            {
                "a": {"op": "linear", "input": ["x", "b"]},
                "b": {"op": "activation_tanh", "input": ["a"]},
                "h_new_0": {"op": "elementwise_sum", "input": ["a", "h_prev_0"]},
            },
            "is part of a cycle",
        ),
        ({"a": {"op": "linear", "input": ["x", "h_prev_0"]}}, "no h_new_0"),
        ({"h_new_0": {"op": "blend", "input": ["x", "h_prev_0"]}}, "node 'h_new_0': blend takes 3 inputs, not 2"),
        ({"h_new_0": {"op": "activation_tanh", "input": ["x", "h_prev_0"]}}, "activation_tanh takes 1 inputs, not 2"),
        ({"h_new_0": {"op": "linear", "input": ["x", "h_prev_1"]}}, "reads h_prev_1, a state the recipe never makes"),
        ({"h_new_0": {"op": "linear", "input": ["x", "nowhere"]}}, "reads 'nowhere', which is no node of the recipe"),
        ({"h_new_0": "__import__('os').system('true')"}, 'node \'h_new_0\': not {"op": ..., "input": [...]}'),
    ],
)
def test_malformed_recipes_are_refused_in_one_line(recipe, why):
    with pytest.raises(RecipeError) as err:
        recipe_graph(recipe, 7)
    text = str(err.value)
    assert text.startswith("recipe 7") and why in text and "\n" not in text


def test_recipes_are_cells_for_study_and_launch(tmp_path):
    name, graph = resolve_cell(f"nasbench-nlp:{SAMPLE}#2")
    assert name == "NB2" and zoo.lookup_name(graph) == "GRU-Cho"
    with pytest.raises(UserError, match="no recipe 10"):
        resolve_cell(f"nasbench-nlp:{SAMPLE}#10")
    with pytest.raises(UserError, match="nasbench-nlp:FILE.json#K"):
        resolve_cell(f"nasbench-nlp:{SAMPLE}")


def test_import_command_writes_a_graph_per_recipe(tmp_path):
    out = tmp_path / "nb"
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "import", "nasbench-nlp", str(SAMPLE), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"recipe-{k}.json" for k in range(10))
    lines = r.stdout.splitlines()
    assert any(line.split()[0] == "2" and line.endswith("= GRU-Cho") for line in lines[2:])
    assert max(len(line) for line in lines[1:]) <= 80
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"h_new_0": {"op": "conv", "input": ["x"]}}]))
    r = subprocess.run(
        [sys.executable, "-m", "rnnsearch.cli", "import", "nasbench-nlp", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "error: recipe 0, node 'h_new_0': unknown op 'conv' (known: linear, blend, activation_tanh, "
        "activation_sigm, activation_leaky_relu, elementwise_sum, elementwise_prod)"
    ]
