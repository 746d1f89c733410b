"""The cell language: graph, ops, validation, canonical form, zoo, compiler, exporter.

Imports only torch, networkx and numpy (DESIGN.md). Every name is loaded on first use, so
that a command that only reads the database (the leaderboard) pays for neither networkx
nor torch, and reading a graph or its formula (``show``) never pays for torch.
"""

from importlib import import_module

# Bound now: the module rnnsearch.cells.formula would otherwise shadow the function.
from rnnsearch.cells.formula import formula, formula_lines

_LAZY = {
    "CellGraph": "rnnsearch.cells.graph",
    "CellGraphError": "rnnsearch.cells.graph",
    "CellLayout": "rnnsearch.cells.plan",
    "canonical_hash": "rnnsearch.cells.canonical",
    "canonicalize": "rnnsearch.cells.canonical",
    "compile_cell": "rnnsearch.cells.compiler",
    "export_file": "rnnsearch.cells.export",
    "export_source": "rnnsearch.cells.export",
    "parameter_count": "rnnsearch.cells.params",
    "same_cell": "rnnsearch.cells.canonical",
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
