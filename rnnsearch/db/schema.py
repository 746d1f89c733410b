"""Schema versions through Alembic: create fresh databases at head, refuse the rest clearly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from rnnsearch.errors import UserError

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutdated(UserError):
    pass


class SchemaTooNew(UserError):
    pass


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
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
    script = ScriptDirectory.from_config(_config())
    known = {s.revision for s in script.walk_revisions()}
    if rev not in known:
        raise SchemaTooNew(
            f"the database has schema {rev}, newer than this rnnsearch knows ({head()}); upgrade rnnsearch"
        )
    if rev != head():
        raise SchemaOutdated(f"the database has schema {rev}, older than {head()}: run `rnnsearch db upgrade` first")


def ensure_upgradable(engine: Engine) -> None:
    """Refuse to touch a database from a newer rnnsearch."""
    rev = current(engine)
    if rev is None:
        return
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if rev not in known:
        raise SchemaTooNew(
            f"the database has schema {rev}, newer than this rnnsearch knows ({head()}); upgrade rnnsearch"
        )
