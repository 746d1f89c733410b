"""search progress: decisions taken and duplicate candidates skipped

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("steps", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("duplicates")
        batch.drop_column("steps")
