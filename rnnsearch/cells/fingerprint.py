"""Functional equivalence checking (FEC, as in AutoML-Zero, Real et al. 2020).

Before a candidate is trained it runs for a few steps on fixed random inputs and weights,
and its outputs are its *fingerprint*; a candidate whose fingerprint matches one already
evaluated (within a tolerance) computes the same thing and is recorded as a duplicate
instead of being trained. It catches what the canonical form
(:mod:`rnnsearch.cells.canonical`) leaves apart because the two graphs differ in
structure, not in function: ``relu(relu(v))`` and ``relu(v)``, ``relu(σ(v))`` and
``σ(v)``, ``max(v, v)`` and ``v``, ``v + v`` and ``2 * v``, ``a - (0 - b)`` and ``a + b``.

How a fingerprint is made (everything seeded; the global RNG is left as it was):

- the graph, as given, is compiled by the project's compiler, in float64, and its time
  loop is the generated Python step (no C loop, no torch.compile);
- its parameters get the cell's own initialisation (``reset_parameters(1, generator)``:
  the ``bias_init`` of a linear, the gain of an identity-initialised one, ``U(0, 1)``
  diagonals) and then a seeded uniform perturbation ``U(-1/sqrt(n), 1/sqrt(n))`` of every
  parameter. The initialisation keeps apart cells that start apart (the LSTM and LSTM-b,
  whose forget bias starts at 1); the perturbation keeps apart cells that agree only at
  that starting point (``Linear(1, v)``, a learned matrix that starts at the identity,
  is ``v`` at initialisation, but not once it has learned anything);
- the input is a fixed seeded sequence and the initial state a fixed seeded NON-zero one
  (so a path through any state counts);
- the fingerprint is ``h`` at every step, then every final state, flattened and rounded
  to 6 significant digits; ``None`` where any value is not finite or the graph is not
  valid (such a cell is never merged with anything).

What a hit means, and its limits:

- a hit says the two cells, given the same weights, gave the same outputs (to 1e-4) on
  random inputs and weights; it is evidence, not a proof. Different functions collide
  only if they agree on all of those values to 1e-4, which cells built from these ops do
  not do by chance; but cells that differ only where these inputs never go do collide
  (``max(v, -100)`` and ``v``): such cells train alike as well;
- the weights are drawn in the order of the cell's parameters (the compiler's layout,
  which follows the graph's topological order, ties broken by node name), so two cells
  that compute the same function with their parameters laid out differently (a linear's
  terms in another order, two matrices exchanged, or the same nodes under other names)
  get different weights and are not found. A miss costs one training run; it is never a
  wrong merge. Graphs that share their node names (a parent and its children, siblings:
  a mutation keeps the names of the nodes it does not touch) share their layout; the
  canonical form renames every node from the structure of the whole graph, so
  fingerprinting canonical forms finds fewer of these pairs (measured on rewrites of zoo
  cells: 40% against 100%);
- for the same reason a graph and its canonical form may have different fingerprints:
  fingerprint the graphs a search compares in the same form (cells with the same
  canonical hash are found by the hash anyway).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch

from rnnsearch.cells.graph import CellGraph, CellGraphError

RTOL = 1e-4
ATOL = 1e-6
DIGITS = 6  # significant digits kept
_PROBES = 8  # values, spread over the fingerprint, compared with every entry before whole rows


def fingerprint(
    graph: CellGraph, n: int = 8, steps: int = 6, batch: int = 3, seed: int = 0
) -> tuple[float, ...] | None:
    """The cell's outputs on fixed seeded inputs and weights (see the module docstring):
    ``h`` at each of ``steps`` steps, then each final state, all ``[batch, n]``, flattened
    and rounded to 6 significant digits; ``None`` when a value is not finite or the graph
    is not valid."""
    from rnnsearch.cells.compiler import compile_cell

    try:
        graph = graph.copy().validate()
    except CellGraphError:
        return None
    dtype = torch.float64
    data = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, n, generator=data, dtype=dtype, device="cpu")
    state = tuple(0.5 * torch.randn(batch, n, generator=data, dtype=dtype, device="cpu") for _ in graph.states)
    weights = torch.Generator().manual_seed(seed + 0x5EED)
    # the constructor initialises with the global RNG: give it a copy, restored after
    with torch.random.fork_rng(devices=[]), torch.no_grad(), _one_thread():
        layer = compile_cell(graph, n, name="Cell", compile="eager", device="cpu", dtype=dtype)
        cell = layer.cell
        cell.reset_parameters(1.0, weights)
        bound = 1.0 / math.sqrt(n)
        for p in cell.parameters():
            p.add_(torch.empty_like(p).uniform_(-bound, bound, generator=weights))
        outputs, final = layer(x, state)
    values = torch.cat([outputs.reshape(-1), *(s.reshape(-1) for s in final)]).numpy()
    if not np.isfinite(values).all():
        return None
    return tuple(_rounded(values))


@contextlib.contextmanager
def _one_thread():
    """One thread for ops this small (a second one only waits, and on a busy machine long);
    the caller's thread count is given back."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


def _rounded(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{DIGITS}g}") for v in values.tolist()]


def matches(a: Sequence[float], b: Sequence[float], rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Same length and ``|a - b| <= atol + rtol * max(|a|, |b|)`` elementwise."""
    if len(a) != len(b):
        return False
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(_close(u.reshape(1, -1), v, rtol, atol)[0])


class _Bucket:
    """The fingerprints of one length: rows of a growing array, keys beside them."""

    def __init__(self, width: int):
        self.rows = np.empty((16, width), dtype=np.float64)
        self.keys: list[int] = []
        # spread out: the first steps' outputs alone agree more often than the whole
        self.probes = np.unique(np.linspace(0, max(width - 1, 0), min(width, _PROBES)).round().astype(np.intp))

    def add(self, key: int, fp: np.ndarray) -> None:
        k = len(self.keys)
        if k == len(self.rows):
            grown = np.empty((2 * k, self.rows.shape[1]), dtype=np.float64)
            grown[:k] = self.rows
            self.rows = grown
        self.rows[k] = fp
        self.keys.append(key)

    def find(self, fp: np.ndarray, rtol: float, atol: float) -> int | None:
        rows = self.rows[: len(self.keys)]
        # a few values against every row, then whole rows for the few that pass
        near = np.flatnonzero(_close(rows[:, self.probes], fp[self.probes], rtol, atol))
        if len(near) == 0:
            return None
        hit = np.flatnonzero(_close(rows[near], fp, rtol, atol))
        return self.keys[int(near[hit[0]])] if len(hit) else None


def _close(rows: np.ndarray, fp: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Per row: every value within ``atol + rtol * max(|a|, |b|)`` of ``fp``'s."""
    return np.all(np.abs(rows - fp) <= atol + rtol * np.maximum(np.abs(rows), np.abs(fp)), axis=1)


class FunctionIndex:
    """The fingerprints of evaluated cells, looked up within a tolerance.

    ``add(key, fp)`` records a cell (``fp`` None: nothing is recorded, a non-finite cell is
    never merged); ``find(fp)`` is the first key added whose fingerprint has the same length
    and matches elementwise (``|a - b| <= atol + rtol * max(|a|, |b|)``), or None.
    Fingerprints are bucketed by length; in a bucket the first values are compared with
    every entry at once, then whole rows for the few that pass.
    """

    def __init__(self, rtol: float = RTOL, atol: float = ATOL):
        self.rtol, self.atol = rtol, atol
        self._buckets: dict[int, _Bucket] = {}
        self._count = 0

    def add(self, key: int, fp: Sequence[float] | None) -> None:
        if fp is None:
            return
        row = np.asarray(fp, dtype=np.float64)
        if row.ndim != 1 or not np.isfinite(row).all():
            return
        bucket = self._buckets.get(len(row))
        if bucket is None:
            bucket = self._buckets[len(row)] = _Bucket(len(row))
        bucket.add(key, row)
        self._count += 1

    def find(self, fp: Sequence[float] | None) -> int | None:
        if fp is None:
            return None
        row = np.asarray(fp, dtype=np.float64)
        bucket = self._buckets.get(len(row))
        if bucket is None or row.ndim != 1 or not np.isfinite(row).all():
            return None
        return bucket.find(row, self.rtol, self.atol)

    def __len__(self) -> int:
        return self._count


__all__ = ["ATOL", "RTOL", "FunctionIndex", "fingerprint", "matches"]
