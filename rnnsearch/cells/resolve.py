"""Turn what a user names (a zoo name or a graph file) into a graph."""

from __future__ import annotations

from pathlib import Path

from rnnsearch.cells import zoo
from rnnsearch.cells.graph import CellGraph, CellGraphError
from rnnsearch.errors import UserError


def resolve_cell(spec: str) -> tuple[str, CellGraph]:
    """(display name, graph) for a zoo name like ``MUT1``, a path to a graph JSON file, or
    a NAS-Bench-NLP recipe ``nasbench-nlp:FILE.json#K`` (displayed ``NB<K>``)."""
    if spec.startswith("nasbench-nlp:"):
        from rnnsearch.cells.nasbench import RecipeError, graph_for

        try:
            return graph_for(spec)
        except RecipeError as e:
            raise UserError(str(e)) from None
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"graph file not found: {spec}")
        try:
            graph = CellGraph.load(str(path))
        except CellGraphError as e:
            raise UserError(f"invalid graph file {spec}: {e}") from None
        return path.stem, graph
    try:
        return spec, zoo.get(spec)
    except KeyError as e:
        raise UserError(str(e.args[0])) from None
