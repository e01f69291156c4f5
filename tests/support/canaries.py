"""Canary environments for the hostile environment tests: a unique, recognisable
value in every variable of a process's environment, and a search for those values
(raw, base64 at every alignment, hex) in anything a job could have written.

Canaries are never registered as secrets, so redaction cannot hide a leak of one.
They are ``cnry`` + 32 hex digits, a shape no credential pattern of the redactor
matches. Variables a process needs to work get values that still carry a canary:
a path named after it (a copy of the CA bundle for ``SSL_CERT_FILE``), a proxy URL
on a host named after it with ``NO_PROXY`` covering loopback.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

# What a server, the runner or a local pipeline legitimately holds in its
# environment; the tests add these to every variable they inherit.
CREDENTIALS = [
    "RIVET_ADMIN_TOKEN", "RIVET_SECRET_KEY", "RIVET_REGISTRATION_TOKEN", "RIVET_RUNNER_TOKEN",
    "RIVET_DATABASE_URL", "RIVET_SERVER", "RIVET_RUNNER_CONFIG", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN",
    "NPM_TOKEN", "CI_JOB_TOKEN", "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DOCKER_AUTH_CONFIG",
    "GOOGLE_APPLICATION_CREDENTIALS", "KUBECONFIG", "SSH_AUTH_SOCK", "DATABASE_URL",
]  # fmt: skip
HOST = [
    "HOME", "USER", "LOGNAME", "SHELL", "PATH", "TMPDIR", "TERM", "LANG", "LC_ALL", "LC_CTYPE",
    "TZ", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "DBUS_SESSION_BUS_ADDRESS",
    "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE", "CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST",
    "STORAGE_DRIVER", "BUILDAH_ISOLATION", "PODMAN_USERNS", "NOTIFY_SOCKET", "LD_LIBRARY_PATH",
    "GODEBUG", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
    "https_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy", "CI", "PYTHONPATH", "RIVET_EXEC_ID",
]  # fmt: skip
# Names no job may give, but an environment may hold: each is a test of the rule.
ODD = [
    "odd-name", "odd.name", "with space", " LEADING", "1DIGIT", "ÜNICODE", "\u212aELVIN", "*",
    "FOO*", "-e", "--env", "NEW\nLINE", "TAB\tBED", "AWS_SECRET_ACCESS_KEY ", "é",
]  # fmt: skip
# Would turn into the job's own secrets under `rivet run` (by design), so never
# canaries: a secret is redacted, which would hide a leak.
NOT_CANARIES_PREFIX = "RIVET_SECRET_"


def new_canary() -> str:
    return f"cnry{uuid.uuid4().hex}"


def canary_environment(
    base: Mapping[str, str],
    tmp_path: Path,
    real: Mapping[str, str],
    extra: Iterable[str] = (),
) -> tuple[dict[str, str], dict[str, str]]:
    """``(environment, canaries)``: every variable of ``base``, of the lists above and
    of ``extra`` set to a canary (or a working value carrying one), then ``real`` on
    top. ``canaries`` maps each name to the canary its value carries. (``LD_PRELOAD``
    is only an ``extra``: the loader prints it in every error line of the process
    itself, which a test of that process's own output would mistake for a leak.)"""
    env: dict[str, str] = {}
    canaries: dict[str, str] = {}
    names = {*base, *CREDENTIALS, *HOST, *ODD, *extra}
    for name in sorted(names):
        if name in real or (name.startswith(NOT_CANARIES_PREFIX) and name != "RIVET_SECRET_KEY"):
            continue
        canary = new_canary()
        canaries[name] = canary
        env[name] = canary

    # Values the process cannot work without, still carrying their canary.
    def carry(name: str, make: Callable[[str], str]) -> None:
        if name in canaries:
            env[name] = make(canaries[name])

    # A key of the server's format (URL-safe base64 of 32 bytes): unique all the same.
    if "RIVET_SECRET_KEY" in canaries:
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env["RIVET_SECRET_KEY"] = canaries["RIVET_SECRET_KEY"] = key
    carry("RIVET_ADMIN_TOKEN", lambda c: f"rivet_admin_{c}")
    for name in ("HOME", "TMPDIR", "SSL_CERT_DIR"):
        carry(name, lambda c: str(_directory(tmp_path, c)))
    carry("SSL_CERT_FILE", lambda c: str(_ca_bundle(tmp_path, c, base)))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        carry(name, lambda c: f"http://{c}.invalid:9")
    for name in ("NO_PROXY", "no_proxy"):
        carry(name, lambda c: f"127.0.0.1,localhost,{c}")
    env.update(real)
    return env, canaries


def _directory(tmp_path: Path, canary: str) -> Path:
    path = tmp_path / canary
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ca_bundle(tmp_path: Path, canary: str, base: Mapping[str, str]) -> Path:
    import certifi

    source = base.get("SSL_CERT_FILE")
    path = tmp_path / f"{canary}.pem"
    shutil.copyfile(source if source and Path(source).is_file() else certifi.where(), path)
    return path


def forms(value: str) -> list[str]:
    """Text that shows ``value`` or its encodings: raw, hex (both cases), standard and
    URL-safe base64 at each of the three alignments (edges trimmed, where the
    neighbouring bytes change the encoding)."""
    data = value.encode()
    found = {value, data.hex(), data.hex().upper()}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + data).decode()
            found.add(encoded[4:-4])
    return sorted(found)


def leaks(texts: Iterable[str], canaries: Mapping[str, str]) -> dict[str, str]:
    """``{variable: where}`` for each canary found in any of ``texts``, also once their
    blanks are removed (``od`` hex, wrapped base64)."""
    texts = [t for text in texts for t in (text, re.sub(r"\s+", "", text))]
    found: dict[str, str] = {}
    for name, canary in canaries.items():
        for text in texts:
            hit = next((f for f in forms(canary) if f in text), None)
            if hit is not None:
                at = text.index(hit)
                found[name] = text[max(0, at - 120) : at + len(hit) + 40]
                break
    return found


def database_rows(path: Path) -> list[str]:
    """Every row of every table of an SQLite database, as text (raw, not via the API)."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows: list[str] = []
        for table in tables:
            rows += [repr(row) for row in db.execute(f'SELECT * FROM "{table}"')]
    return rows
