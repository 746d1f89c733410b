"""The cell language: graph, ops, validation, canonical form, zoo, compiler, exporter.

Imports only torch, networkx and numpy (DESIGN.md).
"""

from rnnsearch.cells.canonical import canonical_hash, canonicalize, same_cell
from rnnsearch.cells.codegen import CellLayout
from rnnsearch.cells.compiler import compile_cell
from rnnsearch.cells.export import export_file, export_source
from rnnsearch.cells.formula import formula, formula_lines
from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.cells.params import parameter_count

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
