"""A PostgreSQL cluster of a test's own, for tests that stop and restart the server
(the shared test cluster on 54329 must never be stopped: others use it).

``own_cluster()`` initdb's a new cluster in a temporary directory under /tmp (pytest's
own are private to root), starts it on a free loopback port and yields a
:class:`Cluster` whose ``stop``/``start`` a test may call; it is stopped and removed
afterwards. PostgreSQL refuses to run as root, so as
root the binaries run as the ``postgres`` user (as scripts/setup.sh does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PG_BIN", "Cluster", "own_cluster"]

PG_BIN = Path(os.environ.get("RIVET_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(a) for a in argv]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(
        command, cwd="/tmp", capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class Cluster:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        done = _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, *args)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._ctl(
            "-l",
            str(self.data / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._ctl("-w", "-t", "60", "-m", "fast", "stop")


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A started cluster of this test's own (trust auth on 127.0.0.1, fsync off)."""
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        raise RuntimeError(f"{initdb} is missing: run scripts/setup.sh (PostgreSQL 15)")
    root = Path(tempfile.mkdtemp(prefix="rivet-pg-own-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    done = _as_postgres(
        initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8"
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    cluster = Cluster(data, _free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        _as_postgres(PG_BIN / "pg_ctl", "-D", data, "-w", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
