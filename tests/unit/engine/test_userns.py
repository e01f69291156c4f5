"""The pieces of the private user namespaces that need no container: the podman
arguments, reading podman's mapping, and the up-front check for subordinate ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rivet.engine.backends.base import ContainerOptions, ContainerSpec, IdMap
from rivet.engine.backends.userns import (
    USERNS_SIZE,
    check_subids,
    parse_id_map,
    userns_args,
    userns_hint,
)
from rivet.errors import ConfigError, ContainerError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="userns = auto applies to root runners")


def spec(userns: str, id_map: IdMap | None = None) -> ContainerSpec:
    return ContainerSpec(
        job_id="j",
        image="img",
        workspace=Path("/ws"),
        name="n",
        options=ContainerOptions(userns=userns),
        id_map=id_map,
    )


@root_only
def test_the_first_container_asks_for_a_range_and_the_others_share_it() -> None:
    assert userns_args(spec("host")) == []
    assert userns_args(spec("auto")) == ["--userns", f"auto:size={USERNS_SIZE}"]
    shared = IdMap(uid=2147483647, gid=2147483650, size=65536)
    assert userns_args(spec("auto", shared)) == [
        "--uidmap",
        "0:2147483647:65536",
        "--gidmap",
        "0:2147483650:65536",
    ]


def test_podman_mappings_are_read_and_nonsense_is_an_error() -> None:
    text = '{"UidMap":["0:2147483647:65536"],"GidMap":["0:2147549183:65536"]}'
    assert parse_id_map(text) == IdMap(uid=2147483647, gid=2147549183, size=65536)
    for bad in ("null", '{"UidMap":[],"GidMap":[]}', '{"UidMap":["1:5:3"],"GidMap":["0:1:1"]}'):
        with pytest.raises(ContainerError, match="no user namespace mapping"):
            parse_id_map(bad)


@root_only
def test_missing_subordinate_ids_are_refused_naming_the_file_and_the_fix(
    tmp_path: Path,
) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\ncontainers:2147483647:2147483648\n")
    subgid.write_text("alice:100000:65536\n")
    with pytest.raises(ConfigError) as caught:
        check_subids((subuid, subgid))
    message = str(caught.value)
    assert f"{subgid} has no range for the user 'containers'" in message
    assert "containers:2147483647:2147483648" in message and "userns = 'host'" in message
    subgid.write_text("containers:2147483647:2147483648\n")
    check_subids((subuid, subgid))
    with pytest.raises(ConfigError, match="no range"):
        check_subids((tmp_path / "absent", subgid))


def test_podman_errors_about_ids_get_the_fix() -> None:
    stderr = (
        'level=error msg="Cannot find mappings for user \\"containers\\": no subuid ranges '
        'found for user \\"containers\\" in /etc/subuid"\n'
        "Error: creating container storage: could not find enough available IDs\n"
    )
    assert "containers:2147483647:2147483648" in (userns_hint(stderr) or "")
    assert userns_hint("Error: image not known") is None
