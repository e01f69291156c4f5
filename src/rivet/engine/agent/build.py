"""The exec agent binary: compiled from the shipped C source, once per source.

``rivet-agent.c`` ships in the package. The first backend that needs the agent
compiles it with the host's C compiler, statically (the binary is bind-mounted into
arbitrary images, which may have no libc or loader), into a private cache directory,
under a name made of the source's hash: an unchanged source is never compiled again
and a changed one (a new Rivet) gets a new binary. ``scripts/setup.sh`` installs the
compiler (Debian's ``gcc`` and ``libc6-dev``, whose ``libc.a`` makes ``-static``
work). A host without one runs commands with ``podman exec``: :func:`locate` says
why in :attr:`AgentBinary.problem`, and the backend puts that in the job's log.

The cache is ``~/.cache/rivet`` of the account running Rivet (from the password
database, not ``$HOME``), created 0700. It is not in ``RIVET_HOME``, whose files are
all private to the account: the binary must be executable by the container's user,
which for a private user namespace is an unrelated host uid, so it is mode 0755 (it
holds nothing secret; the directory above it keeps everybody else out). A binary is
used only when it is a regular file owned by this account, writable by nobody else,
and a static ELF; a build is verified the same way and by running it once, then
renamed into place atomically (concurrent builds each write their own file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rivet.child_env import child_env, resolve_program
from rivet.engine.agent.protocol import VERSION
from rivet.engine.backends.catatonit import is_static_elf

__all__ = ["COMPILE_FLAGS", "SOURCE_NAME", "AgentBinary", "cache_dir", "locate", "source_bytes"]

SOURCE_NAME = "rivet-agent.c"
COMPILE_FLAGS = ("-static", "-O2", "-s", "-std=gnu11")
_COMPILE_TIMEOUT = 300.0
_lock = threading.Lock()


@dataclass(frozen=True)
class AgentBinary:
    """The agent's path, or None and the reason there is none."""

    path: Path | None
    problem: str | None = None


def source_bytes() -> bytes:
    return resources.files("rivet.engine.agent").joinpath(SOURCE_NAME).read_bytes()


def cache_dir() -> Path:
    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir or "/"
    except KeyError:  # a uid without an account: the temporary directory, checked below
        home = tempfile.gettempdir()
    return Path(home) / ".cache" / "rivet"


def locate(cache: Path | None = None, compiler: str = "cc") -> AgentBinary:
    """The agent binary for this source, compiled into ``cache`` first if needed."""
    source = source_bytes()
    digest = hashlib.sha256(source + "\0".join(COMPILE_FLAGS).encode()).hexdigest()[:16]
    directory = cache or cache_dir()
    target = directory / f"rivet-agent-{digest}"
    with _lock:
        if _trusted(target) is None:
            return AgentBinary(target)
        problem = _private_dir(directory)
        if problem is not None:
            return AgentBinary(None, problem)
        problem = _compile(source, directory, target, compiler)
        if problem is not None:
            return AgentBinary(None, problem)
        return AgentBinary(target)


def _trusted(path: Path) -> str | None:
    """None when ``path`` may be mounted into containers, else why not."""
    try:
        info = path.lstat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is not owned by this account or is writable by others"
    if not is_static_elf(path):
        return f"{path} is not a statically linked executable"
    return None


def _private_dir(directory: Path) -> str | None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        return f"cannot create the agent cache {directory}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return f"the agent cache {directory} is not a directory owned by this account"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"the agent cache {directory} is writable by others"
    return None


def _compile(source: bytes, directory: Path, target: Path, compiler: str) -> str | None:
    cc = resolve_program(compiler)
    fd, scratch = tempfile.mkstemp(dir=directory, prefix=".build-", suffix=".c")
    output = scratch[:-2]
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(source)
        try:
            proc = subprocess.run(
                [cc, *COMPILE_FLAGS, "-o", output, scratch],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=_COMPILE_TIMEOUT,
                check=False,
                cwd=directory,
                env=child_env(where="the C compiler"),
            )
        except FileNotFoundError:
            return f"no C compiler ({compiler}) on this runner; scripts/setup.sh installs gcc"
        except subprocess.TimeoutExpired:
            return f"compiling the exec agent took longer than {_COMPILE_TIMEOUT:g} s"
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            why = lines[-1].strip() if lines else f"exit code {proc.returncode}"
            return f"compiling the exec agent with {cc} failed: {why}"
        os.chmod(output, 0o755)  # the container's user is "others" to this file
        problem = _trusted(Path(output)) or _runs(output)
        if problem is not None:
            return problem
        os.replace(output, target)
        return None
    finally:
        for leftover in (scratch, output):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _runs(path: str) -> str | None:
    try:
        proc = subprocess.run(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
            env=child_env(where="the exec agent"),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the freshly built exec agent does not run: {exc}"
    if proc.returncode != 0 or proc.stdout.strip() != f"rivet-agent protocol {VERSION}":
        return f"the freshly built exec agent answered {proc.stdout.strip()!r} to --version"
    return None


def main() -> int:
    """``python -m rivet.engine.agent.build``: build (or find) the agent, print its path
    or why there is none (exit 1). scripts/setup.sh runs it to fail early."""
    found = locate()
    if found.path is None:
        print(f"exec agent: {found.problem}")
        return 1
    print(found.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
