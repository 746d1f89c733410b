"""formula notation: every stored formula in the notation of `rnnsearch show --legend`

Revision ID: 0004
Revises: 0003

The formula column is what the leaderboard prints. Formulas written before this revision
named shared values by canonical node (``n5 = ...``) and ordered operands as stored; they
are written again from the stored graph, so that a database prints one notation.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from rnnsearch.cells import CellGraph, formula

    table = sa.table("architectures", sa.column("id", sa.Integer), sa.column("graph_json"), sa.column("formula"))
    conn = op.get_bind()
    for arch_id, graph_json in conn.execute(sa.select(table.c.id, table.c.graph_json)).all():
        text = formula(CellGraph.from_json(graph_json), canonical=True)
        conn.execute(table.update().where(table.c.id == arch_id).values(formula=text))


def downgrade() -> None:
    pass  # the old text is presentation only: the new one reads as well under 0003
