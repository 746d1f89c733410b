"""Export a discovered cell with the search's provenance, and its trained weights."""

from __future__ import annotations

import io
from pathlib import Path

from rnnsearch.analysis.frames import leaderboard
from rnnsearch.cells.codegen import class_prefix
from rnnsearch.cells.export import export_file
from rnnsearch.db import ArchitectureInfo, Store
from rnnsearch.errors import UserError
from rnnsearch.states import Status


def get_architecture(store: Store, arch_id: int) -> ArchitectureInfo:
    arch = store.get_architecture(arch_id)
    if arch is None:
        raise UserError(f"no architecture with id {arch_id} in {store.safe_url}")
    return arch


def provenance(store: Store, arch: ArchitectureInfo) -> str:
    named = "" if arch.display_name.startswith("#") else f" ({arch.display_name})"
    lines = [f"rnnsearch architecture #{arch.id}{named}, canonical hash {arch.hash}, origin {arch.origin}."]
    try:
        board = leaderboard(store)
    except UserError:
        board = None
    if board is not None and arch.id in set(board["id"]):
        row = board[board["id"] == arch.id].iloc[0]
        tasks = board.attrs["tasks"]
        fit = row["fitness"]
        lines.append(
            f"Fitness {fit:.4f} (min over tasks of best accuracy / GRU's best)."
            if fit == fit and fit is not None
            else "Fitness: not complete."
        )
        for t in tasks:
            acc, rel = row.get(t), row.get(f"{t}_rel")
            if acc is not None and acc == acc:
                lines.append(
                    f"  {t}: best validation accuracy {acc:.4f}"
                    + (f" ({rel:.3f} of the GRU's)" if rel == rel and rel is not None else "")
                )
    chain = store.lineage(arch.id)
    if len(chain) > 1:
        lines.append("Lineage: " + " <- ".join(f"#{a.id}" for a in chain))
    return "\n".join(lines)


def export_architecture(store: Store, arch_id: int, path: str | Path, weights: bool = False) -> list[Path]:
    arch = get_architecture(store, arch_id)
    name = arch.display_name
    name = name if class_prefix(name) != "Generated" else f"Arch{arch.id}"
    name = f"Arch{arch.id}" if name.startswith("#") else name
    written = [export_file(arch.graph(), path, name=name, provenance=provenance(store, arch))]
    if weights:
        written.append(_export_weights(store, arch, Path(path)))
    return written


def _export_weights(store: Store, arch: ArchitectureInfo, path: Path) -> Path:
    import torch

    kept = [
        e for e in store.evaluations(architecture_id=arch.id) if e.status == Status.OK and e.val_accuracy is not None
    ]
    kept.sort(key=lambda e: -e.val_accuracy)
    for ev in kept:
        blob = store.weights(ev.id)
        if blob is None:
            continue
        data = torch.load(io.BytesIO(blob), weights_only=True)
        data.update(evaluation=ev.id, val_accuracy=ev.val_accuracy, hparams=ev.hparams)
        out = path.with_suffix(".pt")
        torch.save(data, out)
        return out
    raise UserError(f"no trained weights were kept for architecture #{arch.id} (launch the search with --keep-weights)")
