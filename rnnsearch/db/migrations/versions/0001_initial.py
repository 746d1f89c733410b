"""searches, architectures, evaluations

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "architectures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("graph_json", sa.Text, nullable=False),
        sa.Column("formula", sa.Text, nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("architectures.id"), nullable=True),
        sa.Column("mutation_ops", sa.JSON, nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("states", sa.Integer, nullable=False),
        sa.Column("params_per_unit2", sa.Integer, nullable=False),
        sa.Column("params_per_unit", sa.Integer, nullable=False),
        sa.Column("first_search_id", sa.Integer, sa.ForeignKey("searches.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("architecture_id", sa.Integer, sa.ForeignKey("architectures.id"), nullable=False),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("searches.id"), nullable=True),
        sa.Column("task", sa.String(40), nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("hparams", sa.JSON, nullable=False),
        sa.Column("hparams_key", sa.String(400), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("budget", sa.JSON, nullable=False),
        sa.Column("task_options", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("val_accuracy", sa.Float, nullable=True),
        sa.Column("test_accuracy", sa.Float, nullable=True),
        sa.Column("val_loss", sa.Float, nullable=True),
        sa.Column("val_perplexity", sa.Float, nullable=True),
        sa.Column("test_perplexity", sa.Float, nullable=True),
        sa.Column("steps", sa.Integer, nullable=True),
        sa.Column("tokens_per_s", sa.Float, nullable=True),
        sa.Column("wall_s", sa.Float, nullable=True),
        sa.Column("hidden_size", sa.Integer, nullable=True),
        sa.Column("param_count", sa.Integer, nullable=True),
        sa.Column("device", sa.String(60), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("extras", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "search_id", "architecture_id", "task", "hparams_key", "seed", name="uq_evaluation_identity"
        ),
    )


def downgrade() -> None:
    op.drop_table("evaluations")
    op.drop_table("architectures")
    op.drop_table("searches")
