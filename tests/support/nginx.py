"""A real nginx in front of orchestrators, configured with the sample of
docs/reliability.md ("HA deployment"), so the documented configuration is the tested one.

:func:`rivet_conf` takes the sample (the ``nginx`` block after the marker comment),
puts the given upstream addresses in place of the sample's ``server`` lines (keeping
their parameters) and a loopback address in place of its ``listen`` line; anything
else in the sample reaches nginx as written. :class:`Nginx` wraps it in a top-level
configuration of the test's own (pid, logs and temporary files in a directory of the
test, ``daemon off``) and runs Debian's ``/usr/sbin/nginx`` (installed by
scripts/setup.sh) on a free loopback port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from live_rivet import free_port, port_open, wait_for

__all__ = ["NGINX", "SAMPLE_DOC", "Nginx", "rivet_conf", "sample"]

NGINX = Path(os.environ.get("RIVET_NGINX", "/usr/sbin/nginx"))
SAMPLE_DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
MARKER = "<!-- nginx sample: tests/support/nginx.py reads the block below -->"

_UPSTREAM = re.compile(r"upstream rivet \{\n(?P<body>.*?)\n\}", re.DOTALL)
_SERVER_LINE = re.compile(r"^(?P<indent>\s*)server (?P<address>\S+)(?P<rest>[^\n]*;)$", re.M)
_LISTEN = re.compile(r"^(?P<indent>\s*)listen [^;\n]+;$", re.M)


def sample() -> str:
    """The sample nginx configuration of the docs, as written there."""
    text = SAMPLE_DOC.read_text(encoding="utf-8")
    if MARKER not in text:
        raise AssertionError(f"{SAMPLE_DOC}: the marker {MARKER!r} is missing")
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```nginx\n(?P<conf>.*?)\n```", after, re.DOTALL)
    if match is None:
        raise AssertionError(f"{SAMPLE_DOC}: no ```nginx block right after the marker")
    return match.group("conf")


def rivet_conf(upstreams: list[str], listen: str) -> str:
    """The sample with ``upstreams`` (``host:port``, with the parameters of the sample's
    first ``server`` line) in place of its ``server`` lines and ``listen`` in place."""
    conf = sample()
    upstream = _UPSTREAM.search(conf)
    if upstream is None:
        raise AssertionError(f"{SAMPLE_DOC}: the sample has no 'upstream rivet {{ … }}'")
    body = upstream.group("body")
    servers = list(_SERVER_LINE.finditer(body))
    if not servers:
        raise AssertionError(f"{SAMPLE_DOC}: the upstream has no 'server' line")
    first = servers[0]
    ours = "\n".join(f"{first['indent']}server {a}{first['rest']}" for a in upstreams)
    body = body[: first.start()] + ours + body[servers[-1].end() :]
    conf = conf[: upstream.start("body")] + body + conf[upstream.end("body") :]
    conf, listens = _LISTEN.subn(lambda m: f"{m['indent']}listen {listen};", conf)
    if listens != 1:
        raise AssertionError(f"{SAMPLE_DOC}: expected one 'listen' line, found {listens}")
    return conf


class Nginx:
    """nginx with :func:`rivet_conf` on a free loopback port; ``url`` is its address."""

    def __init__(self, upstreams: list[str]) -> None:
        if not NGINX.exists():
            raise RuntimeError(f"{NGINX} is missing: run scripts/setup.sh (Debian's nginx)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="rivet-nginx-"))
        # As root, nginx's workers run as "nobody" and must reach the temp directories.
        self.dir.chmod(0o755)
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(self._top_level(rivet_conf(upstreams, f"127.0.0.1:{self.port}")))
        self.proc: subprocess.Popen[bytes] | None = None

    def _top_level(self, http: str) -> str:
        d = self.dir
        indented = "\n".join(f"    {line}" if line else "" for line in http.splitlines())
        return f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{indented}
}}
"""

    def _nginx(self, *args: str) -> list[str]:
        return [str(NGINX), "-p", str(self.dir), "-e", str(self.dir / "error.log"), *args]

    def check(self) -> None:
        """``nginx -t``: the configuration is valid; AssertionError with nginx's words."""
        checked = subprocess.run(
            self._nginx("-t", "-c", str(self.conf)),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if checked.returncode != 0:
            raise AssertionError(f"nginx -t refused {self.conf}: {checked.stderr}")

    def start(self) -> Nginx:
        self.check()
        self.proc = subprocess.Popen(
            self._nginx("-c", str(self.conf)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.error_log()[-2000:]}")
            return port_open(self.port)

        wait_for(listening, 30, f"nginx to listen on port {self.port}")
        return self

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
