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


def downgrade(engine, revision: str) -> None:
    """Back to the schema rnnsearch wrote at ``revision`` (Alembic's downgrades)."""
    from alembic import command

    with engine.begin() as conn:
        cfg = schema._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


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
    downgrade(engine, "0003")
    with engine.begin() as conn:  # as rnnsearch wrote them before revision 0004
        conn.execute(text("UPDATE architectures SET formula = 'n5 = σ(W[h,x] + b); h_next = n5', name = NULL"))
    schema.upgrade(engine)
    engine.dispose()
    with Store(db_url) as store:
        tanh, lstm = store.get_architecture(seed.id), store.get_architecture(found.id)
    assert tanh.formula == formula(zoo.get("Tanh")) and tanh.display_name == "Tanh"
    assert lstm.formula == formula(zoo.get("LSTM-b")) and lstm.display_name == "LSTM-b"


def test_upgrade_from_0004_keeps_rows_and_adds_leases_fingerprints_curves(db_url):
    from rnnsearch.cells import zoo
    from rnnsearch.db import NewEvaluation
    from rnnsearch.tasks.api import EvalResult

    with Store(db_url) as store:
        search = store.create_search("old", {"preset": "smoke"}, 3)
        store.count_duplicate(search.id)
        arch, _ = store.add_architecture(zoo.get("GRU"), "zoo:GRU")
        (ev,) = store.create_evaluations(search.id, [NewEvaluation(arch.id, "xml", {"lr": 0.1}, 0, {})])
        store.record_result(EvalResult(ev.request_id, "ok", val_accuracy=0.5, steps=10))
    engine = make_engine(db_url)
    downgrade(engine, "0004")  # the schema rnnsearch wrote before revision 0005
    assert schema.current(engine) == "0004"
    assert "lease_token" not in {c["name"] for c in inspect(engine).get_columns("searches")}
    schema.upgrade(engine)
    engine.dispose()
    with Store(db_url) as store:
        s = store.get_search("old")
        assert (s.config, s.seed, s.duplicates, s.functional_duplicates) == ({"preset": "smoke"}, 3, 1, 0)
        assert (s.lease_token, s.lease_host, s.lease_pid, s.lease_since) == (None, None, None, None)
        a = store.get_architecture(arch.id)
        assert (a.hash, a.fingerprint, a.duplicate_of) == (arch.hash, None, None)
        (e,) = store.evaluations(search.id)
        assert (e.status, e.val_accuracy, e.curve) == ("ok", 0.5, ())
        assert store.take_lease(s.id, "t", "h", 1, None)


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
