"""Functional dedup in a search (FEC, Real et al. 2020, AutoML-Zero): a candidate whose
outputs on fixed random inputs and weights equal those of a cell the search already has is
recorded as its duplicate and not trained. The fingerprint is stored with each
architecture, so a relaunch rebuilds the index without running a cell again."""

from __future__ import annotations

from rnnsearch.cells import CellGraph
from rnnsearch.cells.fingerprint import FunctionIndex, fingerprint
from rnnsearch.db import ArchitectureInfo, Store


class FunctionalDedup:
    """The search's cells by function. A cell is indexed under the fingerprint of its stored
    (canonical) graph, which its children are mutated from and so share the parameter layout
    of, and, while this launch runs, under the fingerprint of the graph as its mutation made
    it, which its siblings share (see :mod:`rnnsearch.cells.fingerprint` on layouts)."""

    def __init__(self) -> None:
        self.index = FunctionIndex()

    def remember(self, store: Store, arch: ArchitectureInfo, as_made=None) -> None:
        """Index a cell of the search; its canonical fingerprint is computed and stored once."""
        fp = arch.fingerprint
        if fp is None:
            fp = fingerprint(arch.graph())
            if fp is not None:
                store.set_fingerprint(arch.id, fp)
        self.index.add(arch.id, fp)
        if as_made is not None and as_made != fp:
            self.index.add(arch.id, as_made)

    def check(self, graph: CellGraph) -> tuple[tuple[float, ...] | None, int | None]:
        """The candidate's fingerprint as made, and the cell it duplicates (None: a new function)."""
        fp = fingerprint(graph)
        return fp, (self.index.find(fp) if fp is not None else None)
