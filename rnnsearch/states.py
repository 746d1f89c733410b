"""Where things stand: an evaluation's status, a candidate's stage, a search's state.

The one place these names are written. They are ``StrEnum``s: each member equals its
string, so the database stores plain text and rows written by older versions read back
unchanged. Light on purpose (no imports beyond the standard library): ``rnnsearch db
status``, the store and the workers all read it.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An evaluation's status. Pending and running are in flight; the rest are finished."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    DIVERGED = "diverged"  # a non-finite or exploding loss
    FAILED = "failed"  # an exception, with its traceback
    STOPPED = "stopped"  # trailed the GRU's learning curve and was stopped early, partial curve kept


IN_FLIGHT = (Status.PENDING, Status.RUNNING)
FINISHED = (Status.OK, Status.DIVERGED, Status.FAILED, Status.STOPPED)


class Stage(StrEnum):
    """Where an architecture is in a search (and the stage an evaluation was planned for)."""

    NEW = "new"  # stored, not yet judged
    SEED = "seed"
    MEMORIZE = "memorize"
    TASK1 = "task1"
    OTHER = "other_tasks"
    COMPLETE = "complete"
    FILTERED = "filtered_memorize"
    STOPPED = "stopped_task1"
    DEGENERATE = "degenerate"  # refused before training (rnnsearch.cells.degenerate)
    DUPLICATE = "duplicate"  # computes what an evaluated cell computes (functional dedup): not trained
    REFERENCE = "reference"  # a calibration's long runs
    REEVAL = "reeval"  # an evaluation's stage only: a member trained on new settings


IN_PROGRESS = (Stage.SEED, Stage.MEMORIZE, Stage.TASK1, Stage.OTHER, Stage.REFERENCE)

# The order a mutated candidate moves through, for summaries.
STAGE_ORDER = (
    Stage.DEGENERATE,
    Stage.DUPLICATE,
    Stage.MEMORIZE,
    Stage.FILTERED,
    Stage.TASK1,
    Stage.STOPPED,
    Stage.OTHER,
    Stage.COMPLETE,
)


def replicate_stage(r: int) -> str:
    """The stage of a calibration's evaluations of replicate ``r`` (its own draw of settings)."""
    return f"replicate:{r}"


class SearchState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"  # interrupted: a relaunch continues it
    FINISHED = "finished"  # its budget was spent


def stage_summary(by_stage: dict[str, int]) -> str:
    """``degenerate 3, memorize 1, ...`` in the order candidates move through."""
    known = [k for k in STAGE_ORDER if k in by_stage] + sorted(k for k in by_stage if k not in STAGE_ORDER)
    return ", ".join(f"{k} {by_stage[k]}" for k in known)
