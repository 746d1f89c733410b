"""Canonical form and hash: the identity of a cell in the database.

The canonical form drops no-ops (``identity``), folds trivial algebra (``1 * v`` is ``v``,
``tanh(1)`` a number: :mod:`rnnsearch.cells.fold`), merges parameter-free nodes that compute
the same thing from the same operands, orders commuting operands, and renames internal
nodes deterministically. The hash is networkx's Weisfeiler-Lehman hash over op and slot
labels; on a hash hit, :func:`same_cell` confirms with an isomorphism check.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import networkx as nx

from rnnsearch.cells.fold import fold_constants
from rnnsearch.cells.graph import SCHEMA_VERSION, CellGraph
from rnnsearch.cells.ops import OPS


def node_label(graph: CellGraph, node: str) -> str:
    op = graph.op(node)
    if op in ("input", "output"):
        return f"{op}:{node}"  # reserved names are part of the meaning
    attrs = graph.full_attrs(node)
    return op + (json.dumps(attrs, sort_keys=True) if attrs else "")


def _slot_label(graph: CellGraph, target: str, slot: int) -> str:
    op = graph.op(target)
    return "arg" if OPS[op].commutative or OPS[op].max_arity == 1 else f"slot{slot}"


def labelled_digraph(graph: CellGraph) -> nx.DiGraph:
    """Each edge becomes a node labelled with its slot, so parallel edges and slots are
    plain node labels. Edges point from a node to its operands (what WL aggregates)."""
    d = nx.DiGraph()
    for n in graph.g.nodes:
        d.add_node(n, label=node_label(graph, n))
    for i, (u, v, slot) in enumerate(sorted(graph.g.edges(data="slot"), key=lambda e: (e[1], e[2], e[0]))):
        e = ("edge", i)
        d.add_node(e, label=_slot_label(graph, v, slot))
        d.add_edge(v, e)
        d.add_edge(e, u)
    return d


# networkx 3.5 changed WL hashes of directed graphs (and warns on every call); the
# project requires >= 3.5, so stored hashes stay valid across the versions it allows.
def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The hashes produced for directed graphs")
        return fn(*args, **kwargs)


def _iterations(d: nx.DiGraph) -> int:
    # Labels must travel from the inputs to the outputs: as many rounds as the longest path.
    return max(1, nx.dag_longest_path_length(d)) if d.number_of_nodes() > 1 else 1


def canonical_hash(graph: CellGraph) -> str:
    """A 32-hex-digit hash equal for isomorphic canonical graphs."""
    return hash_canonical(canonicalize(graph))


def hash_canonical(canon: CellGraph) -> str:
    """:func:`canonical_hash` of a graph that is already canonical."""
    d = labelled_digraph(canon)
    wl = _quiet(nx.weisfeiler_lehman_graph_hash, d, node_attr="label", iterations=_iterations(d))
    key = f"{SCHEMA_VERSION}|{','.join(canon.states)}|{wl}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def same_cell(a: CellGraph, b: CellGraph) -> bool:
    """Exact check that two graphs are the same cell (after canonicalisation)."""
    return isomorphic_canonical(canonicalize(a), canonicalize(b))


def isomorphic_canonical(ca: CellGraph, cb: CellGraph) -> bool:
    """:func:`same_cell` of two graphs that are already canonical."""
    if ca.states != cb.states or len(ca) != len(cb) or ca.g.number_of_edges() != cb.g.number_of_edges():
        return False
    return nx.is_isomorphic(
        labelled_digraph(ca),
        labelled_digraph(cb),
        node_match=lambda x, y: x["label"] == y["label"],
    )


def canonicalize(graph: CellGraph) -> CellGraph:
    """The canonical form of a validated copy of ``graph``. Raises
    :class:`~rnnsearch.cells.graph.CellGraphError` for a graph whose output folds to a
    number."""
    g = graph.copy().validate()
    simplify(g)
    return _renamed(g)


def simplify(g: CellGraph) -> bool:
    """Drop identities, merge equal parameter-free nodes and fold constants, in place and
    keeping node names (the canonical form renames after this). True if anything changed."""
    size = (len(g), g.g.number_of_edges())
    _drop_identities(g)
    _merge_duplicates(g)
    folded = False
    while fold_constants(g):  # a fold can make two nodes equal (x - x once merged), and back
        folded = True
        _merge_duplicates(g)
    return folded or size != (len(g), g.g.number_of_edges())


def _drop_identities(g: CellGraph) -> None:
    for n in [n for n in g.internal_nodes() if g.op(n) == "identity"]:
        (src,) = g.operands(n)
        for _, v, slot in list(g.g.out_edges(n, data="slot")):
            g.g.add_edge(src, v, slot=slot)
        g.g.remove_node(n)


def _merge_duplicates(g: CellGraph) -> None:
    """Parameter-free nodes with the same op, attributes and operands are one node."""
    seen: dict[tuple, str] = {}
    for n in g.internal_nodes():
        op = g.op(n)
        if OPS[op].learned:
            continue
        operands = g.operands(n)
        if OPS[op].commutative:
            operands = sorted(operands)
        key = (op, json.dumps(g.full_attrs(n), sort_keys=True), tuple(operands))
        keep = seen.setdefault(key, n)
        if keep != n:
            for _, v, slot in list(g.g.out_edges(n, data="slot")):
                g.g.add_edge(keep, v, slot=slot)
            g.g.remove_node(n)


def _structural_labels(g: CellGraph) -> dict[str, str]:
    """A label per node from what it computes (forward) and how it is used (backward):
    a Merkle pass, linear in the graph's size, that orders nodes independently of names."""
    fwd: dict[str, str] = {}
    order = list(nx.topological_sort(g.g))
    for n in order:
        args = [fwd[u] for u in g.operands(n)]
        if OPS[g.op(n)].commutative:
            args.sort()
        fwd[n] = _digest(node_label(g, n), *args)
    full: dict[str, str] = {}
    for n in reversed(order):
        uses = sorted(f"{full[v]}/{_slot_label(g, v, slot)}" for _, v, slot in g.g.out_edges(n, data="slot"))
        full[n] = _digest(fwd[n], *uses)
    return full


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def _renamed(g: CellGraph) -> CellGraph:
    labels = _structural_labels(g)
    # Order internal nodes by depth from the inputs, then by structural label, so that
    # the names n0, n1, ... follow the computation and do not depend on the old names.
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g.g):
        preds = list(g.g.predecessors(n))
        depth[n] = 1 + max((depth[p] for p in preds), default=-1)
    internal = sorted(g.internal_nodes(), key=lambda n: (depth[n], labels[n], node_label(g, n)))
    names = {n: f"n{i}" for i, n in enumerate(internal)}
    names.update({n: n for n in g.reserved})

    out = CellGraph(g.states)
    for n in internal:
        out.g.add_node(names[n], op=g.op(n), attrs=dict(g.attrs(n)))
    for v in list(internal) + list(g.outputs):
        operands = g.operands(v)
        if OPS[g.op(v)].commutative:
            operands = sorted(operands, key=lambda u: (labels[u], names[u]))
        for slot, u in enumerate(operands):
            out.g.add_edge(names[u], names[v], slot=slot)
    out._counter = len(internal)
    return out
