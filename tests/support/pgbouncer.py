"""A real pgbouncer in transaction mode in front of a PostgreSQL server, for tests.

``RIVET_TEST_THROUGH_PGBOUNCER=1`` makes the orchestrator API tests' PostgreSQL variant
reach its database through one (tests/integration/orchestrator/conftest.py); scripts/dev.sh
test runs those modules once that way. :func:`pgbouncer_in_front` starts Debian's
``/usr/sbin/pgbouncer`` (installed by scripts/setup.sh) on a free loopback port with a
configuration of its own in a temporary directory: ``pool_mode = transaction``, every
database of the target server (``* =``), trust authentication like the test cluster.
pgbouncer refuses to run as root, so as root it runs as the ``postgres`` user (as the
test clusters do).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from live_rivet import free_port, port_open, wait_for
from sqlalchemy.engine import make_url

__all__ = ["PGBOUNCER", "THROUGH_PGBOUNCER_ENV", "PgBouncer", "pgbouncer_in_front", "through"]

PGBOUNCER = Path(os.environ.get("RIVET_PGBOUNCER", "/usr/sbin/pgbouncer"))
THROUGH_PGBOUNCER_ENV = "RIVET_TEST_THROUGH_PGBOUNCER"


def through() -> bool:
    """Whether this test run sends the API tests' PostgreSQL traffic through pgbouncer."""
    return os.environ.get(THROUGH_PGBOUNCER_ENV) == "1"


class PgBouncer:
    """A started pgbouncer; :meth:`url_for` turns a direct URL into one through it."""

    def __init__(self, port: int, directory: Path, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.dir = directory
        self.proc = proc

    def url_for(self, direct_url: str) -> str:
        """``direct_url`` (same user and database) with pgbouncer's address."""
        url = make_url(direct_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(directory: Path, port: int, host: str, target_port: int, user: str) -> str:
    return f"""[databases]
* = host={host} port={target_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = {directory}/users.txt
admin_users = {user}
max_client_conn = 500
default_pool_size = 20
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


@contextmanager
def pgbouncer_in_front(target_url: str) -> Iterator[PgBouncer]:
    """pgbouncer (transaction mode) before the server of ``target_url``; stopped after."""
    if not PGBOUNCER.exists():
        raise RuntimeError(f"{PGBOUNCER} is missing: run scripts/setup.sh (Debian's pgbouncer)")
    target = make_url(target_url)
    user = target.username or "postgres"
    directory = Path(tempfile.mkdtemp(prefix="rivet-pgbouncer-"))
    port = free_port()
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    conf = directory / "pgbouncer.ini"
    conf.write_text(_config(directory, port, target.host or "127.0.0.1", target.port or 5432, user))
    argv = [str(PGBOUNCER), str(conf)]
    if os.geteuid() == 0:
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, "postgres", "postgres")
        argv = ["runuser", "-u", "postgres", "--", *argv]
    proc = subprocess.Popen(
        argv,
        cwd="/tmp",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    bouncer = PgBouncer(port, directory, proc)
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {bouncer.log()[-2000:]}")
            return port_open(port)

        wait_for(listening, 30, f"pgbouncer to listen on port {port}")
        yield bouncer
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: pgbouncer's immediate shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
