"""formula notation and zoo names: stored formulas in the notation of `rnnsearch show --legend`

Revision ID: 0004
Revises: 0003

The formula column is what the leaderboard prints. Formulas written before this revision
named shared values by canonical node (``n5 = ...``) and ordered operands as stored; they
are written again from the stored graph, so that a database prints one notation. A mutant
that is a zoo cell is now named when stored; older ones get their zoo name here. A graph
this rnnsearch cannot read keeps its old text.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from rnnsearch.cells import CellGraph, CellGraphError, formula, zoo

    table = sa.table(
        "architectures",
        sa.column("id", sa.Integer),
        sa.column("graph_json"),
        sa.column("formula"),
        sa.column("name"),
        sa.column("origin"),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(table.c.id, table.c.graph_json, table.c.name, table.c.origin)).all()
    for arch_id, graph_json, name, origin in rows:
        try:
            graph = CellGraph.from_json(graph_json)
            values = {"formula": formula(graph, canonical=True)}
        except (CellGraphError, ValueError, KeyError):
            continue
        if name is None and origin == "mutation":
            values["name"] = zoo.lookup_name(graph)
        conn.execute(table.update().where(table.c.id == arch_id).values(**values))


def downgrade() -> None:
    pass  # the old text is presentation only: the new one reads as well under 0003
