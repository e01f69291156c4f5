"""Workspace roots and job workspaces (0700, owned by the runner) and their removal:
iterative, descriptor-based, every error reported rather than raised."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivet.engine import workspaces
from rivet.engine.workspaces import make_workspace, prepare_root, remove_tree
from rivet.errors import ConfigError

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- the root and the job directories ---------------------------------------------------


def test_a_new_root_and_job_workspaces_are_private(tmp_path: Path) -> None:
    root = tmp_path / "a" / "workspaces"
    old = os.umask(0)
    try:
        assert prepare_root(root) is None
        job = make_workspace(root, "job-1")
    finally:
        os.umask(old)
    assert mode(root) == 0o700
    assert mode(job) == 0o700
    assert os.stat(job).st_uid == os.geteuid()
    with pytest.raises(FileExistsError):
        make_workspace(root, "job-1")


def test_an_existing_wide_root_is_tightened_with_a_note(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    os.chmod(root, 0o1777)
    note = prepare_root(root)
    assert note is not None and "1777" in note and "0700" in note and str(root) in note
    assert mode(root) == 0o700
    assert prepare_root(root) is None  # nothing to say the second time


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.write_text("x")
    with pytest.raises(ConfigError, match=r"ws: .*(not a directory|cannot create)"):
        prepare_root(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another account needs root")
def test_a_root_owned_by_another_account_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir(mode=0o700)
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=rf"owned by uid {NOBODY}, not by the runner"):
        prepare_root(root)


# --- removal ----------------------------------------------------------------------------


def make_deep(top: Path, levels: int, name: str = "d") -> None:
    """``top/d/d/.../d/leaf`` with ``levels`` directories, built through descriptors
    (the path is far longer than PATH_MAX)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


def test_removes_a_tree_deeper_than_path_max_without_recursion(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    make_deep(job, 1500, name="d" * 20)  # ~31,500 bytes of path; the recursion limit is 1,000
    # shutil.rmtree recurses: this is the tree that broke cleanup before.
    assert remove_tree(job) == []
    assert not job.exists()


def test_removes_files_links_fifos_and_read_only_or_mode_000_directories(
    tmp_path: Path,
) -> None:
    job = tmp_path / "job"
    (job / "a" / "b").mkdir(parents=True)
    (job / "a" / "b" / "f").write_text("x")
    (job / "a" / "locked").mkdir()
    (job / "a" / "locked" / "g").write_text("y")
    os.chmod(job / "a" / "locked" / "g", 0)
    os.chmod(job / "a" / "locked", 0)
    os.chmod(job / "a" / "b", 0o500)
    os.mkfifo(job / "fifo")
    (job / "link").symlink_to("a/b")
    assert remove_tree(job) == []
    assert not job.exists()


def test_symlinks_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    job = tmp_path / "job"
    (job / "sub").mkdir(parents=True)
    (job / "sub" / "to-outside").symlink_to(outside)
    (job / "abs").symlink_to(outside / "keep")
    assert remove_tree(job) == []
    assert (outside / "keep").read_text() == "precious"


def test_a_missing_path_or_a_single_file(tmp_path: Path) -> None:
    assert remove_tree(tmp_path / "nothing") == []
    single = tmp_path / "file"
    single.write_text("x")
    assert remove_tree(single) == []
    assert not single.exists()


def test_an_entry_that_cannot_be_removed_is_reported_and_the_rest_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An immutable file (chattr +i) refuses unlink even to root; chattr needs a
    # filesystem and capabilities this machine may not offer, so the refusal is
    # injected at the one system call that meets it.
    job = tmp_path / "job"
    (job / "x" / "y").mkdir(parents=True)
    (job / "x" / "y" / "stuck").write_text("s")
    (job / "x" / "gone").write_text("g")
    (job / "other").mkdir()
    real_unlink = os.unlink

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        if path == "stuck":
            raise PermissionError(1, "Operation not permitted")
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(workspaces.os, "unlink", unlink)
    problems = remove_tree(job)
    assert problems == [f"could not remove {job}/x/y/stuck: Operation not permitted"]
    assert sorted(p.name for p in job.rglob("*")) == ["stuck", "x", "y"]


def test_reports_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = tmp_path / "job"
    job.mkdir()
    for i in range(30):
        (job / f"f{i}").write_text("x")

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(workspaces.os, "unlink", unlink)
    problems = remove_tree(job)
    assert len(problems) == workspaces.MAX_REPORTED + 1
    assert problems[-1] == "... and 10 more entries could not be removed"


def test_a_tree_moved_during_removal_never_leads_the_walk_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process still running in the workspace moves the directory being emptied
    up, next to the job's workspace: going up ('..') would now reach the root of
    all workspaces. The walk notices and stops instead of emptying other jobs."""
    root = tmp_path / "root"
    job = root / "job"
    (job / "a" / "b" / "c").mkdir(parents=True)
    (root / "other-job").mkdir()
    (root / "other-job" / "keep").write_text("other job's file")
    real = workspaces._clear_files
    moved: list[bool] = []

    def clear(fd: int, names: list[str], skipped: set[str], report: object) -> str | None:
        if names == ["job", "a", "b", "c"] and not moved:
            moved.append(True)
            os.rename(job / "a" / "b" / "c", root / "c")
        return real(fd, names, skipped, report)  # type: ignore[arg-type]

    monkeypatch.setattr(workspaces, "_clear_files", clear)
    problems = remove_tree(job)
    assert moved
    assert problems == [
        f"could not remove {root}/job/a/b/c: the tree was moved while it was being removed"
    ]
    assert (root / "other-job" / "keep").read_text() == "other job's file"


SYSTEM_PYTHON = Path("/usr/bin/python3")
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
SRC = Path(workspaces.__file__).resolve().parents[2]


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory of the ``nobody`` account that it can reach (pytest's own tmp
    directories are private to root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not SYSTEM_PYTHON.exists():
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as another account")
    base = Path(tempfile.mkdtemp(prefix="rivet-nobody-"))
    os.chmod(base, 0o755)
    os.chown(base, NOBODY, NOBODY)
    yield base
    shutil.rmtree(base)


def test_a_non_root_runner_removes_its_own_mode_000_and_read_only_trees(
    nobody_dir: Path,
) -> None:
    """Without root's override a runner must open up what a job locked (Podman
    rootless: the job's root is the runner's account)."""
    script = textwrap.dedent(
        f"""
        import os, pathlib
        from rivet.engine.workspaces import remove_tree
        job = pathlib.Path({str(nobody_dir)!r}) / "job"
        (job / "ro" / "deep").mkdir(parents=True)
        (job / "ro" / "deep" / "f").write_text("x")
        (job / "zero").mkdir()
        (job / "zero" / "g").write_text("y")
        os.chmod(job / "ro" / "deep", 0o500)
        os.chmod(job / "ro", 0o500)
        os.chmod(job / "zero", 0)
        print(remove_tree(job), job.exists())
        """
    )
    out = subprocess.run(
        [*AS_NOBODY, str(SYSTEM_PYTHON), "-c", script],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[] False", out.stderr


def test_removal_leaves_no_descriptor_open(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    make_deep(job, 300)
    before = len(os.listdir("/proc/self/fd"))
    assert remove_tree(job) == []
    assert len(os.listdir("/proc/self/fd")) == before


def chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True, timeout=30)


def test_a_real_immutable_file_is_reported_and_everything_else_removed(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "keep" / "deeper").mkdir(parents=True)
    (job / "keep" / "deeper" / "frozen").write_text("x")
    (job / "gone").mkdir()
    (job / "gone" / "f").write_text("y")
    chattr("+i", job / "keep" / "deeper" / "frozen")  # even root cannot unlink it
    try:
        problems = remove_tree(job)
        assert problems == [f"could not remove {job}/keep/deeper/frozen: Operation not permitted"]
        assert not (job / "gone").exists()
        assert sorted(p.name for p in job.rglob("*")) == ["deeper", "frozen", "keep"]
    finally:
        chattr("-i", job / "keep" / "deeper" / "frozen")
    assert remove_tree(job) == []
