"""Image references, normalized the way Docker and Podman write them in full.

``alpine`` → ``docker.io/library/alpine:latest``; ``ghcr.io/o/app`` →
``ghcr.io/o/app:latest``; a digest is kept (``…/app@sha256:…``). The first path
component is a registry when it contains ``.`` or ``:`` or is ``localhost``;
otherwise the registry is ``docker.io``. Registry hosts are case-insensitive and
``index.docker.io`` / ``registry-1.docker.io`` are ``docker.io``.

Only registry references are accepted: a transport prefix such as
``oci-archive:/path``, ``dir:`` or ``docker-archive:`` would make Podman read an
image from the runner host's file system, which no pipeline may do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "normalize_image"]

_DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io"}
_HOST = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::\d+)?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}")
# Podman 4's transports. ``dir:foo`` would otherwise pass as the image ``dir`` with
# tag ``foo``, while Podman reads the host directory ``foo``. ``docker:TAG`` without
# ``//`` is the Docker Hub image ``docker`` to Podman too, so only ``docker://`` counts.
_TRANSPORTS = frozenset(
    {
        "containers-storage",
        "dir",
        "docker-archive",
        "docker-daemon",
        "oci",
        "oci-archive",
        "ostree",
        "sif",
        "tarball",
    }
)


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str  # registry/path, without tag or digest
    tag: str | None
    digest: str | None

    @property
    def full(self) -> str:
        """The normalized reference: ``registry/path[:tag][@digest]``."""
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def normalize_image(reference: str) -> ImageRef:
    """The full form of ``reference``; ``ValueError`` naming the problem otherwise."""
    text = reference.strip()
    prefix, has_colon, after = text.partition(":")
    if has_colon and (prefix in _TRANSPORTS or (prefix == "docker" and after.startswith("//"))):
        raise ValueError(_invalid(reference, f"the transport '{prefix}:' is not accepted"))
    name, _, digest = text.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag: str | None = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.fullmatch(first):
            raise ValueError(_invalid(reference, f"{first!r} is not a registry host"))
        registry, path = first.lower(), rest
    else:
        registry, path = _DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = _DOCKER_HUB
    components = path.split("/")
    for component in components:
        if not _COMPONENT.fullmatch(component):
            raise ValueError(
                _invalid(reference, f"{component!r} is not a valid name component")
                if component
                else _invalid(reference, "empty name component")
            )
    if registry == _DOCKER_HUB and len(components) == 1:
        path = f"library/{path}"
    if tag is not None and not _TAG.fullmatch(tag):
        raise ValueError(_invalid(reference, f"{tag!r} is not a valid tag"))
    if digest and not _DIGEST.fullmatch(digest):
        raise ValueError(_invalid(reference, f"{digest!r} is not a valid digest"))
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, f"{registry}/{path}", tag, digest or None)


def _invalid(reference: str, why: str) -> str:
    return (
        f"image {reference!r} is not a valid image reference ({why}); write "
        "[registry/]name[:tag][@digest], without a transport such as 'docker://' "
        "or 'oci-archive:'"
    )
