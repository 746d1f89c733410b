"""Shared fixtures: a private PostgreSQL server for the session, database URLs per test."""

from __future__ import annotations

import itertools
import os
import warnings

import pytest

from rnnsearch.db import localpg

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    if not localpg.available():
        msg = "PostgreSQL server binaries not found: the PostgreSQL half of the store tests is SKIPPED"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI must run it: .ci/run installs postgresql)")
        warnings.warn(msg, stacklevel=1)
        pytest.skip(msg)
    server = localpg.LocalPostgres()
    try:
        server.start()
    except RuntimeError as e:
        if os.environ.get("CI"):
            pytest.fail(f"cannot start PostgreSQL: {e}")
        pytest.skip(f"cannot start PostgreSQL here, SKIPPING its half: {e}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rnnsearch.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{os.getpid()}_{next(_counter)}")


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session: 2 CPUs, loopback only, no dashboard."""
    import ray

    from rnnsearch.workers import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()
