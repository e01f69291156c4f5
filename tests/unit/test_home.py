"""``rivet.home``: RIVET_HOME and what Rivet writes there is private (0700 / 0600),
whatever the umask; older, wider files are tightened; shared directories are left
alone with a warning."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from rivet.errors import ConfigError
from rivet.home import (
    RivetHome,
    create_private_file,
    default_home,
    make_private_dir,
    open_private_append,
    prepare_sqlite_file,
    private_umask,
    read_private_file,
)
from rivet.store import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual 022 umask: Rivet's own modes must not depend on the caller's."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_paths_are_named_once_under_the_home(tmp_path: Path) -> None:
    home = RivetHome(tmp_path / "h")
    assert home.root == tmp_path / "h"
    assert home.database_url == f"sqlite:///{tmp_path / 'h' / 'rivet.db'}"
    names = [home.admin_token, home.secret_key, home.config, home.runner_config]
    assert [p.name for p in names] == ["admin-token", "secret-key", "config", "runner.toml"]
    assert (home.logs.name, home.workspaces.name) == ("logs", "workspaces")
    assert default_home() == Path("~/.rivet").expanduser()


def test_directories_are_created_0700_with_their_parents(tmp_path: Path, open_umask: None) -> None:
    deep = tmp_path / "a" / "b" / "c"
    make_private_dir(deep)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3
    home = RivetHome(tmp_path / "home")
    log_file = home.log_file("server")
    assert log_file == tmp_path / "home" / "logs" / "server.log"
    assert mode(home.root) == mode(home.logs) == 0o700


def test_a_wider_home_of_ours_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    os.chmod(home, 0o755)
    caplog.set_level(logging.WARNING, "rivet.home")
    RivetHome(home).ensure()
    assert mode(home) == 0o700
    assert f"{home} was accessible by group or others (mode 0755); changed it to 0700" in (
        caplog.text
    )


def test_a_shared_sticky_directory_is_never_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Hostile: RIVET_HOME=/tmp must not make /tmp private (CI runs as root, who could).
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    caplog.set_level(logging.WARNING, "rivet.home")
    RivetHome(shared).ensure()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert "a shared directory" in caplog.text and f"chmod go-rwx {shared}" in caplog.text


def test_a_database_directory_placed_by_hand_is_not_changed(
    tmp_path: Path, open_umask: None
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    os.chmod(project, 0o755)
    prepare_sqlite_file(project / "ci.db")
    assert mode(project) == 0o755  # not Rivet's directory
    assert mode(project / "ci.db") == 0o600


def test_sqlite_database_wal_and_shm_are_0600_under_an_open_umask(
    tmp_path: Path, open_umask: None
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new' / 'rivet.db'}")
    try:
        with db.write() as tx:
            tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))
            tx.conn.execute(text("INSERT INTO t VALUES (1)"))
        with db.read() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar_one() == 1
            files = sorted(p.name for p in (tmp_path / "new").iterdir())
            assert files == ["rivet.db", "rivet.db-shm", "rivet.db-wal"]  # WAL is in use
            assert {p.name: mode(p) for p in (tmp_path / "new").iterdir()} == dict.fromkeys(
                files, 0o600
            )
    finally:
        db.close()
    assert mode(tmp_path / "new") == 0o700


def test_an_old_world_readable_database_is_tightened(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "rivet.db"
    for name in ("rivet.db", "rivet.db-wal", "rivet.db-shm"):
        (tmp_path / name).write_bytes(b"")
        os.chmod(tmp_path / name, 0o644)
    prepare_sqlite_file(path)
    assert [mode(tmp_path / n) for n in ("rivet.db", "rivet.db-wal", "rivet.db-shm")] == [0o600] * 3


def test_log_files_are_appended_0600(tmp_path: Path, open_umask: None) -> None:
    fresh = tmp_path / "fresh.log"
    os.close(open_private_append(fresh))
    assert mode(fresh) == 0o600
    old = tmp_path / "old.log"
    old.write_text("kept\n")
    os.chmod(old, 0o644)
    with os.fdopen(open_private_append(old), "a") as handle:
        handle.write("more\n")
    assert mode(old) == 0o600 and old.read_text() == "kept\nmore\n"


def test_private_umask_returns_the_previous_one(open_umask: None, tmp_path: Path) -> None:
    previous = private_umask()
    try:
        (tmp_path / "f").write_text("x")
        (tmp_path / "d").mkdir()
    finally:
        os.umask(previous)
    assert previous == 0o022
    assert (mode(tmp_path / "f"), mode(tmp_path / "d")) == (0o600, 0o700)


def test_a_private_file_is_created_once_0600_and_read_only_when_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "key"
    assert create_private_file(path, "first\n")
    assert not create_private_file(path, "second\n")  # O_EXCL: the first writer wins
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_private_file(path, "the key") == "first\n"
    path.chmod(0o640)
    with pytest.raises(
        ConfigError, match=r"the key is accessible by group or others \(mode 0640\)"
    ):
        read_private_file(path, "the key")
    with pytest.raises(FileNotFoundError):
        read_private_file(tmp_path / "missing", "the key")
