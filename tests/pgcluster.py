"""A throwaway PostgreSQL cluster from the system's binaries, for tests and benchmarks.

`initdb` + `pg_ctl` in a temporary directory, listening on 127.0.0.1 at a free port,
trust authentication, durability off (a test cluster is thrown away). As root, the
server runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import unused_port

__all__ = ["HOW_TO_ENABLE", "Cluster", "find_bin_dir"]

HOW_TO_ENABLE = (
    "PostgreSQL tests need the server binaries: `apt-get install -y postgresql`"
    " (Debian/Ubuntu; initdb and pg_ctl under /usr/lib/postgresql/*/bin), or set"
    " CUEAPI_LITE_PG_BIN to a directory holding initdb and pg_ctl"
)


def find_bin_dir() -> Path | None:
    configured = os.environ.get("CUEAPI_LITE_PG_BIN")
    candidates = [configured] if configured else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    for candidate in candidates:
        if (
            candidate
            and (Path(candidate) / "initdb").exists()
            and (Path(candidate) / "pg_ctl").exists()
        ):
            return Path(candidate)
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class Cluster:
    """`root`: a new directory for the cluster; by default one of its own under the
    system's temporary directory (the `postgres` user must be able to reach it)."""

    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="cueapi-lite-pg-"))
        self.bin_dir = bin_dir
        self.data = self.root / "data"
        self.port = unused_port()
        self.user = "cueapi"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
            "--no-sync", "--locale=C",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{clause}')  # type: ignore[arg-type]
        return self.url(name)


class Databases:
    """Empty, migrated databases on one cluster, one test after another: the same
    database, emptied (TRUNCATE is much cheaper than creating a database per test)."""

    NAME = "cueapi_test"

    def __init__(self, cluster: Cluster) -> None:
        import psycopg

        from cueapi_lite.store.postgres import PostgresStore

        self.cluster = cluster
        self.url = cluster.create_database(self.NAME)
        store = PostgresStore(self.url)
        store.open()  # applies the migrations once
        store.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename != 'migrations'"
            ).fetchall()
            sequences = conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            ).fetchall()
        # DELETE, not TRUNCATE: on tables this small it is ten times faster.
        self._empty = "; ".join(
            [f"DELETE FROM {row[0]}" for row in tables]  # noqa: S608 - catalog names
            + [f"SELECT setval('{row[0]}', 1, false)" for row in sequences]
        ).encode()
        self._fresh = True

    def new(self) -> str:
        """The URL of the test database, with every table emptied."""
        import psycopg

        if not self._fresh:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(self._empty)
        self._fresh = False
        return self.url
