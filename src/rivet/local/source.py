"""Reading a pipeline file from disk, with errors that name it."""

from __future__ import annotations

from pathlib import Path

from rivet.errors import RivetError

__all__ = ["read_pipeline_file"]


def read_pipeline_file(path: Path) -> str:
    """The file's text, or a ``RivetError`` naming it (missing, a directory, unreadable)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RivetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RivetError(f"{path}: is a directory, not a pipeline file") from None
    except UnicodeDecodeError:
        raise RivetError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise RivetError(f"{path}: cannot read: {exc.strerror or exc}") from None
