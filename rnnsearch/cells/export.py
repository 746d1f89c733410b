"""Export a cell as one standalone Python file that imports only torch."""

from __future__ import annotations

from pathlib import Path

from rnnsearch.cells.codegen import class_prefix, generate
from rnnsearch.cells.graph import CellGraph


def export_source(graph: CellGraph, name: str = "Generated", provenance: str = "") -> str:
    """The file's text: the same generated source the compiler runs, with a header.

    ``provenance`` (e.g. the search's id, hash and scores) goes into the docstrings,
    escaped; nothing else from outside enters the file.
    """
    body, _ = generate(graph, name, doc=provenance)
    P = class_prefix(name)
    header = (
        f'"""{P}: a recurrent cell exported by rnnsearch (needs only torch).\n'
        "\n"
        f"    layer = {P}Layer(hidden_size)            # forward(x_seq [T, B, n], state) -> (outputs, state)\n"
        f"    cell = {P}Cell(hidden_size)              # forward(x [B, n], state) -> (h, state)\n"
        f"    layer.load_state_dict(torch.load(...))   # weights saved from rnnsearch's compiled module\n"
        '"""\n\n'
    )
    return header + body


def export_file(graph: CellGraph, path: str | Path, name: str = "Generated", provenance: str = "") -> Path:
    path = Path(path)
    path.write_text(export_source(graph, name, provenance), encoding="utf-8")
    return path
