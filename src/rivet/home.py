"""``RIVET_HOME``: where Rivet keeps its state, every path in it named once, kept private.

Layout and modes::

    $RIVET_HOME/                 0700  (default ~/.rivet)
      rivet.db  (-wal -shm -journal)  0600  the embedded SQLite database
      admin-token                0600  written by a server without RIVET_ADMIN_TOKEN
      secret-key                 0600  written by a server without RIVET_SECRET_KEY
      session-key                0600  written by a server without RIVET_JWT_KEY (signs logins)
      credentials                0600  the CLI's login sessions, one per server (rivet login)
      config                     0600  settings of every Rivet process (rivet.settings); written
                                       by you, only read by Rivet (it may hold the admin token)
      runner.toml                0600  a runner's settings and its token (saved at registration)
      logs/                      0700  ``rivet up``: server.log, runner.log (0600)
      workspaces/                0700  job workspaces (runner and ``rivet run`` default)
      artifacts/                 0700  the server's filesystem artifact store (docs/artifacts.md)
      local-artifacts/           0700  ``rivet run``'s artifacts, one directory per job

The database, tokens and keys are secrets or hold them, so nothing in the home may be
readable by other users of the machine. The rules, applied by every process that
writes here (server, runner, ``rivet up``, ``rivet run``):

- Directories Rivet creates are created 0700, files 0600, with the mode given to
  ``mkdir``/``open`` itself (never a wider file chmod-ed afterwards). SQLite gives its
  ``-wal``, ``-shm`` and ``-journal`` files the mode of the database file, so the
  database file is created 0600 before SQLite opens it.
- An existing home, ``logs/``, ``workspaces/`` or Rivet file that group or others can
  access (made by an older Rivet, or by hand) is tightened (group and other bits
  removed) when it belongs to the user running Rivet and is not a shared sticky
  directory such as ``/tmp``; otherwise Rivet logs a warning naming the ``chmod`` to
  run. Either way a warning names the path. The secret key file is the exception: a
  readable one is refused (see :mod:`rivet.orchestrator.keyring`), since it may have leaked.
- The server and ``rivet up`` also run with umask 0o077 (:func:`private_umask`), so a
  file nobody thought of is private too. The runner does not: its umask is inherited
  by the files pipelines write into their workspaces, which containers running as a
  non-root user must still be able to read; ``workspaces/`` (0700) keeps other users
  of the host out of them instead.

Kept free of heavy imports: the CLI imports it for every command.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "PRIVATE_UMASK",
    "RivetHome",
    "default_home",
    "make_private_dir",
    "open_private_append",
    "prepare_sqlite_file",
    "private_umask",
    "tighten",
]

log = logging.getLogger("rivet.home")

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
_GROUP_OTHER = stat.S_IRWXG | stat.S_IRWXO
# Files SQLite keeps beside a database, with the database file's mode.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def default_home() -> Path:
    """``~/.rivet``: the home when neither ``--home`` nor ``RIVET_HOME`` says another
    (that choice is the ``home`` setting's, :mod:`rivet.settings`)."""
    return Path("~/.rivet").expanduser()


@dataclass(frozen=True)
class RivetHome:
    """The home directory and the paths Rivet uses in it (nothing is created here)."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "rivet.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret-key"

    @property
    def session_key(self) -> Path:
        return self.root / "session-key"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def runner_config(self) -> Path:
        return self.root / "runner.toml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def artifacts(self) -> Path:
        """The server's filesystem artifact store (content-addressed blobs)."""
        return self.root / "artifacts"

    @property
    def local_artifacts(self) -> Path:
        """``rivet run``'s artifacts: ``<job>/<name>/<paths>`` and a manifest each."""
        return self.root / "local-artifacts"

    def ensure(self) -> Path:
        """Create the home 0700 (or tighten it); its path."""
        return make_private_dir(self.root)

    def log_file(self, name: str) -> Path:
        """``logs/<name>.log``, the directory created 0700 (or tightened)."""
        make_private_dir(self.root)
        return make_private_dir(self.logs) / f"{name}.log"


def private_umask() -> int:
    """Set the process umask to 0o077 (files 0600, directories 0700); the previous one."""
    return os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path, *, tighten_existing: bool = True) -> Path:
    """Create ``path`` and its missing parents with mode 0700; ``path``.

    An existing ``path`` is tightened (see :func:`tighten`) unless ``tighten_existing``
    is false (a directory that is not Rivet's, such as the one of a database file
    placed by hand). Existing parents are never changed."""
    path = path.expanduser()
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made by a concurrent process; tightened below if it is `path`
        # mkdir's mode passes through the umask, which could have removed owner bits.
        os.chmod(directory, DIR_MODE)
    if tighten_existing:
        tighten(path)
    return path


def tighten(path: Path) -> None:
    """Remove group and other permissions from ``path`` when it has any.

    Done only when ``path`` belongs to this user and is not a sticky directory (a
    shared one like ``/tmp``, which must stay open); otherwise a warning says what to
    run. Missing paths are ignored."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _GROUP_OTHER:
        return
    shared = stat.S_ISDIR(info.st_mode) and mode & stat.S_ISVTX
    if info.st_uid != os.geteuid() or shared:
        log.warning(
            "%s is accessible by group or others (mode %04o) and Rivet leaves it as it is "
            "(%s); make it private with `chmod go-rwx %s`",
            path,
            mode,
            "a shared directory" if shared else "it belongs to another user",
            path,
        )
        return
    private = mode & ~_GROUP_OTHER
    os.chmod(path, private)
    log.warning(
        "%s was accessible by group or others (mode %04o); changed it to %04o",
        path,
        mode,
        private,
    )


def create_private_file(path: Path, text: str) -> bool:
    """Write ``text`` to a new file ``path``, created 0600 (its directory 0700); False,
    writing nothing, when it exists. ``O_EXCL`` decides, so when two processes start
    together on one home (two servers), one writes and both then read the same file."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def read_private_file(path: Path, what: str) -> str:
    """The text of ``path``, refused (:class:`~rivet.errors.ConfigError` naming the file,
    its mode and the ``chmod`` to run) when group or others may access it, like ssh
    refuses a readable private key: whoever could read ``what`` may have copied it.
    ``FileNotFoundError`` when it does not exist. The mode is checked on the opened
    file, so a swap between check and read changes nothing."""
    from rivet.errors import ConfigError  # on use: this module stays import-light

    with path.open("r", encoding="utf-8") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & _GROUP_OTHER:
            raise ConfigError(
                f"{path}: {what} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        return handle.read()


def open_private_append(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600 (an existing file is
    tightened); for log files that may hold what a job printed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    tighten(path)
    return fd


def prepare_sqlite_file(database: Path) -> None:
    """Before SQLite opens ``database``: create its directory (0700) and the file
    itself 0600 when missing, and tighten an existing file and its sidecars.

    SQLite creates ``-wal``, ``-shm`` and ``-journal`` with the mode of the database
    file, so this makes all of them private whatever the process umask is."""
    make_private_dir(database.parent, tighten_existing=False)
    fd = os.open(database, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_SIDECARS)):
        tighten(path)
