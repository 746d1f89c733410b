"""Engines from URLs: SQLite (WAL, foreign keys, busy timeout) and PostgreSQL."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rnnsearch.errors import UserError

DEFAULT_URL = "sqlite:///rnnsearch.db"
BUSY_TIMEOUT_S = 60


def default_url() -> str:
    return os.environ.get("RNNSEARCH_DB") or DEFAULT_URL


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` for the psycopg 3 driver; check the form."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        u = make_url(url)
    except ArgumentError:
        raise UserError(
            f"malformed database URL {url!r} (e.g. sqlite:///rnnsearch.db or postgresql://user@host/db)"
        ) from None
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"unsupported database {u.get_backend_name()!r}: use sqlite:///FILE or postgresql://...")
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        folder = os.path.dirname(os.path.abspath(u.database))
        if not os.path.isdir(folder):
            raise UserError(f"folder {folder} for the SQLite database does not exist")
    return u.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # every connection: WAL, foreign keys, waiting writers
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
