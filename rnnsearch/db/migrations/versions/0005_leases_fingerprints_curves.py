"""search leases, functional fingerprints, learning curves

Revision ID: 0005
Revises: 0004

A search's lease says which launch runs it (host, pid, a token it compares and swaps,
since when); a second launch is refused while the holder lives. An architecture's
fingerprint is its outputs on fixed inputs, and ``duplicate_of`` the architecture it
computes the same function as; a search counts such candidates in
``functional_duplicates``. An evaluation's curve is its [step, val_accuracy] pairs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("lease_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("lease_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("functional_duplicates", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("architectures") as batch:
        batch.add_column(sa.Column("fingerprint", sa.JSON, nullable=True))
        batch.add_column(sa.Column("duplicate_of", sa.Integer, nullable=True))
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("curve", sa.JSON, nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): these columns are in no index or
    # key, and copying a table that others reference would trip SQLite's foreign keys.
    with op.batch_alter_table("evaluations", recreate="never") as batch:
        batch.drop_column("curve")
    with op.batch_alter_table("architectures", recreate="never") as batch:
        batch.drop_column("duplicate_of")
        batch.drop_column("fingerprint")
    with op.batch_alter_table("searches", recreate="never") as batch:
        batch.drop_column("functional_duplicates")
        batch.drop_column("lease_since")
        batch.drop_column("lease_token")
        batch.drop_column("lease_pid")
        batch.drop_column("lease_host")
