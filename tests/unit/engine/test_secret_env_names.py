"""Secret environment variables must never need podman's command line: every name the
Podman backend would pass there is refused by ``process.run`` first."""

from __future__ import annotations

import pytest

from rivet.domain.env_names import HOST_TOOL_ENV
from rivet.engine.modules.process_module.options import RESERVED_SECRET_ENV

PODMAN_OWN = [
    "PATH", "HOME", "USER", "SHELL", "TMPDIR", "TZ", "LANG", "LC_ALL", "LD_PRELOAD",
    "LD_LIBRARY_PATH", "XDG_RUNTIME_DIR", "CONTAINERS_CONF", "_CONTAINERS_USERNS_CONFIGURED",
    "CONTAINER_HOST", "STORAGE_DRIVER", "REGISTRY_AUTH_FILE", "PODMAN_USERNS", "BUILDAH_ISOLATION",
    "CONMON_LOG", "DOCKER_HOST", "DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET", "SSL_CERT_FILE",
    "GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GOTRACEBACK", "https_proxy", "HTTP_PROXY",
    "no_proxy", "ALL_PROXY", "FTP_PROXY", "LISTEN_FDS", "GCONV_PATH", "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX", "LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES", "GNUPGHOME", "TZDIR",
]  # fmt: skip


@pytest.mark.parametrize("name", PODMAN_OWN)
def test_every_podman_own_variable_is_reserved_for_secrets(name: str) -> None:
    assert HOST_TOOL_ENV.fullmatch(name), f"{name} is not podman's own: update the list"
    assert RESERVED_SECRET_ENV.fullmatch(name)


@pytest.mark.parametrize("name", ["RIVET_JOB_ID", "RIVET_SECRETS_DIR", "RIVET_EXEC_ID", "CI"])
def test_rivets_own_variables_are_reserved_for_secrets(name: str) -> None:
    assert RESERVED_SECRET_ENV.fullmatch(name)


@pytest.mark.parametrize("name", ["TOKEN", "GITHUB_TOKEN", "NPM_AUTH", "AWS_SECRET", "PATHS"])
def test_ordinary_names_are_allowed(name: str) -> None:
    assert not RESERVED_SECRET_ENV.fullmatch(name)
    assert not HOST_TOOL_ENV.fullmatch(name)
