"""The stages an architecture goes through in a search: their names, in one place.

Light on purpose: ``rnnsearch db status`` reads them without importing the controller.
"""

from __future__ import annotations

SEED = "seed"
MEMORIZE = "memorize"
TASK1 = "task1"
OTHER = "other_tasks"
COMPLETE = "complete"
FILTERED = "filtered_memorize"
STOPPED = "stopped_task1"
DEGENERATE = "degenerate"  # refused before training (rnnsearch.cells.degenerate)
REFERENCE = "reference"  # a calibration's long runs
IN_PROGRESS = (SEED, MEMORIZE, TASK1, OTHER, REFERENCE)
REEVAL = "reeval"

# The order a mutated candidate moves through, for summaries.
STAGE_ORDER = (DEGENERATE, MEMORIZE, FILTERED, TASK1, STOPPED, OTHER, COMPLETE)


def stage_summary(by_stage: dict[str, int]) -> str:
    """``degenerate 3, memorize 1, ...`` in the order candidates move through."""
    known = [k for k in STAGE_ORDER if k in by_stage] + sorted(k for k in by_stage if k not in STAGE_ORDER)
    return ", ".join(f"{k} {by_stage[k]}" for k in known)
