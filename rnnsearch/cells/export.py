"""Export a cell as one standalone Python file that imports only torch."""

from __future__ import annotations

from pathlib import Path

from rnnsearch.cells.codegen import class_prefix, generate
from rnnsearch.cells.dropin import dropin_class, dropin_name, header
from rnnsearch.cells.graph import CellGraph


def export_source(graph: CellGraph, name: str = "Generated", provenance: str = "") -> str:
    """The file's text: the same generated source the compiler runs, with a header, and a
    drop-in for ``torch.nn.GRU`` named ``class_prefix(name)`` (``<prefix>RNN`` where that
    name is taken: see :func:`rnnsearch.cells.dropin.dropin_name`).

    ``provenance`` (e.g. the search's id, hash and scores) goes into the docstrings,
    escaped; nothing else from outside enters the file.
    """
    body, _ = generate(graph, name, doc=provenance)
    P = class_prefix(name)
    dropin = dropin_name(P, body)
    return header(P, dropin, graph.states) + body + "\n\n" + dropin_class(P, dropin, graph.states)


def export_file(graph: CellGraph, path: str | Path, name: str = "Generated", provenance: str = "") -> Path:
    path = Path(path)
    path.write_text(export_source(graph, name, provenance), encoding="utf-8")
    return path
