import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from rnnsearch.db import Store, schema
from rnnsearch.db.engine import make_engine
from rnnsearch.db.models import Base
from rnnsearch.db.schema import SchemaOutdated, SchemaTooNew
from rnnsearch.errors import UserError


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnsearch.cli", *args], capture_output=True, text=True)


def test_migrations_build_exactly_the_models(db_url):
    Store(db_url).close()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_version_check_reads_what_alembic_reads(db_url):
    """The check every command makes skips importing Alembic; it must agree with it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(schema._config())
    assert schema.revisions() == {s.revision: s.down_revision for s in script.walk_revisions()}
    assert schema.head() == script.get_current_head()
    engine = make_engine(db_url)
    assert schema.current(engine) is None
    for revision in schema.revisions():
        schema.upgrade(engine, revision)
        with engine.connect() as conn:
            assert schema.current(engine) == MigrationContext.configure(conn).get_current_revision() == revision
    engine.dispose()


def test_upgrade_writes_formulas_in_todays_notation_and_names_rediscovered_zoo_cells(db_url):
    from rnnsearch.cells import formula, zoo

    with Store(db_url) as store:
        seed, _ = store.add_architecture(zoo.get("Tanh"), "zoo:Tanh")
        found, _ = store.add_architecture(zoo.get("LSTM-b"), "mutation", parent_id=seed.id)
    engine = make_engine(db_url)
    with engine.begin() as conn:  # as rnnsearch wrote them before revision 0004
        conn.execute(text("UPDATE architectures SET formula = 'n5 = σ(W[h,x] + b); h_next = n5', name = NULL"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    schema.upgrade(engine)
    engine.dispose()
    with Store(db_url) as store:
        tanh, lstm = store.get_architecture(seed.id), store.get_architecture(found.id)
    assert tanh.formula == formula(zoo.get("Tanh")) and tanh.display_name == "Tanh"
    assert lstm.formula == formula(zoo.get("LSTM-b")) and lstm.display_name == "LSTM-b"


def test_old_database_asks_for_upgrade_and_the_command_upgrades_it(db_url):
    engine = make_engine(db_url)
    schema.upgrade(engine, "0001")
    engine.dispose()
    with pytest.raises(SchemaOutdated, match="rnnsearch db upgrade"):
        Store(db_url)
    r = cli("db", "status", "--db", db_url)  # status still answers, and says what to do
    assert r.returncode == 0 and "0001, older than" in r.stdout and "rnnsearch db upgrade" in r.stdout
    r = cli("db", "upgrade", "--db", db_url)
    assert r.returncode == 0, r.stderr
    assert f"0001 -> {schema.head()}" in r.stdout
    with Store(db_url) as s:
        assert schema.current(s.engine) == schema.head()


def test_newer_database_is_refused_and_left_untouched(db_url):
    Store(db_url).close()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    tables_before = sorted(inspect(engine).get_table_names())
    with pytest.raises(SchemaTooNew):
        Store(db_url)
    r = cli("db", "upgrade", "--db", db_url)
    assert r.returncode != 0 and "newer" in r.stderr and "Traceback" not in r.stderr
    assert schema.current(engine) == "ffff9999"
    assert sorted(inspect(engine).get_table_names()) == tables_before
    engine.dispose()


@pytest.mark.parametrize(
    "url, message",
    [
        ("nonsense", "malformed database URL"),
        ("mysql://u@h/db", "unsupported database"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open database"),
    ],
)
def test_bad_urls_are_one_clear_line(url, message):
    with pytest.raises(UserError, match=message):
        Store(url, reconnect_s=0)
    r = cli("db", "status", "--db", url)
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_environment_variable_picks_the_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("RNNSEARCH_DB", url)
    with Store() as s:
        assert s.url == url
    r = cli("db", "status")
    assert r.returncode == 0 and "env.db" in r.stdout
