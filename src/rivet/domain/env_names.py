"""The one rule for environment variable names, and the names the host's tools act on.

Every name that becomes an environment variable — ``process.run{ env = …, secrets =
… }``, secret names (``RIVET_SECRET_<NAME>``, ``--secret-file``, the secrets API) —
is checked here, with the same words wherever it came from.

The rule is the portable POSIX one, ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII only). Anything
else is not merely odd but dangerous on its way to a container: podman reads a bare
``--env NAME*`` as a glob copying every matching variable of *its own* environment,
``NAME=…`` splits into another name and a value, NUL truncates, a leading ``-`` reads
as a flag, and non-ASCII or blank names mean different things to different tools.
"""

from __future__ import annotations

import re

from rivet.errors import RivetError

__all__ = [
    "ENV_NAME_PATTERN",
    "HOST_TOOL_ENV",
    "EnvNameError",
    "check_env_name",
    "is_env_name",
    "shown_name",
]

ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_NAME = re.compile(ENV_NAME_PATTERN)

# Variables that podman and what it runs on the host (conmon, runc, netavark, the Go
# runtime, the C library) act on when they are in *their own* environment. A value
# for one of them may only reach a container on podman's command line, never through
# podman's environment, or the job would steer the container runtime on the host.
HOST_TOOL_ENV = re.compile(
    r"PATH|HOME|USER|SHELL|TMPDIR|TZ|TZDIR|LANG|LANGUAGE|LC_.*|LD_.*|XDG_.*"
    r"|_?CONTAINERS?_.*|STORAGE_.*|REGISTRY_.*|PODMAN_.*|BUILDAH_.*|CONMON_.*|DOCKER_.*"
    r"|DBUS_.*|NOTIFY_SOCKET|LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES|SSL_CERT_.*|GNUPGHOME"
    r"|GODEBUG|GOGC|GOMAXPROCS|GOMEMLIMIT|GOTRACEBACK|GCONV_PATH|NLSPATH|GLIBC_TUNABLES"
    r"|MALLOC_.*|LOCALDOMAIN|RES_OPTIONS|HOSTALIASES|(?i:https?_proxy|ftp_proxy|no_proxy|all_proxy)"
)


class EnvNameError(RivetError):
    """A name that cannot be an environment variable; the message says where it came from."""


def is_env_name(name: object) -> bool:
    return isinstance(name, str) and _ENV_NAME.fullmatch(name) is not None


def shown_name(name: object) -> str:
    """``name`` quoted for an error message: escapes control characters, bounded."""
    text = repr(name) if isinstance(name, str) else f"{name!r} (a {type(name).__name__})"
    return text if len(text) <= 64 else text[:60] + "…" + text[-1]


def check_env_name(name: object, where: str) -> str:
    """``name`` unchanged when it follows the rule; otherwise :class:`EnvNameError`
    naming it and ``where`` it came from (``process.run: env``, ``RIVET_SECRET_…``)."""
    if not isinstance(name, str) or _ENV_NAME.fullmatch(name) is None:
        raise EnvNameError(
            f"{where}: invalid environment variable name {shown_name(name)}: use letters, "
            "digits and '_', not starting with a digit ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return name
