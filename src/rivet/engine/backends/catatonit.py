"""The idle init of job containers: the host's statically linked ``catatonit``.

The Podman backend bind-mounts it into every job container as its entrypoint
(``catatonit -P``), so images without a shell, or with an entrypoint of their own,
still stay up for ``podman exec``. Only a static binary qualifies: the image may
have no dynamic loader or libc at all.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

__all__ = ["find_static_catatonit", "is_static_elf"]

_CATATONIT_CANDIDATES = (
    "/usr/bin/catatonit",
    "/usr/libexec/podman/catatonit",
    "/usr/libexec/catatonit/catatonit",
    "/usr/local/libexec/podman/catatonit",
)
_PT_INTERP = 3


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP).

    It is bind-mounted into arbitrary images, which may have no dynamic loader or
    libc at all, so only a statically linked binary can be trusted to run there.
    """
    try:
        with path.open("rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF":
                return False
            is64 = ident[4] == 2
            order = "<" if ident[5] == 1 else ">"
            # e_phoff, then e_shoff, e_flags and e_ehsize skipped, e_phentsize, e_phnum.
            if is64:
                phoff, phentsize, phnum = struct.unpack_from(order + "Q14xHH", ident, 0x20)
            else:
                phoff, phentsize, phnum = struct.unpack_from(order + "I10xHH", ident, 0x1C)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                header = f.read(4)
                if len(header) < 4:
                    return False
                if struct.unpack(order + "I", header)[0] == _PT_INTERP:
                    return False
            return True
    except OSError:
        return False


def find_static_catatonit() -> Path | None:
    """The host's statically linked ``catatonit``, resolved, or None."""
    found = shutil.which("catatonit")
    for candidate in (*_CATATONIT_CANDIDATES, *([found] if found else [])):
        path = Path(candidate).resolve()
        if path.is_file() and os.access(path, os.X_OK) and is_static_elf(path):
            return path
    return None
