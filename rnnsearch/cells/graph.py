"""The cell graph: a DAG over width-n vectors, its validation and its JSON form.

Reserved nodes: the input ``x`` and one input per state (``h`` first, then e.g. ``c``),
and one output per state, ``<state>_next``. Edges carry ``slot``, the argument position.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from rnnsearch.cells.ops import (
    DIAG_INITS,
    LINEAR_INITS,
    OPS,
    full_attrs,
)

SCHEMA_VERSION = 1

# Bounds that keep a hostile or broken file from costing unbounded time or memory.
MAX_NODES = 512
MAX_STATES = 8
MAX_NAME_LEN = 64
MAX_JSON_BYTES = 1 << 20

# State names end up in parameter names of generated code, so they are plain
# lowercase identifiers; everything else a file names is never put into code.
_STATE_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_PY_KEYWORDS = frozenset(
    "and as assert async await break class continue def del elif else except finally for "
    "from global if import in is lambda nonlocal not or pass raise return try while with "
    "yield".split()
)


class CellGraphError(ValueError):
    """An invalid cell graph: says which node broke which rule."""

    def __init__(self, node: object, rule: str):
        self.node = node
        self.rule = rule
        where = f"node {node!r}" if node is not None else "graph"
        super().__init__(f"{where}: {rule}")


def output_name(state: str) -> str:
    return f"{state}_next"


class CellGraph:
    """A recurrent cell as a networkx MultiDiGraph (parallel edges allow ``mul(h, h)``).

    Build one with :meth:`add` and :meth:`set_output`::

        g = CellGraph(states=("h",))
        pre = g.add("linear", "x", "h")
        g.set_output("h", g.add("tanh", pre))
    """

    def __init__(self, states: Iterable[str] = ("h",)):
        states = tuple(states)
        if not states or states[0] != "h":
            raise CellGraphError(None, "the first state must be 'h' (what the layer emits)")
        if len(states) > MAX_STATES:
            raise CellGraphError(None, f"at most {MAX_STATES} states")
        if len(set(states)) != len(states):
            raise CellGraphError(None, "state names must be distinct")
        for s in states:
            if not isinstance(s, str) or not _STATE_NAME.match(s) or s in _PY_KEYWORDS or s == "x":
                raise CellGraphError(
                    s, "a state name is 1-12 lowercase letters or digits, starting with a letter, not 'x'"
                )
        self.states: tuple[str, ...] = states
        self.g = nx.MultiDiGraph()
        self._counter = 0
        for name in self.inputs:
            self.g.add_node(name, op="input", attrs={})
        for s in states:
            self.g.add_node(output_name(s), op="output", attrs={})

    # -- structure --------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        return ("x", *self.states)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(output_name(s) for s in self.states)

    @property
    def reserved(self) -> frozenset[str]:
        return frozenset(self.inputs) | frozenset(self.outputs)

    def op(self, node: str) -> str:
        return self.g.nodes[node]["op"]

    def attrs(self, node: str) -> dict[str, Any]:
        return self.g.nodes[node]["attrs"]

    def full_attrs(self, node: str) -> dict[str, Any]:
        return full_attrs(self.op(node), self.attrs(node))

    def operands(self, node: str) -> list[str]:
        """The node's inputs in slot order."""
        edges = sorted(self.g.in_edges(node, data="slot"), key=lambda e: e[2])
        return [u for u, _, _ in edges]

    def consumers(self, node: str) -> list[str]:
        return [v for _, v in self.g.out_edges(node)]

    def internal_nodes(self) -> list[str]:
        return [n for n in nx.topological_sort(self.g) if n not in self.reserved]

    def topological(self) -> list[str]:
        """Nodes in a deterministic topological order (ties broken by name)."""
        return list(nx.lexicographical_topological_sort(self.g, key=str))

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    # -- building ---------------------------------------------------------------------
    def fresh_name(self, prefix: str = "n") -> str:
        while True:
            self._counter += 1
            name = f"{prefix}{self._counter}"
            if name not in self.g:
                return name

    def add(self, op: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        """Add an op node reading ``inputs`` (in slot order); returns its name."""
        if op not in OPS or op in ("input", "output"):
            raise CellGraphError(name, f"unknown op {op!r}")
        name = name if name is not None else self.fresh_name()
        if name in self.g:
            raise CellGraphError(name, "duplicate node name")
        self.g.add_node(name, op=op, attrs=dict(attrs))
        for slot, u in enumerate(inputs):
            if u not in self.g:
                raise CellGraphError(name, f"reads unknown node {u!r}")
            self.g.add_edge(u, name, slot=slot)
        return name

    def set_output(self, state: str, node: str) -> None:
        out = output_name(state)
        if out not in self.g:
            raise CellGraphError(state, "not a state of this cell")
        self.g.remove_edges_from(list(self.g.in_edges(out, keys=True)))
        self.g.add_edge(node, out, slot=0)

    def copy(self) -> CellGraph:
        new = CellGraph.__new__(CellGraph)
        new.states = self.states
        new.g = nx.MultiDiGraph()
        for n, d in self.g.nodes(data=True):
            new.g.add_node(n, op=d["op"], attrs=dict(d["attrs"]))
        for u, v, d in self.g.edges(data=True):
            new.g.add_edge(u, v, slot=d["slot"])
        new._counter = self._counter
        return new

    # -- validation -------------------------------------------------------------------
    def validate(self) -> CellGraph:
        """Check every rule, prune dead nodes in place, and return self.

        Raises :class:`CellGraphError` naming the node and the rule.
        """
        if self.g.number_of_nodes() > MAX_NODES:
            raise CellGraphError(None, f"more than {MAX_NODES} nodes")
        for n, d in self.g.nodes(data=True):
            self._check_node(n, d["op"], d["attrs"])
        if not nx.is_directed_acyclic_graph(self.g):
            cycle = nx.find_cycle(self.g)
            raise CellGraphError(
                cycle[0][0], "is on a cycle (a cell graph must be acyclic; state flows through <state>_next)"
            )
        reach = set()
        for i in self.inputs:
            reach |= nx.descendants(self.g, i)
        for out in self.outputs:
            if self.g.in_degree(out) != 1:
                raise CellGraphError(out, "missing output: every state needs exactly one value")
            if out not in reach:
                raise CellGraphError(out, "output is not reached from the inputs")
        live = set(self.outputs)
        for out in self.outputs:
            live |= nx.ancestors(self.g, out)
        dead = [n for n in self.g if n not in live and n not in self.inputs]
        self.g.remove_nodes_from(dead)
        return self

    def _check_node(self, n: str, op: str, attrs: Mapping[str, Any]) -> None:
        if op not in OPS:
            raise CellGraphError(n, f"unknown op {op!r}")
        spec = OPS[op]
        if op == "input" and n not in self.inputs:
            raise CellGraphError(n, "is an input but not a reserved input (x or a state)")
        if n in self.inputs and op != "input":
            raise CellGraphError(n, "uses a reserved input name")
        if op == "output" and n not in self.outputs:
            raise CellGraphError(n, "is an output but not a reserved output (<state>_next)")
        if n in self.outputs and op != "output":
            raise CellGraphError(n, "uses a reserved output name")
        for v in self.consumers(n):
            if op == "output":
                raise CellGraphError(v, f"reads the output {n!r}; outputs are read only through the state")
        slots = sorted(s for _, _, s in self.g.in_edges(n, data="slot"))
        arity = len(slots)
        if op == "output" and arity == 0:
            raise CellGraphError(n, "missing output: every state needs exactly one value")
        if not spec.min_arity <= arity <= spec.max_arity:
            want = str(spec.min_arity) if spec.min_arity == spec.max_arity else f"{spec.min_arity}-{spec.max_arity}"
            raise CellGraphError(n, f"wrong arity: {op} takes {want} inputs, got {arity}")
        if slots != list(range(arity)):
            raise CellGraphError(n, f"slots must be 0..{arity - 1}, got {slots}")
        for k in attrs:
            if k not in spec.attrs:
                raise CellGraphError(n, f"op {op} has no attribute {k!r}")
        a = full_attrs(op, dict(attrs))
        if op == "linear":
            _finite(n, "bias_init", a["bias_init"])
            _finite(n, "gain", a["gain"])
            if a["init"] not in LINEAR_INITS:
                raise CellGraphError(n, f"init must be one of {LINEAR_INITS}")
        elif op == "diag":
            if a["init"] not in DIAG_INITS:
                raise CellGraphError(n, f"init must be one of {DIAG_INITS}")
            if a["bound"] is not None:
                _finite(n, "bound", a["bound"])
                if a["bound"] <= 0:
                    raise CellGraphError(n, "bound must be positive")
        elif op == "const":
            _finite(n, "value", a["value"])

    # -- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        nodes = []
        for n in self.topological():
            if n in self.reserved:
                continue
            entry: dict[str, Any] = {"id": n, "op": self.op(n), "inputs": self.operands(n)}
            if self.attrs(n):
                entry["attrs"] = dict(self.attrs(n))
            nodes.append(entry)
        outputs = {s: self.operands(output_name(s))[0] for s in self.states if self.operands(output_name(s))}
        return {"schema": SCHEMA_VERSION, "states": list(self.states), "nodes": nodes, "outputs": outputs}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any) -> CellGraph:
        """Build and validate a graph from parsed JSON; never evaluates any text."""
        if not isinstance(data, dict):
            raise CellGraphError(None, "a cell graph is a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise CellGraphError(None, f"unsupported schema version {schema!r} (this rnnsearch reads {SCHEMA_VERSION})")
        states = data.get("states", ["h"])
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise CellGraphError(None, "'states' must be a list of names")
        g = cls(states)
        nodes = data.get("nodes")
        if not isinstance(nodes, list):
            raise CellGraphError(None, "'nodes' must be a list")
        if len(nodes) > MAX_NODES:
            raise CellGraphError(None, f"more than {MAX_NODES} nodes")
        pending: list[tuple[str, list[str]]] = []
        for entry in nodes:
            if not isinstance(entry, dict):
                raise CellGraphError(None, "each node is a JSON object")
            nid, op = entry.get("id"), entry.get("op")
            if not isinstance(nid, str) or not 0 < len(nid) <= MAX_NAME_LEN:
                raise CellGraphError(None, f"node id must be a string of 1-{MAX_NAME_LEN} characters")
            if nid in g.g:
                raise CellGraphError(nid, "duplicate node id, or an id that is reserved")
            if not isinstance(op, str) or op not in OPS or op in ("input", "output"):
                raise CellGraphError(nid, f"unknown op {str(op)[:32]!r}")
            attrs = entry.get("attrs", {})
            if not isinstance(attrs, dict):
                raise CellGraphError(nid, "'attrs' must be an object")
            for k, v in attrs.items():
                if not isinstance(v, (int, float, str, type(None))) or isinstance(v, bool):
                    raise CellGraphError(nid, f"attribute {str(k)[:32]!r} must be a number or a string")
            inputs = entry.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(u, str) for u in inputs):
                raise CellGraphError(nid, "'inputs' must be a list of node ids")
            g.g.add_node(nid, op=op, attrs={k: (float(v) if isinstance(v, int) else v) for k, v in attrs.items()})
            pending.append((nid, inputs))
        for nid, inputs in pending:
            for slot, u in enumerate(inputs):
                if u not in g.g:
                    raise CellGraphError(nid, f"reads unknown node {u[:MAX_NAME_LEN]!r}")
                g.g.add_edge(u, nid, slot=slot)
        outputs = data.get("outputs")
        if not isinstance(outputs, dict):
            raise CellGraphError(None, "'outputs' must map each state to a node id")
        for s, node in outputs.items():
            if s not in g.states:
                raise CellGraphError(str(s)[:MAX_NAME_LEN], "output for a state the cell does not have")
            if not isinstance(node, str) or node not in g.g:
                raise CellGraphError(output_name(s), "output reads an unknown node")
            g.g.add_edge(node, output_name(s), slot=0)
        return g.validate()

    @classmethod
    def from_json(cls, text: str | bytes) -> CellGraph:
        if len(text) > MAX_JSON_BYTES:
            raise CellGraphError(None, f"graph file larger than {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise CellGraphError(None, f"not valid JSON ({str(e)[:80]})") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str) -> CellGraph:
        try:
            with open(path, "rb") as f:
                text = f.read(MAX_JSON_BYTES + 1)
        except OSError as e:
            raise CellGraphError(None, f"cannot read {path}: {e.strerror}") from None
        return cls.from_json(text)

    def __repr__(self) -> str:
        return f"CellGraph(states={self.states}, nodes={len(self.g)})"


def _finite(node: str, key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise CellGraphError(node, f"{key} must be a finite number")
    if abs(value) > 1e6:
        raise CellGraphError(node, f"{key} must be at most 1e6 in magnitude")
