"""``RunnerSettings``: one typed settings object for a runner process, built once.

Each value comes from the first of: the command-line flag, its environment variable,
the runner config file (:mod:`rivet.runner.config_file`), the default.

=====================  ===========================  ===================================
flag                   environment                  default
=====================  ===========================  ===================================
``--server``           ``RIVET_SERVER``             ``server`` in ``$RIVET_HOME/config``,
                                                    else ``http://127.0.0.1:8420``
``--token``            ``RIVET_RUNNER_TOKEN``       saved by registration
``--registration-token`` ``RIVET_REGISTRATION_TOKEN`` —
``--name``             ``RIVET_RUNNER_NAME``        the host name
``--tag k=v`` (repeat) ``RIVET_RUNNER_TAGS`` (k=v,…) none (sent at registration only)
``--concurrency``      ``RIVET_RUNNER_CONCURRENCY`` 1
``--workspace-root``   ``RIVET_WORKSPACE_ROOT``     ``$RIVET_HOME/workspaces``
``--default-image``    ``RIVET_DEFAULT_IMAGE``      ``alpine:latest``
``--config``           ``RIVET_RUNNER_CONFIG``      ``$RIVET_HOME/runner.toml``
``--policy``           ``RIVET_POLICY``             none: the built-in policy defaults
=====================  ===========================  ===================================

The policy file (``policy = "…"`` in the config file, relative to that file) is read
once at start-up; a bad one stops the runner with one line naming the file and key
(see docs/runner-policy.md).

A token saved in the file is used only with the server it was issued by: pointing a
runner at another server needs that server's registration token.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rivet.defaults import DEFAULT_IMAGE, DEFAULT_PORT
from rivet.engine.policy import Policy
from rivet.errors import ConfigError
from rivet.home import RivetHome
from rivet.limits import MAX_NAME, MAX_TAGS, name_problem
from rivet.lua.definition import KNOWN_PLUGINS
from rivet.runner.config_file import read_runner_file
from rivet.runner.logs import ShipperSettings

__all__ = ["RunnerOptions", "RunnerSettings", "normalize_server", "parse_tags", "resolve_settings"]

DEFAULT_SERVER = f"http://127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class RunnerOptions:
    """What the command line said; ``None`` / empty means "not given"."""

    server: str | None = None
    token: str | None = None
    registration_token: str | None = None
    name: str | None = None
    tags: Sequence[str] = ()
    concurrency: int | None = None
    workspace_root: Path | None = None
    default_image: str | None = None
    config_file: Path | None = None
    policy_file: Path | None = None


@dataclass(frozen=True)
class RunnerSettings:
    server: str
    token: str | None
    registration_token: str | None
    name: str
    tags: dict[str, str]
    concurrency: int
    workspace_root: Path
    default_image: str
    config_file: Path
    runner_id: str | None = None
    # Whether --tag, RIVET_RUNNER_TAGS or [tags] said anything: tags are registered
    # once; later the server's apply, and differing ones only earn a warning.
    tags_given: bool = False
    # What this runtime provides; the server hands out only jobs it can run.
    plugins: tuple[str, ...] = tuple(sorted(KNOWN_PLUGINS))
    claim_wait: float = 20.0
    heartbeat_interval: float = 3.0
    shipper: ShipperSettings = field(default_factory=ShipperSettings)
    policy: Policy = field(default_factory=Policy)
    policy_file: Path | None = None


def normalize_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"server URL must start with http:// or https://: {url}")
    return url


def parse_tags(items: Sequence[str], source: str) -> dict[str, str]:
    """``["os=linux", "arch=arm64"]`` → ``{"os": "linux", "arch": "arm64"}``."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"{source}: expected a tag as key=value, got {item!r}")
        tags[key] = value
    return tags


def resolve_settings(
    options: RunnerOptions, env: Mapping[str, str] | None = None
) -> RunnerSettings:
    env = os.environ if env is None else env
    home = RivetHome.from_env(env)
    config_file = _path(options.config_file, env.get("RIVET_RUNNER_CONFIG")) or (home.runner_config)
    saved = read_runner_file(config_file)

    def pick(flag: Any, var: str, key: str) -> Any:
        if flag is not None:
            return flag
        if env.get(var):
            return env[var]
        return saved.get(key)

    server = normalize_server(
        str(
            pick(options.server, "RIVET_SERVER", "server")
            or read_runner_file(home.config).get("server")  # the CLI's config file
            or DEFAULT_SERVER
        )
    )
    token = options.token or env.get("RIVET_RUNNER_TOKEN") or None
    runner_id = None
    saved_server = saved.get("server")
    same_server = saved_server is None or normalize_server(str(saved_server)) == server
    if token is None and saved.get("token") and same_server:
        token, runner_id = str(saved["token"]), _opt_str(saved.get("runner_id"))
    tags_given = True
    if options.tags:
        tags = parse_tags(options.tags, "--tag")
    elif env.get("RIVET_RUNNER_TAGS"):
        tags = parse_tags(env["RIVET_RUNNER_TAGS"].split(","), "RIVET_RUNNER_TAGS")
    else:
        tags_given = "tags" in saved
        tags = _file_tags(saved.get("tags", {}), config_file)
    _check_tags(tags)
    name = str(pick(options.name, "RIVET_RUNNER_NAME", "name") or socket.gethostname())
    if len(name) > MAX_NAME:
        raise ConfigError(f"the runner name may have at most {MAX_NAME} characters")
    if (problem := name_problem(name)) is not None:
        raise ConfigError(f"the runner name {name[:60]!r} {problem}")
    concurrency = _int(pick(options.concurrency, "RIVET_RUNNER_CONCURRENCY", "concurrency"), 1)
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    workspace = pick(options.workspace_root, "RIVET_WORKSPACE_ROOT", "workspace_root")
    policy_file = _policy_file(options.policy_file, env.get("RIVET_POLICY"), saved, config_file)
    return RunnerSettings(
        server=server,
        token=token,
        registration_token=options.registration_token
        or env.get("RIVET_REGISTRATION_TOKEN")
        or None,
        name=name,
        tags=tags,
        tags_given=tags_given,
        concurrency=concurrency,
        workspace_root=Path(workspace).expanduser() if workspace else home.workspaces,
        default_image=str(
            pick(options.default_image, "RIVET_DEFAULT_IMAGE", "default_image") or DEFAULT_IMAGE
        ),
        config_file=config_file,
        runner_id=runner_id,
        policy=Policy.load(policy_file) if policy_file is not None else Policy(),
        policy_file=policy_file,
    )


def _check_tags(tags: Mapping[str, str]) -> None:
    """The server's caps (rivet.limits), refused here with a clear message rather than
    by the server at registration or at every claim."""
    if len(tags) > MAX_TAGS:
        raise ConfigError(f"a runner may offer at most {MAX_TAGS} tags, got {len(tags)}")
    for key, value in tags.items():
        if len(key) > MAX_NAME or len(value) > MAX_NAME:
            raise ConfigError(
                f"tag {key[:40]!r}: keys and values may have at most {MAX_NAME} characters"
            )
        for part, text in (("key", key), ("value", value)):
            if (problem := name_problem(text)) is not None:
                raise ConfigError(f"tag {key[:40]!r}: the {part} {problem}")


def _path(flag: Path | None, var: str | None) -> Path | None:
    if flag is not None:
        return flag.expanduser()
    return Path(var).expanduser() if var else None


def _policy_file(
    flag: Path | None, var: str | None, saved: Mapping[str, Any], config_file: Path
) -> Path | None:
    given = _path(flag, var)
    if given is not None:
        return given
    value = saved.get("policy")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{config_file}: policy must be the path of a policy file")
    return config_file.parent / Path(value).expanduser()


def _opt_str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _int(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a whole number, got {value!r}") from None


def _file_tags(value: Any, path: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: [tags] must be a table of key = "value" pairs')
    return {str(k): str(v) for k, v in value.items()}
