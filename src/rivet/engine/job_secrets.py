"""The secrets one job may use: lookup with clear refusals, and the job's private
directory of secret files.

A job receives the secrets whose grant covers its pipeline version (from the server's
claim, with the reason for each granted one it does not get) or, under ``rivet run``,
every secret given locally. All of them are registered with the
job's :class:`~rivet.engine.redaction.Redactor` before any pipeline code runs, so a
value is masked even when it reaches a log without ``secret.get`` (a process that
got it as an environment variable and printed it).

Secret files live in a per-job directory *outside* the workspace (mode 0700, files
0400), on ``/dev/shm`` when available so they never touch a disk, bind-mounted
read-only into every container of the job at :data:`SECRETS_MOUNT`, and removed
when the job ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from rivet.engine.backends.base import SECRETS_MOUNT
from rivet.engine.redaction import Redactor
from rivet.lua.sandbox import LuaCallError

__all__ = ["SECRETS_MOUNT", "SECRETS_PREFIX", "JobSecrets", "default_secrets_root"]

SECRETS_PREFIX = "rivet-secrets-"

_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


def default_secrets_root() -> Path:
    """``/dev/shm`` (memory-backed) when writable, else the system temp directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


class JobSecrets:
    """Thread-safe: ``process.parallel`` may write files from several threads."""

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        *,
        local: bool = False,
        root: Path | None = None,
        withheld: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> None:
        self._values = dict(values or {})
        self._withheld = dict(withheld or {})
        self.redactor = redactor if redactor is not None else Redactor()
        self.redactor.add_all(self._values.values())
        self.local = local
        self.pipeline: str | None = None
        self._root = root
        # In the directory's name, so the runner that made it finds it after a crash.
        self._prefix = f"{SECRETS_PREFIX}{owner}-" if owner else SECRETS_PREFIX
        self._dir: Path | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._files: dict[str, str] = {}

    # --- lookup -----------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._values)

    def withheld_names(self) -> list[str]:
        """Secrets granted to the pipeline that this job's version does not receive."""
        return sorted(self._withheld)

    def get(self, name: str, caller: str) -> str:
        """The value of ``name``, registered for redaction; a Lua error naming
        ``caller`` (``secret.get``, ``process.run: secrets.TOKEN``) otherwise."""
        value = self._values.get(name)
        if value is None:
            raise LuaCallError(f"{caller}: {self.missing(name)}")
        self.redactor.add(value)
        return value

    def missing(self, name: str) -> str:
        if self.local:
            return (
                f"secret '{name}' is not available (rivet run: set RIVET_SECRET_{name} "
                "or give it in --secret-file)"
            )
        reason = self._withheld.get(name)
        if reason is not None:
            return (
                f"secret '{name}' is withheld from this job: {reason}; launch a version the "
                "admin pushed since the grant (rivet pipeline create with the admin token)"
            )
        pipeline = self.pipeline or "?"
        return (
            f"secret '{name}' is not granted to pipeline '{pipeline}' (or does not exist); "
            f"an admin can grant it with: rivet secret grant {name} {pipeline}"
        )

    # --- files ------------------------------------------------------------------------

    @property
    def directory(self) -> Path | None:
        """The job's secrets directory, created on first use when the job has any
        secrets (containers mount it when they start, so it must exist by then)."""
        if not self._values:
            return None
        with self._lock:
            if self._closed:
                return None
            if self._dir is None:
                root = self._root or default_secrets_root()
                # mkdtemp: a fresh, unpredictable name, created with mode 0700.
                self._dir = Path(tempfile.mkdtemp(prefix=self._prefix, dir=root))
            return self._dir

    def write_file(self, file_name: str, secret_name: str, caller: str) -> str:
        """Write ``secret_name`` into the job's directory as ``file_name`` (mode 0400);
        its path inside containers."""
        if not _FILE_NAME.fullmatch(file_name) or file_name in (".", ".."):
            raise LuaCallError(
                f"{caller}: invalid secret file name {file_name!r}: a plain file name "
                "(letters, digits, '.', '_', '-'; no '/')"
            )
        value = self.get(secret_name, caller)
        directory = self.directory
        if directory is None:
            raise LuaCallError(f"{caller}: the job has ended")
        with self._lock:
            if self._files.get(file_name) != value:
                # Write beside, then rename: a process reading the file never sees it
                # half-written, and the final name never exists with a wider mode.
                temporary = directory / f".{file_name}.{os.getpid()}.{threading.get_ident()}"
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
                # The directory's owner (the root of the job's user namespace once its
                # first container started) must be able to read it; see workspaces.
                owner = directory.stat()
                if (owner.st_uid, owner.st_gid) != (os.geteuid(), os.getegid()):
                    os.fchown(fd, owner.st_uid, owner.st_gid)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(value)
                os.replace(temporary, directory / file_name)
                self._files[file_name] = value
        return f"{SECRETS_MOUNT}/{file_name}"

    def cleanup(self) -> None:
        """Remove the directory and every file in it (idempotent)."""
        with self._lock:
            directory, self._dir = self._dir, None
            self._closed = True
            self._files.clear()
        if directory is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(directory)
