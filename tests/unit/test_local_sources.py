"""``--source DIR``: which files travel (git ls-files honouring .gitignore; the whole
directory otherwise), the commit and dirty flag, and a reproducible archive."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from rivet.errors import RivetError
from rivet.local.sources import copy_into, list_source, pack


def git(repo: Path, *args: str) -> str:
    env = {
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x.invalid",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print(1)\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_text("ignored")
    (root / "debug.log").write_text("ignored")
    return root


def test_a_git_tree_sends_tracked_and_unignored_files_with_its_commit(repo: Path) -> None:
    tree = list_source(repo)
    assert tree.files == [".gitignore", "src/app.py"]
    assert tree.git_commit == git(repo, "rev-parse", "HEAD") and tree.git_dirty is False
    (repo / "new.txt").write_text("untracked, not ignored")
    tree = list_source(repo)
    assert tree.files == [".gitignore", "new.txt", "src/app.py"] and tree.git_dirty is True


def test_a_plain_directory_sends_everything_but_links_out(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("x")
    os.symlink("f", root / "a" / "inside")
    os.symlink("/etc/passwd", root / "out")
    os.symlink("../../x", root / "a" / "up")
    tree = list_source(root)
    assert tree.files == ["a/f", "a/inside"] and not tree.is_git


def test_copy_is_a_copy_never_the_user_tree(repo: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    note = copy_into(list_source(repo), ws, 10**6)
    assert "copied 2 files" in note
    (ws / "src" / "app.py").write_text("changed by the job")
    assert (repo / "src" / "app.py").read_text() == "print(1)\n"
    with pytest.raises(RivetError, match="over 3 bytes"):
        copy_into(list_source(repo), tmp_path / "ws2", 3)


def test_the_archive_is_reproducible_and_holds_the_files(repo: Path) -> None:
    one, two = io.BytesIO(), io.BytesIO()
    first = pack(list_source(repo), one)
    second = pack(list_source(repo), two)
    assert first == second and one.getvalue() == two.getvalue()
    with tarfile.open(fileobj=io.BytesIO(one.getvalue()), mode="r:gz") as tar:
        assert tar.getnames() == [".gitignore", "src/app.py"]
        assert all(m.uid == 0 and m.mtime == 0 for m in tar.getmembers())


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(RivetError, match=r"--source .*: not a directory"):
        list_source(tmp_path / "missing")
