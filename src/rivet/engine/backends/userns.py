"""Private user namespaces for job containers (policy ``container.userns = "auto"``).

Applies to rootful Podman only (a runner running as root); rootless Podman already
runs every container in the runner account's own user namespace.

Under rootful Podman a container's root is host root unless the container gets a
user namespace. With ``auto`` the job's first container asks Podman for a fresh
range of subordinate ids (``--userns=auto``, which never hands out a range that a
container in Podman's storage still uses); the job's later containers are started
with exactly that range (``--uidmap``/``--gidmap``), because every container of a job
shares the workspace, and a range's root has no rights over files of another range.

The workspace and the secrets directory are created by the runner (host root), so
they are handed to the range's root when the range is allocated; after that the fs
module and the secret files adopt the owner of their directory (see there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rivet.engine.backends.base import ContainerSpec, IdMap
from rivet.engine.workspaces import adopt_tree
from rivet.errors import ConfigError, ContainerError

__all__ = [
    "ID_MAP_FORMAT",
    "USERNS_SIZE",
    "check_subids",
    "hand_over",
    "parse_id_map",
    "userns_applies",
    "userns_args",
    "userns_hint",
]

# Every uid and gid an image may use (nobody is 65534) fits in 65,536 ids.
USERNS_SIZE = 65536
ID_MAP_FORMAT = "{{json .HostConfig.IDMappings}}"
_SUBID_FIX = (
    "container.userns = 'auto' needs subordinate id ranges for the user 'containers' "
    "in /etc/subuid and /etc/subgid (e.g. the line 'containers:2147483647:2147483648' "
    "in both; scripts/setup.sh adds it), or set container.userns = 'host' in the "
    "runner policy"
)


def userns_applies(spec: ContainerSpec) -> bool:
    """Whether the spec asks for a private namespace that Rivet must set up: under
    rootless Podman (a runner that is not root) container root already is the
    runner's unprivileged account, and the runner could not hand files to a range."""
    return spec.options.userns == "auto" and os.geteuid() == 0


def userns_args(spec: ContainerSpec) -> list[str]:
    if not userns_applies(spec):
        return []
    if spec.id_map is None:
        return ["--userns", f"auto:size={USERNS_SIZE}"]
    m = spec.id_map
    return ["--uidmap", f"0:{m.uid}:{m.size}", "--gidmap", f"0:{m.gid}:{m.size}"]


def parse_id_map(text: str) -> IdMap:
    """The mapping of container id 0 from ``podman inspect``'s IDMappings."""
    try:
        data = json.loads(text)
        uid = _zero_entry(data["UidMap"])
        gid = _zero_entry(data["GidMap"])
    except (ValueError, KeyError, TypeError, IndexError):
        raise ContainerError(
            f"podman reported no user namespace mapping: {text.strip()!r}"
        ) from None
    return IdMap(uid=uid[0], gid=gid[0], size=min(uid[1], gid[1]))


def _zero_entry(entries: list[str]) -> tuple[int, int]:
    for entry in entries:
        inside, host, size = (int(part) for part in entry.split(":"))
        if inside == 0:
            return host, size
    raise ValueError("no mapping for id 0")


def hand_over(id_map: IdMap, workspace: Path, secrets_dir: Path | None) -> None:
    """Make the range's root the owner of what the runner made for the job."""
    adopt_tree(workspace, id_map.uid, id_map.gid)
    if secrets_dir is not None:
        adopt_tree(secrets_dir, id_map.uid, id_map.gid)


def check_subids(files: tuple[Path, Path] = (Path("/etc/subuid"), Path("/etc/subgid"))) -> None:
    """Refuse ``userns = "auto"`` up front (runner start, ``rivet run``) on a host
    whose Podman has no ids to hand out, instead of failing every job's first command."""
    if os.geteuid() != 0:
        return
    for path in files:
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError:
            lines = []
        if not any(line.startswith("containers:") for line in lines):
            raise ConfigError(f"{path} has no range for the user 'containers': {_SUBID_FIX}")


def userns_hint(stderr: str) -> str | None:
    """A message saying how to fix a start that failed for want of subordinate ids."""
    lowered = stderr.lower()
    if "subuid" in lowered or "subgid" in lowered or "enough available ids" in lowered:
        return _SUBID_FIX
    return None
