"""A throwaway PostgreSQL server in a folder, on loopback: for tests, benchmarks and for
trying rnnsearch against PostgreSQL without setting one up.

    with LocalPostgres(tmpdir) as pg:
        url = pg.create_database("trial")
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def available() -> bool:
    return find_bin("initdb") is not None and find_bin("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """``root`` None: a new folder under the system temp dir, removed on ``stop``
    (as root, the server runs as the ``postgres`` user, which must reach the folder)."""

    def __init__(self, root: str | Path | None = None, port: int | None = None):
        self._owned = root is None
        self.root = Path(tempfile.mkdtemp(prefix="rnnsearch-pg-")) if root is None else Path(root)
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = port or _free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {(r.stderr or r.stdout).strip()[-500:]}")

    def start(self) -> str:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
            os.chmod(self.root, 0o755)
        if not self.data.exists():
            self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self._ctl("start")
        return self.url("postgres")

    def _ctl(self, action: str) -> None:
        pg_ctl = find_bin("pg_ctl")
        opts = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        if action == "stop":
            self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        else:
            self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", action)

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._ctl("stop")
            except RuntimeError:
                pass
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self._ctl("restart")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError("database names here are letters, digits and _")
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
