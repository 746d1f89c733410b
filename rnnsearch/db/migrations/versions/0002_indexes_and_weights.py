"""leaderboard and status indexes; kept weights

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_evaluations_leaderboard", "evaluations", ["search_id", "architecture_id", "task", "status", "val_accuracy"]
    )
    op.create_index("ix_evaluations_status", "evaluations", ["search_id", "status"])
    op.create_table(
        "weights",
        sa.Column("evaluation_id", sa.Integer, sa.ForeignKey("evaluations.id"), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("weights")
    op.drop_index("ix_evaluations_status", "evaluations")
    op.drop_index("ix_evaluations_leaderboard", "evaluations")
