"""The cell language: graph, ops, validation, canonical form, zoo, compiler, exporter.

Imports only torch, networkx and numpy (DESIGN.md). The compiler and the exporter are
loaded on first use, so that reading a graph, its hash or its formula (the leaderboard,
``show``) never pays for importing torch.
"""

from importlib import import_module

from rnnsearch.cells.canonical import canonical_hash, canonicalize, same_cell
from rnnsearch.cells.formula import formula, formula_lines
from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.cells.params import parameter_count

_LAZY = {
    "CellLayout": "rnnsearch.cells.codegen",
    "compile_cell": "rnnsearch.cells.compiler",
    "export_file": "rnnsearch.cells.export",
    "export_source": "rnnsearch.cells.export",
}

__all__ = [
    "CellGraph",
    "CellGraphError",
    "CellLayout",
    "canonical_hash",
    "canonicalize",
    "compile_cell",
    "export_file",
    "export_source",
    "formula",
    "formula_lines",
    "parameter_count",
    "same_cell",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rnnsearch.cells' has no attribute {name!r}")
