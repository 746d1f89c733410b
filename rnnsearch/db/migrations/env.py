"""Alembic environment: run with the connection rnnsearch hands over (see db.schema)."""

from alembic import context

from rnnsearch.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - rnnsearch always passes a connection
    raise RuntimeError("run migrations through `rnnsearch db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
