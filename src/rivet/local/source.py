"""Reading a pipeline file from disk, with errors that name it."""

from __future__ import annotations

from pathlib import Path

from rivet.errors import RivetError

__all__ = ["read_pipeline_file"]


def read_pipeline_file(path: Path) -> str:
    """The file's text exactly as it is, or a ``RivetError`` naming it (missing, a
    directory, unreadable). No newline translation: ``rivet check``, ``rivet run`` and
    ``pipeline create`` hand Lua (and the server) the file's own text, so error lines
    are Lua's count of the file's lines (universal newlines would make "\n\r" two
    line breaks where Lua sees one) and the stored source is the file."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RivetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RivetError(f"{path}: is a directory, not a pipeline file") from None
    except UnicodeDecodeError:
        raise RivetError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise RivetError(f"{path}: cannot read: {exc.strerror or exc}") from None
