"""The leaderboard as a terminal table that fits the terminal's width.

Columns are kept in order of what a reader needs to rank cells: rank, id, name and
fitness always; then each task's accuracy relative to the GRU (what fitness is the
minimum of), the stage, each task's accuracy, evaluations and parameters, as long as the
formula keeps at least :data:`MIN_FORMULA` characters. The formula takes the rest of the
line, cut with an ellipsis (``rnnsearch show ID`` prints it whole). ``wide`` shows every
column and the whole formula, however long the lines.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass

from rnnsearch.analysis.frames import Board

MIN_FORMULA = 24
SHORT_TASK = {"arithmetic": "arith", "memorize": "memo"}


@dataclass(frozen=True)
class Column:
    key: str  # the board's column
    header: str
    digits: int | None = None  # a float column's decimals; None: text or integer
    priority: int = 0  # 0: always shown; larger: dropped first when the line is too long


def columns_for(board: Board) -> list[Column]:
    """Every column the table can show, in display order (none that is empty in every row)."""
    tasks = [c for c in board.columns if f"{c}_rel" in board.columns]
    cols = [Column("rank", "rank"), Column("id", "id"), Column("name", "name")]
    for i, t in enumerate(tasks):
        short = SHORT_TASK.get(t, t)
        first = t == board.ranked_by  # the task the rows are ranked by is shown before any other
        cols.append(Column(t, f"{short}\nacc", 4, priority=2 if first else 30 + i))
        cols.append(Column(f"{t}_rel", f"{short}\n÷GRU", 2, priority=1 if first else 10 + i))
    cols += [
        Column("fitness", "fitness", 3),
        Column("evaluations", "evals", priority=40),
        Column("parameters", "params\n@128", priority=0 if board.pareto else 50),
        Column("stage", "stage", priority=20),
        Column("formula", "formula"),
    ]
    return [c for c in cols if c.priority == 0 or any(r.get(c.key) is not None for r in board.rows)]


def cell_text(col: Column, value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if col.digits is not None:
        return f"{value:.{col.digits}f}"
    if col.key == "parameters":
        return f"{value:,}"
    return str(value)


def _width(col: Column, rows: tuple[dict, ...]) -> int:
    header = max(len(line) for line in col.header.split("\n"))
    return max([header] + [len(cell_text(col, r.get(col.key))) for r in rows])


def choose_columns(board: Board, width: int) -> list[Column]:
    """The columns that fit ``width`` with room for the formula, in display order."""
    cols = columns_for(board)
    widths = _widths(cols, board.rows)
    kept = [c for c in cols if c.priority == 0]
    for extra in sorted((c for c in cols if c.priority), key=lambda c: c.priority):
        trial = [c for c in cols if c in kept or c is extra]
        if _fixed_width(trial, widths) + MIN_FORMULA <= width:
            kept = trial
    return kept


def _widths(cols: list[Column], rows: tuple[dict, ...]) -> dict[str, int]:
    return {c.key: _width(c, rows) for c in cols}


def _fixed_width(cols: list[Column], widths: dict[str, int]) -> int:
    """Characters taken by every column but the formula, with one space between columns."""
    fixed = [c for c in cols if c.key != "formula"]
    return sum(widths[c.key] for c in fixed) + len(fixed)


def render(board: Board, width: int, wide: bool = False) -> list[str]:
    """The table's lines, then a footer on what was left out."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cols = columns_for(board) if wide else choose_columns(board, width)
    widths = _widths(cols, board.rows)
    longest = widths["formula"]
    fixed = _fixed_width(cols, widths)
    # A wide table gets a console as wide as its longest line, so that it cuts nothing.
    width = max(width, fixed + longest) if wide else width
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    for c in cols:
        is_formula = c.key == "formula"
        table.add_column(
            Text(c.header),
            justify="left" if c.key in ("name", "stage") or is_formula else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=max(1, min(longest, width - fixed)) if is_formula else widths[c.key],
        )
    for r in board.rows:
        table.add_row(*(Text(cell_text(c, r.get(c.key))) for c in cols))
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, legacy_windows=False)
    console.print(table, crop=True)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    notes = []
    if board.total > len(board.rows):
        notes.append(f"{board.total - len(board.rows)} more; --top to see them")
    left_out = [c.header.replace("\n", " ") for c in columns_for(board) if c not in cols]
    if left_out:
        notes.append(f"not shown at this width: {', '.join(left_out)} (--wide shows every column)")
    room = width - fixed
    if not wide and longest > room:
        notes.append("a formula cut short (…) is whole in `rnnsearch show ID`")
    notes.append("notation: `rnnsearch show --legend`")
    return lines + [part for note in notes for part in textwrap.wrap(note, width)]
