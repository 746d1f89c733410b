"""NAS-Bench-NLP recipes (Klyuchnikov et al. 2020) as cell graphs.

A recipe is a JSON object from node name to ``{"op": ..., "input": [...]}`` over ``x``,
``h_prev_K`` (state K before the step) and ``h_new_K`` (state K after it; ``h_new_0`` is
the output). The benchmark's ops, as its ``custom_rnn.py`` runs them:

- ``linear``: the sum over the inputs of W_i v_i, plus one bias;
- ``activation_tanh``, ``activation_sigm``, ``activation_leaky_relu`` (slope 0.01);
- ``elementwise_sum``, ``elementwise_prod``: the sum or product of all inputs (the
  benchmark's code folds more than two inputs through an undefined variable; the evident
  meaning, all of them, is taken: a chain of binary ops here);
- ``blend`` (z, a, b): z * a + (1 - z) * b.

State K is rnnsearch's ``h`` (K = 0), ``c`` (K = 1), ``s2``, ``s3``, ... Nothing in a recipe is
evaluated as code: its names become node ids, its ops are looked up in the table below,
and a recipe that breaks a rule is refused in one line naming the recipe and the node.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rnnsearch.cells.graph import CellGraph, CellGraphError

_ACTIVATIONS = {"activation_tanh": "tanh", "activation_sigm": "sigmoid", "activation_leaky_relu": "leaky_relu"}
_CHAINS = {"elementwise_sum": "add", "elementwise_prod": "mul"}
# inputs each op takes: (at least, at most)
_ARITY = {"linear": (1, 16), "blend": (3, 3), **dict.fromkeys(_ACTIVATIONS, (1, 1)), **dict.fromkeys(_CHAINS, (2, 16))}
_STATE = re.compile(r"^h_(prev|new)_(\d{1,2})$")
MAX_NODES = 256


class RecipeError(ValueError):
    """A recipe that is not a cell: one line naming the recipe and the node."""


def state_name(k: int) -> str:
    return ("h", "c")[k] if k < 2 else f"s{k}"


def load_recipes(path: str | Path) -> list[dict]:
    """The list of recipes in a NAS-Bench-NLP JSON file (a list, or one recipe)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RecipeError(f"{path}: not a readable JSON file ({e})") from None
    recipes = data if isinstance(data, list) else [data]
    for k, r in enumerate(recipes):
        if not isinstance(r, dict):
            raise RecipeError(f"recipe {k}: not an object of nodes")
    return recipes


def recipe_graph(recipe: dict, index: int = 0) -> CellGraph:
    """The cell graph of one recipe (``index`` names it in errors)."""

    def fail(node: str, why: str) -> RecipeError:
        return RecipeError(f"recipe {index}, node {str(node)[:40]!r}: {why}")

    if len(recipe) > MAX_NODES:
        raise RecipeError(f"recipe {index}: {len(recipe)} nodes (at most {MAX_NODES})")
    nodes: dict[str, tuple[str, list[str]]] = {}
    for name, spec in recipe.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("op"), str) or not isinstance(spec.get("input"), list):
            raise fail(name, 'not {"op": ..., "input": [...]}')
        op, inputs = spec["op"], spec["input"]
        if op not in _ARITY:
            raise fail(name, f"unknown op {op[:40]!r} (known: {', '.join(_ARITY)})")
        lo, hi = _ARITY[op]
        if not lo <= len(inputs) <= hi:
            raise fail(name, f"{op} takes {lo if lo == hi else f'{lo} to {hi}'} inputs, not {len(inputs)}")
        if not all(isinstance(u, str) for u in inputs):
            raise fail(name, "an input that is not a node name")
        if name == "x" or _STATE.match(name) and name.startswith("h_prev"):
            raise fail(name, "an input of the cell cannot be computed")
        nodes[name] = (op, inputs)
    outputs = sorted((int(m.group(2)), n) for n in nodes if (m := _STATE.match(n)) and m.group(1) == "new")
    if not outputs or outputs[0][0] != 0:
        raise RecipeError(f"recipe {index}: no h_new_0 (the cell's output)")
    ks = [k for k, _ in outputs]
    if ks != list(range(len(ks))):
        raise RecipeError(f"recipe {index}: states h_new_{', h_new_'.join(map(str, ks))} are not numbered 0, 1, ...")
    g = CellGraph(tuple(state_name(k) for k in ks))
    made: dict[str, str] = {"x": "x"}
    for k in ks:
        made[f"h_prev_{k}"] = state_name(k)
    visiting: set[str] = set()

    def build(name: str, reader: str) -> str:
        if name in made:
            return made[name]
        if name not in nodes:
            m = _STATE.match(name)
            if m and m.group(1) == "prev":
                raise fail(reader, f"reads {name}, a state the recipe never makes (no h_new_{m.group(2)})")
            raise fail(reader, f"reads {name[:40]!r}, which is no node of the recipe")
        if name in visiting:
            raise fail(name, "is part of a cycle")
        visiting.add(name)
        op, inputs = nodes[name]
        args = [build(u, name) for u in inputs]
        visiting.discard(name)
        made[name] = _emit(g, f"r_{name[:56]}", op, args)
        return made[name]

    for k, name in outputs:
        g.set_output(state_name(k), build(name, name))
    try:
        return g.validate()
    except CellGraphError as e:
        raise RecipeError(f"recipe {index}: {e}") from None


def _emit(g: CellGraph, nid: str, op: str, args: list[str]) -> str:
    if op == "linear":
        return g.add("linear", *args, name=nid)
    if op in _ACTIVATIONS:
        return g.add(_ACTIVATIONS[op], args[0], name=nid)
    if op in _CHAINS:
        out = args[0]
        for i, a in enumerate(args[1:], start=1):
            out = g.add(_CHAINS[op], out, a, name=nid if i == len(args) - 1 else f"{nid}~{i}")
        return out
    z, a, b = args  # blend
    one = "r~one" if "r~one" in g.g else g.add("const", name="r~one", value=1.0)
    za = g.add("mul", z, a, name=f"{nid}~za")
    rest = g.add("mul", g.add("sub", one, z, name=f"{nid}~1-z"), b, name=f"{nid}~b")
    return g.add("add", za, rest, name=nid)


def recipe_spec(spec: str) -> tuple[Path, int] | None:
    """``nasbench-nlp:FILE.json#K`` as (FILE, K); None for anything else."""
    if not spec.startswith("nasbench-nlp:"):
        return None
    path, sep, k = spec[len("nasbench-nlp:") :].rpartition("#")
    if not sep or not k.isdigit():
        raise RecipeError(f"{spec}: name a recipe as nasbench-nlp:FILE.json#K (K from 0)")
    return Path(path), int(k)


def graph_for(spec: str) -> tuple[str, CellGraph]:
    """(display name, graph) for ``nasbench-nlp:FILE.json#K``."""
    path, k = recipe_spec(spec)
    recipes = load_recipes(path)
    if not 0 <= k < len(recipes):
        raise RecipeError(f"{path}: no recipe {k} (it has {len(recipes)}: 0 to {len(recipes) - 1})")
    return f"NB{k}", recipe_graph(recipes[k], k)


def near_zoo(graph: CellGraph) -> str | None:
    """How a graph one activation away from a zoo cell differs from it ("LSTM, but o_act
    is tanh where the LSTM has σ"), or None."""
    from rnnsearch.cells import zoo
    from rnnsearch.cells.ops import OPS, drawable

    swaps = [op for op in drawable("activation", "extended") if op != "identity"]
    for n in graph.internal_nodes():
        op = graph.op(n)
        if op not in swaps:
            continue
        for alt in swaps:
            if alt == op:
                continue
            trial = graph.copy()
            trial.g.nodes[n]["op"] = alt
            name = zoo.lookup_name(trial)
            if name is not None:
                node = n[2:] if n.startswith("r_") else n
                return f"{name}, but {node} is {OPS[op].symbol} where the {name} has {OPS[alt].symbol}"
    return None
