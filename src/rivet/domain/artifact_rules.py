"""What an artifact name and a file path inside an artifact may be: the same rule for
the Lua module, ``rivet run``'s local store, the server and the CLI's download.

A path is written under a download's target as it is, so this rule is what keeps a
download inside its target: relative, ``/``-separated, no empty, ``.`` or ``..``
segment, no NUL or backslash, at most 1024 bytes."""

from __future__ import annotations

import re

__all__ = ["MAX_ARTIFACT_PATH", "artifact_name_problem", "artifact_path_problem"]

MAX_ARTIFACT_PATH = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def artifact_name_problem(name: object) -> str | None:
    """Why ``name`` is not an artifact name, or None when it is one."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    shown = repr(name)[:80] if isinstance(name, str) else f"a {type(name).__name__}"
    return (
        f"artifact name {shown} is not valid: use letters, digits, '.', '_' and '-' "
        "(up to 100, starting with a letter or digit)"
    )


def artifact_path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file inside an artifact, or None (module docstring)."""
    bad = (
        not path
        or len(path.encode("utf-8", "surrogateescape")) > MAX_ARTIFACT_PATH
        or "\0" in path
        or "\\" in path
        or any(p in ("", ".", "..") for p in path.split("/"))
    )
    if bad:
        return f"{path[:200]!r} is not a relative file path inside an artifact"
    return None
