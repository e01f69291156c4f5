"""Parsing and checking ``process.run`` options (docs/lua-reference.md, 'process') into
an ``ExecRequest``."""

from __future__ import annotations

import difflib
import math
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rivet.domain.env_names import HOST_TOOL_ENV, EnvNameError, check_env_name
from rivet.engine.backends.base import WORKSPACE
from rivet.engine.events import LEVEL_NAMES, Level
from rivet.lua.lua_values import array_values, is_array, is_table, key_text, raw, render, type_name
from rivet.lua.sandbox import LuaCallError

__all__ = [
    "DEPRECATED",
    "OPTIONS",
    "RESERVED_SECRET_ENV",
    "RunOptions",
    "base_env",
    "jail_cwd",
    "parse_options",
]

OPTIONS = (
    "cmd",
    "args",
    "cwd",
    "env",
    "capture_stdout",
    "capture_stderr",
    "stdout_level",
    "stderr_level",
    "timeout",
    "check",
    "secrets",
    "secret_files",
    # Deprecated, from the earlier Rivet: accepted as a no-op (see DEPRECATED).
    "capture_exit_code",
)

# Options the earlier Rivet had that no longer do anything: name -> the warning
# logged (once per job) when a pipeline still passes one.
DEPRECATED = {
    "capture_exit_code": (
        "process.run: option 'capture_exit_code' is deprecated and ignored: the exit "
        "code is always in the result's exit_code (see 'Coming from the earlier Rivet' "
        "in docs/lua-reference.md)"
    ),
}


@dataclass
class RunOptions:
    argv: list[str]
    cwd: str = WORKSPACE
    env: dict[str, str] = field(default_factory=dict)
    capture_stdout: bool = False
    capture_stderr: bool = False
    stdout_level: Level = "info"
    stderr_level: Level = "info"
    timeout: float | None = None
    check: bool = False
    # Environment variable -> secret name, and file name -> secret name: names only;
    # the values are looked up (and checked against the grants) by process.run.
    secret_env: dict[str, str] = field(default_factory=dict)
    secret_files: dict[str, str] = field(default_factory=dict)
    # Deprecated options the call used (keys of DEPRECATED), for the warning.
    deprecated: tuple[str, ...] = ()


def _fail(message: str) -> LuaCallError:
    return LuaCallError(f"process.run: {message}")


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        if "\0" in value:
            # C strings end at NUL: the kernel would silently truncate the argument.
            raise _fail(f"{what} contains a NUL byte")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _fail(f"{what} must be a string, got {type_name(value)}")


def _flag(opts: Any, name: str) -> bool:
    value = opts[name]
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(f"option '{name}' must be a boolean, got {type_name(value)}")
    return value


def _level(opts: Any, name: str, default: Level) -> Level:
    value = opts[name]
    if value is None:
        return default
    if value not in LEVEL_NAMES:
        raise _fail(f"option '{name}' must be one of debug, info, warning, error; got {value!r}")
    return LEVEL_NAMES[value]


def jail_cwd(cwd: Any, workspace: Path) -> str:
    """The container path for ``cwd``; refuses anything that leaves /workspace,
    including through symlinks that exist in the workspace."""
    if cwd is None:
        return WORKSPACE
    text = _text(cwd, "option 'cwd'")
    if posixpath.isabs(text):
        relative = posixpath.relpath(posixpath.normpath(text), WORKSPACE)
    else:
        relative = posixpath.normpath(text)
    if relative == ".." or relative.startswith("../") or posixpath.isabs(relative):
        raise _fail(f"cwd {text!r} is outside the workspace ({WORKSPACE})")
    root = workspace.resolve()
    host = (root / relative).resolve() if relative != "." else root
    if host != root and root not in host.parents:
        raise _fail(f"cwd {text!r} leads outside the workspace through a symlink")
    if not host.is_dir():
        raise _fail(f"cwd {text!r} does not exist in the workspace (create it first)")
    return WORKSPACE if relative == "." else posixpath.join(WORKSPACE, relative)


def parse_options(opts: Any, workspace: Path) -> RunOptions:
    """The options table, read raw (see :mod:`rivet.lua.lua_values`)."""
    if not is_table(opts):
        raise _fail(
            'expected a table: process.run({ cmd = "echo", args = { "hi" } }) '
            f'or process.run({{ "echo", "hi" }}), got {type_name(opts)}'
        )
    opts = raw(opts)
    positional = opts.array()
    for key in opts:
        if isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= len(positional):
            continue
        if isinstance(key, int) and not isinstance(key, bool) and key > 0:
            raise _fail(
                f"argument {key} follows a nil: argument {len(positional) + 1} is nil "
                "(the argv ends at its first nil)"
            )
        if key not in OPTIONS:
            close = difflib.get_close_matches(key_text(key), OPTIONS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _fail(f"unknown option '{key_text(key)}'{hint}")
    argv = [_text(v, f"argument {i}") for i, v in enumerate(positional, start=1)]
    cmd = opts["cmd"]
    if cmd is not None:
        if argv:
            raise _fail("give either 'cmd' or a positional argv, not both")
        argv = [_text(cmd, "option 'cmd'")]
    args = opts["args"]
    if args is not None:
        if not is_array(args):
            raise _fail(f"option 'args' must be a list of strings, got {type_name(args)}")
        if positional:
            raise _fail("give 'args' together with 'cmd', not with a positional argv")
        argv += [_text(v, f"args[{i}]") for i, v in enumerate(array_values(args), start=1)]
    if not argv or not argv[0]:
        raise _fail("no command given (set 'cmd' or pass the argv positionally)")

    env: dict[str, str] = {}
    raw_env = opts["env"]
    if raw_env is not None:
        if not is_table(raw_env):
            raise _fail(f"option 'env' must be a table of NAME = value, got {type_name(raw_env)}")
        for key, value in raw_env.items():
            env[_env_name(key, "env")] = _text(value, f"env.{key}")

    secret_env = _secret_map(opts, "secrets", "TOKEN", variables=True)
    for var in secret_env:
        if RESERVED_SECRET_ENV.fullmatch(var):
            raise _fail(
                f"secrets: {var!r} cannot hold a secret: the name is reserved (PATH, HOME, "
                "LD_*, LC_*, RIVET_*, CI, proxies… see docs/secrets.md)"
            )
        if var in env:
            raise _fail(f"secrets.{var}: also set in 'env'; give each variable once")
    secret_files = _secret_map(opts, "secret_files", '["token.txt"]')

    timeout = opts["timeout"]
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _fail(f"option 'timeout' must be a positive number of seconds, got {timeout!r}")

    deprecated = []
    for name in DEPRECATED:
        if opts[name] is not None:
            _flag(opts, name)  # still has to be a boolean, as it was
            deprecated.append(name)

    return RunOptions(
        argv=argv,
        cwd=jail_cwd(opts["cwd"], workspace),
        env=env,
        capture_stdout=_flag(opts, "capture_stdout"),
        capture_stderr=_flag(opts, "capture_stderr"),
        stdout_level=_level(opts, "stdout_level", "info"),
        stderr_level=_level(opts, "stderr_level", "info"),
        timeout=float(timeout) if timeout is not None else None,
        check=_flag(opts, "check"),
        secret_env=secret_env,
        secret_files=secret_files,
        deprecated=tuple(deprecated),
    )


# Variables podman or other host tools act on (so only podman's command line, visible
# in `ps`, could carry them), plus Rivet's own. A secret has no business in any of them.
RESERVED_SECRET_ENV = re.compile(rf"{HOST_TOOL_ENV.pattern}|RIVET_.*|CI")


def _env_name(name: Any, option: str) -> str:
    try:
        return check_env_name(name, f"process.run: {option}")
    except EnvNameError as exc:
        raise LuaCallError(str(exc)) from None


def _secret_map(opts: Any, option: str, example: str, *, variables: bool = False) -> dict[str, str]:
    """``{ KEY = "secret name" }`` as a dict of strings. KEY follows the environment-name
    rule when ``variables``; otherwise (file names) the caller validates it."""
    given = opts[option]
    if given is None:
        return {}
    if not is_table(given):
        raise _fail(
            f"option '{option}' must be a table like {{ {example} = \"secret_name\" }}, "
            f"got {type_name(given)}"
        )
    mapping: dict[str, str] = {}
    for key, value in given.items():
        if variables:
            _env_name(key, option)
        elif not isinstance(key, str) or not key:
            raise _fail(f"{option}: keys must be non-empty strings, got {render(key)}")
        if not isinstance(value, str) or not value:
            raise _fail(
                f"{option}.{key}: expected the name of a secret (a string), got {type_name(value)}"
            )
        mapping[key] = value
    return mapping


def base_env(job_id: str, stage: str | None) -> dict[str, str]:
    """Variables every process gets (documented in docs/lua-reference.md)."""
    env = {"CI": "true", "RIVET": "true", "RIVET_JOB_ID": job_id, "RIVET_WORKSPACE": WORKSPACE}
    if stage:
        env["RIVET_STAGE"] = stage
    return env
