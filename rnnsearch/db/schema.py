"""Schema versions through Alembic: create fresh databases at head, refuse the rest clearly.

Alembic is imported only to migrate. Checking a database's version, which every command
does, reads Alembic's ``alembic_version`` table and the revision ids of the migration
files directly: importing Alembic would cost a read-only command a quarter of a second.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from rnnsearch.errors import UserError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps


class SchemaOutdated(UserError):
    pass


class SchemaTooNew(UserError):
    pass


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def revisions() -> dict[str, str | None]:
    """Each migration's revision id and the one it follows, read from the files."""
    out: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("revision", "down_revision"):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
        if "revision" in values:
            out[values["revision"]] = values.get("down_revision")
    return out


def head() -> str:
    revs = revisions()
    (tip,) = set(revs) - set(revs.values())  # one line of migrations: one revision nothing follows
    return tip


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure(engine: Engine, create: bool = True) -> None:
    """A fresh database is created at head; an older one is refused with the command to
    upgrade it; one from a newer rnnsearch is refused and left as it is."""
    rev = current(engine)
    if rev is None:
        tables = set(inspect(engine).get_table_names())
        if tables & {"searches", "architectures", "evaluations"}:
            raise UserError(
                "this database has rnnsearch tables but no schema version; it was not made by rnnsearch's migrations"
            )
        if not create:
            raise UserError("this database has no rnnsearch data yet: run `rnnsearch launch` first")
        upgrade(engine)
        return
    if rev not in revisions():
        raise SchemaTooNew(
            f"the database has schema {rev}, newer than this rnnsearch knows ({head()}); upgrade rnnsearch"
        )
    if rev != head():
        raise SchemaOutdated(
            f"the database has schema {rev}, older than {head()}: run `rnnsearch db upgrade` (with the same --db) first"
        )


def ensure_upgradable(engine: Engine) -> None:
    """Refuse to touch a database from a newer rnnsearch."""
    rev = current(engine)
    if rev is None:
        return
    if rev not in revisions():
        raise SchemaTooNew(
            f"the database has schema {rev}, newer than this rnnsearch knows ({head()}); upgrade rnnsearch"
        )
