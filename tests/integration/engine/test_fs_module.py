"""The fs module: workspace jail, write limits, read-only stages, binary content.

Host-side tests plant hostile entries with ``os.symlink``/``os.mkfifo``/``os.mknod``;
the ``container`` tests have a real Podman container plant them with ``process.run``
(the attack the jail exists for: a process in the job's container making a link
that the runner, on the host, would otherwise follow).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from recording import EventLog

from rivet.domain.definition import StageDef
from rivet.engine.backends.base import ContainerBackend
from rivet.engine.backends.fake import FakeBackend
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.modules import (
    fs_module,
    json_module,
    log_module,
    output_module,
    process_module,
)
from rivet.engine.modules.fs_module.tree import TEMP_PREFIX
from rivet.engine.policy import Policy
from rivet.engine.policy.fs_policy import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_JOB_BYTES, FsPolicy
from rivet.errors import ConfigError, LuaError
from rivet.lua.sandbox import Sandbox

BUSYBOX = "localhost/rivet/busybox:latest"
PASSWD = Path("/etc/passwd")


class Job:
    """One job's sandbox with the fs module (plus log, output, json, process), in the
    run phase of a stage named ``s``, over ``workspace``."""

    def __init__(
        self,
        workspace: Path,
        *,
        policy: Policy | None = None,
        readonly: bool = False,
        backend: ContainerBackend | None = None,
    ) -> None:
        self.workspace = workspace
        self.sandbox = Sandbox()
        self.ctx = JobContext(
            job_id=f"fs-{uuid.uuid4().hex[:10]}",
            events=EventLog(),
            # Host-only tests start no container: the fake fails loudly if one does.
            backend=backend or FakeBackend(images=()),
            workspace=workspace,
            default_image=BUSYBOX,
            inputs={},
            cancel=CancelToken(),
            policy=policy or Policy(),
        )
        for module in (fs_module, log_module, output_module, json_module, process_module):
            module.install(self.sandbox, self.ctx)
        self.ctx.phase = Phase.RUN
        self.ctx.stage = "s"
        self.ctx.stage_def = StageDef(name="s", readonly=readonly)

    def run(self, code: str) -> Any:
        fn = self.sandbox.load(code, "t.lua")
        return self.sandbox.call(fn, budget=30, label="stage 's'")

    def error(self, code: str) -> str:
        with pytest.raises(LuaError) as caught:
            self.run(code)
        return str(caught.value)

    def close(self) -> None:
        for close in self.ctx.closers:
            close()
        self.ctx.remove_containers()


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file contents, link targets, directories."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel] = "special"
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def job(workspace: Path) -> Iterator[Job]:
    j = Job(workspace)
    yield j
    j.close()


def limited(workspace: Path, **limits: int) -> Job:
    return Job(workspace, policy=Policy(fs=FsPolicy(**limits)))  # type: ignore[arg-type]


# --- the functions ------------------------------------------------------------------------


def test_write_read_append_and_workspace_paths(job: Job, workspace: Path) -> None:
    job.run(
        """
        fs.write("a.txt", "hello")
        fs.append("a.txt", " world")
        fs.append("new.txt", 42)
        fs.write("/workspace/abs.txt", fs.read("a.txt"))
        output.set("read", fs.read("/workspace/a.txt"))
        """
    )
    assert (workspace / "a.txt").read_text() == "hello world"
    assert (workspace / "new.txt").read_text() == "42"
    assert (workspace / "abs.txt").read_text() == "hello world"
    assert job.ctx.outputs["read"] == "hello world"


def test_binary_content_round_trips_byte_for_byte(job: Job, workspace: Path) -> None:
    every_byte = bytes(range(256))
    (workspace / "host.bin").write_bytes(every_byte)
    job.run(
        r"""
        fs.write("nul.bin", "\0\255")
        local all = fs.read("host.bin")
        assert(#all == 256, "length " .. #all)
        for i = 0, 255 do assert(all:byte(i + 1) == i, "byte " .. i) end
        fs.write("copy.bin", all)
        fs.append("copy.bin", "\0\255\128é")
        local mixed = "é\255" .. string.rep("\0", 3)
        fs.write("mixed.bin", mixed)
        assert(fs.read("mixed.bin") == mixed)
        assert(fs.read("nul.bin") == "\0\255")
        """
    )
    assert (workspace / "nul.bin").read_bytes() == b"\x00\xff"
    assert (workspace / "copy.bin").read_bytes() == every_byte + b"\x00\xff\x80\xc3\xa9"
    assert (workspace / "mixed.bin").read_bytes() == b"\xc3\xa9\xff\x00\x00\x00"


# Where Lua's utf8.len and Python's decoder could disagree (surrogates, overlong
# forms, code points above U+10FFFF, 5-byte forms, truncated sequences): the glue's
# choice of bridge must never hand Python a string it cannot decode.
TRICKY = [
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xe0\x80\x80",
    b"\xf0\x80\x80\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xef\xbf\xbf",
    b"\xf4\x8f\xbf\xbf",
    b"\xc2",
    b"a\xe2\x82",
]


@pytest.mark.parametrize("raw", TRICKY, ids=lambda b: b.hex())
def test_utf8_edge_cases_round_trip(job: Job, workspace: Path, raw: bytes) -> None:
    literal = "".join(f"\\{b}" for b in raw)
    job.run(f'fs.write("x", "{literal}"); assert(fs.read("x") == "{literal}")')
    assert (workspace / "x").read_bytes() == raw


def test_file_names_that_are_not_utf8_survive(job: Job, workspace: Path) -> None:
    (workspace / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    job.run(
        r"""
        local name = fs.list()[1]
        assert(name == "caf\233.txt", name)
        assert(fs.read(name) == "latin-1 name")
        fs.write("\255\254", "x")
        assert(fs.glob("*")[2] == "\255\254")  -- sorted by bytes: "c" < "\255"
        fs.move("\255\254", "ok")
        """
    )
    assert sorted(os.listdir(os.fsencode(workspace))) == [b"caf\xe9.txt", b"ok"]


def test_exists_list_stat_mkdir(job: Job, workspace: Path) -> None:
    job.run(
        """
        fs.mkdir("d")
        fs.mkdir("p/q/r", { parents = true })
        fs.mkdir("p/q/r", { parents = true })  -- existing: fine with parents
        fs.write("d/b", "12345")
        fs.write("d/a", "")
        fs.write("d/.hidden", "")
        assert(fs.exists("d") and fs.exists("d/b") and not fs.exists("d/zz"))
        assert(not fs.exists("nope/deeper/x"))
        output.set("list", table.concat(fs.list("d"), ","))
        output.set("root", table.concat(fs.list(), ","))
        local st = fs.stat("d/b")
        output.set("stat", st.type .. " " .. st.size .. " " .. math.type(st.mtime) .. " " .. st.mode)
        output.set("dir", fs.stat("d").type)
        output.set("missing", tostring(fs.stat("d/zz")))
        """
    )
    assert job.ctx.outputs["list"] == ".hidden,a,b"
    assert job.ctx.outputs["root"] == "d,p"
    mode = stat.S_IMODE((workspace / "d" / "b").stat().st_mode)
    assert job.ctx.outputs["stat"] == f"file 5 integer {mode}"
    assert job.ctx.outputs["dir"] == "dir"
    assert job.ctx.outputs["missing"] == "nil"
    assert (workspace / "p" / "q" / "r").is_dir()
    assert "fs.mkdir: 'd' already exists" in job.error('fs.mkdir("d")')
    assert "does not exist" in job.error('fs.mkdir("x/y")')
    assert "unknown option 'parent'" in job.error('fs.mkdir("x/y", { parent = true })')
    assert "fs.read: 'd' is a directory" in job.error('fs.read("d")')
    assert "fs.read: 'zz' does not exist" in job.error('fs.read("zz")')
    assert "fs.list: 'd/b' is not a directory" in job.error('fs.list("d/b")')
    assert "fs.read: path must be a string, got number" in job.error("fs.read(1)")
    assert "t.lua:1: fs.write: content must be a string, got table" in job.error(
        'fs.write("x", {})'
    )


def test_remove_is_recursive_only_on_request(job: Job, workspace: Path) -> None:
    (workspace / "tree" / "sub").mkdir(parents=True)
    (workspace / "tree" / "sub" / "f").write_text("x")
    (workspace / "empty").mkdir()
    (workspace / "file").write_text("x")
    message = job.error('fs.remove("tree")')
    assert "fs.remove: 'tree' is a directory that is not empty" in message
    assert "recursive = true" in message
    assert (workspace / "tree" / "sub" / "f").exists()
    job.run('fs.remove("empty"); fs.remove("file"); fs.remove("tree", { recursive = true })')
    assert snapshot(workspace) == {}
    assert "fs.remove: 'gone' does not exist" in job.error('fs.remove("gone")')
    for root in ('"."', '""', '"/workspace"', '"a/.."'):
        (workspace / "a").mkdir(exist_ok=True)
        assert "workspace root" in job.error(f"fs.remove({root}, {{ recursive = true }})")
    assert (workspace / "a").is_dir()


def test_copy_and_move_files_and_trees(job: Job, workspace: Path) -> None:
    (workspace / "src" / "deep").mkdir(parents=True)
    (workspace / "src" / "deep" / "f").write_bytes(b"\x00data")
    (workspace / "src" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(workspace / "src" / "run.sh", 0o755)
    os.symlink("deep/f", workspace / "src" / "link")
    (workspace / "out").mkdir()
    job.run(
        """
        fs.copy("src/run.sh", "run2.sh")
        fs.copy("src/run.sh", "out")            -- into an existing directory, like cp
        fs.copy("src", "src2")
        fs.move("src2", "out")                   -- into an existing directory, like mv
        fs.move("run2.sh", "renamed.sh")
        fs.move("src/link", "moved-link")        -- a symlink moves as itself
        """
    )
    assert (workspace / "renamed.sh").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((workspace / "renamed.sh").stat().st_mode) == 0o755
    assert (workspace / "out" / "run.sh").exists()
    assert (workspace / "out" / "src2" / "deep" / "f").read_bytes() == b"\x00data"
    assert os.readlink(workspace / "out" / "src2" / "link") == "deep/f"
    assert os.readlink(workspace / "moved-link") == "deep/f"
    assert not (workspace / "src2").exists()
    assert "into itself" in job.error('fs.copy("src", "src/deep/inner")')
    assert "into itself" in job.error('fs.move("src", "src/deep")')
    assert "fs.copy: 'nope' does not exist" in job.error('fs.copy("nope", "x")')
    assert "fs.copy: 'renamed.sh' already exists" in job.error('fs.copy("src", "renamed.sh")')
    assert "fs.copy: 'nodir/' is not an existing directory" in job.error(
        'fs.copy("renamed.sh", "nodir/")'
    )
    assert not any(name.startswith(TEMP_PREFIX) for name in snapshot(workspace))


def test_glob(job: Job, workspace: Path) -> None:
    for rel in ("a.c", "b.h", "src/x.c", "src/y/z.c", ".git/config.c", "src/.hid.c"):
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    job.run(
        """
        output.set("top", table.concat(fs.glob("*.c"), ","))
        output.set("all", table.concat(fs.glob("**/*.c"), ","))
        output.set("abs", table.concat(fs.glob("/workspace/src/*"), ","))
        output.set("dirs", table.concat(fs.glob("*/"), ","))
        output.set("q", table.concat(fs.glob("?.[ch]"), ","))
        output.set("hidden", table.concat(fs.glob(".*/*.c"), ","))
        output.set("none", #fs.glob("nothing/*"))
        """
    )
    assert job.ctx.outputs["top"] == "a.c"
    assert job.ctx.outputs["all"] == "a.c,src/x.c,src/y/z.c"
    assert job.ctx.outputs["abs"] == "src/x.c,src/y"
    assert job.ctx.outputs["dirs"] == "src"
    assert job.ctx.outputs["q"] == "a.c,b.h"
    assert job.ctx.outputs["hidden"] == ".git/config.c"
    assert job.ctx.outputs["none"] == 0
    assert "'..' is not allowed in a glob pattern" in job.error('fs.glob("src/../*")')
    assert "outside the workspace" in job.error('fs.glob("/etc/*")')


def test_fs_refuses_to_run_while_the_pipeline_is_defined(job: Job) -> None:
    job.ctx.phase = Phase.DEFINITION
    assert "fs.read can only be called inside a stage script" in job.error('fs.read("x")')


# --- the jail: hostile paths and host-planted entries ---------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('fs.read("../../etc/passwd")', "fs.read: '../../etc/passwd' is outside the workspace"),
        ('fs.read("/etc/passwd")', "fs.read: '/etc/passwd' is outside the workspace"),
        ('fs.write("a/../../x", "x")', "fs.write: 'a/../../x' is outside the workspace"),
        ('fs.write("/workspace/../x", "x")', "fs.write: '/workspace/../x' is outside"),
        ('fs.write("/tmp/x", "x")', "fs.write: '/tmp/x' is outside the workspace"),
        ('fs.mkdir("../x")', "fs.mkdir: '../x' is outside the workspace"),
        ('fs.list("..")', "fs.list: '..' is outside the workspace"),
        ('fs.copy("/etc/passwd", "p")', "fs.copy: '/etc/passwd' is outside the workspace"),
        ('fs.copy("a", "../x")', "fs.copy: '../x' is outside the workspace"),
        ('fs.move("a", "../x")', "fs.move: '../x' is outside the workspace"),
        ('fs.remove("../ws")', "fs.remove: '../ws' is outside the workspace"),
        ('fs.stat("/etc")', "fs.stat: '/etc' is outside the workspace"),
        ('fs.exists("/etc/passwd")', "fs.exists: '/etc/passwd' is outside the workspace"),
        ('fs.read("a\\0b")', "fs.read: 'a\\x00b' contains a NUL byte"),
    ],
)
def test_hostile_paths_are_refused(job: Job, workspace: Path, code: str, expected: str) -> None:
    (workspace / "a").write_text("a")
    outside = snapshot(workspace.parent)
    message = job.error(code)
    assert message.startswith("t.lua:1: ")
    assert expected in message
    assert snapshot(workspace.parent) == outside


def test_host_planted_links_out_are_refused_and_links_inside_work(
    job: Job, workspace: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "f").write_text("inside")
    os.symlink("../secret.txt", workspace / "rel-out")  # relative, climbing out
    os.symlink(str(tmp_path), workspace / "dir-out")  # a symlinked parent directory
    os.symlink("sub", workspace / "dir-in")
    os.symlink("/workspace/sub/f", workspace / "abs-in")  # the container's view: inside
    os.symlink("loop", workspace / "loop")
    before = snapshot(tmp_path)
    for code in (
        'fs.read("rel-out")',
        'fs.read("dir-out/secret.txt")',
        'fs.write("dir-out/new", "x")',
        'fs.write("rel-out", "x")',
        'fs.append("rel-out", "x")',
        'fs.list("dir-out")',
        'fs.mkdir("dir-out/d")',
        'fs.copy("sub/f", "dir-out")',
        'fs.move("sub/f", "dir-out/f")',
        'fs.remove("dir-out/secret.txt")',
        'fs.exists("dir-out/secret.txt")',
    ):
        message = job.error(code)
        assert "leads outside the workspace (symlink '" in message, code
    assert snapshot(tmp_path) == before
    assert "too many levels of symbolic links" in job.error('fs.read("loop")')
    job.run(
        """
        assert(fs.read("dir-in/f") == "inside")
        assert(fs.read("abs-in") == "inside")
        fs.write("dir-in/g", "through a link inside")
        assert(#fs.glob("dir-in/*") == 0)            -- glob never descends into links
        local st = fs.stat("rel-out")
        assert(st.type == "symlink" and st.target == "../secret.txt")
        fs.remove("rel-out")                         -- removes the link, not its target
        """
    )
    assert (workspace / "sub" / "g").read_text() == "through a link inside"
    assert secret.read_text() == "host secret"
    assert not (workspace / "rel-out").is_symlink()


def test_fifos_and_device_nodes_are_refused_without_being_opened(job: Job, workspace: Path) -> None:
    os.mkfifo(workspace / "fifo")  # opening it for reading would block forever
    try:
        os.mknod(workspace / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    assert "fs.read: 'fifo' is not a regular file (fifo)" in job.error('fs.read("fifo")')
    assert "fs.read: 'null' is not a regular file (device)" in job.error('fs.read("null")')
    assert "fs.append: 'fifo' is not a regular file" in job.error('fs.append("fifo", "x")')
    assert "fs.write: 'null' is not a regular file" in job.error('fs.write("null", "x")')
    assert "fs.copy: 'fifo' is not a regular file" in job.error('fs.copy("fifo", "x")')
    assert stat.S_ISCHR((workspace / "null").lstat().st_mode)


def _flip(stop: threading.Event, *swaps: Any) -> None:
    while not stop.is_set():
        for swap in swaps:
            swap()


def _swapper(staging: Path, source: str, dest: Path) -> Any:
    """Atomically replace ``dest`` with a copy of ``staging/source`` (made under a
    temporary name, then renamed over ``dest``), as a container's ``mv`` would."""
    original = staging / source

    def swap() -> None:
        tmp = staging / f"tmp-{uuid.uuid4().hex}"
        if original.is_symlink():
            os.symlink(os.readlink(original), tmp)
        elif original.is_dir():
            tmp.mkdir()
            (tmp / "passwd").write_text("safe")
        else:
            tmp.write_text("safe")
        try:
            os.rename(tmp, dest)
        except OSError:  # rename(2) cannot replace a directory by a link: move it away first
            trash = staging / f"trash-{uuid.uuid4().hex}"
            os.rename(dest, trash)
            os.rename(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)

    return swap


def test_race_swapping_entries_for_links_never_reaches_the_target(
    job: Job, workspace: Path, tmp_path: Path
) -> None:
    """A container can swap an entry for a link between any two system calls the
    runner makes. Whatever the timing, a read returns the workspace's content or
    fails, and a write lands in the workspace or fails: never outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("SECRET")
    staging = workspace / "staging"
    staging.mkdir()
    (staging / "file").write_text("safe")
    os.symlink(str(outside / "passwd"), staging / "link")
    (staging / "dir").mkdir()
    (staging / "dir" / "passwd").write_text("safe")
    os.symlink(str(outside), staging / "dirlink")
    (workspace / "f").write_text("safe")
    (workspace / "d").mkdir()
    (workspace / "d" / "passwd").write_text("safe")

    stop = threading.Event()
    flippers = [
        threading.Thread(
            target=_flip,
            args=(
                stop,
                _swapper(staging, "file", workspace / "f"),
                _swapper(staging, "link", workspace / "f"),
            ),
        ),
        threading.Thread(
            target=_flip,
            args=(
                stop,
                _swapper(staging, "dir", workspace / "d"),
                _swapper(staging, "dirlink", workspace / "d"),
            ),
        ),
    ]
    for t in flippers:
        t.start()
    try:
        job.run(
            """
            for _ = 1, 500 do
              for _, path in ipairs({ "f", "d/passwd" }) do
                local ok, got = pcall(fs.read, path)
                assert(not (ok and got:find("SECRET")), "leaked the target")
                pcall(fs.write, path, "pwned")
                pcall(fs.append, path, "pwned")
              end
            end
            """
        )
    finally:
        stop.set()
        for t in flippers:
            t.join()
    assert snapshot(outside) == {"passwd": b"SECRET"}


# --- write limits -----------------------------------------------------------------------


def test_per_file_limit_leaves_no_partial_file(workspace: Path) -> None:
    job = limited(workspace, max_file_bytes=1000)
    (workspace / "keep.txt").write_text("original")
    job.run('fs.write("ok.txt", string.rep("x", 1000))')
    before = snapshot(workspace)
    for code in (
        'fs.write("big.txt", string.rep("x", 1001))',
        'fs.write("keep.txt", string.rep("x", 1001))',
        'fs.write("big.bin", string.rep("\\255", 1001))',  # the non-UTF-8 path
        'fs.append("ok.txt", "y")',
        'fs.append("new.txt", string.rep("y", 1001))',
    ):
        message = job.error(code)
        assert "over policy fs.max_file_bytes (1000 bytes)" in message, code
        assert message.startswith("t.lua:1: fs."), message
    assert snapshot(workspace) == before
    (workspace / "big-src").write_bytes(b"z" * 1001)
    before = snapshot(workspace)
    assert "fs.max_file_bytes" in job.error('fs.copy("big-src", "big-dst")')
    assert snapshot(workspace) == before
    assert (workspace / "keep.txt").read_text() == "original"


def test_per_job_limit_counts_every_fs_write(workspace: Path) -> None:
    job = limited(workspace, max_job_bytes=3000)
    job.run(
        """
        fs.write("a", string.rep("a", 1000))
        fs.append("a", string.rep("a", 500))
        fs.copy("a", "b")                        -- 1500 more: 3000 in all
        """
    )
    before = snapshot(workspace)
    message = job.error('fs.write("c", "x")')
    assert (
        "fs.write: 'c': writing 1 bytes would bring this job's fs writes to 3001 bytes" in message
    )
    assert "over policy fs.max_job_bytes (3000 bytes; 3000 bytes written so far)" in message
    assert "fs.max_job_bytes" in job.error('fs.append("a", "x")')
    assert "fs.max_job_bytes" in job.error('fs.write("c", "\\255")')
    assert snapshot(workspace) == before


def test_a_tree_copy_over_the_job_limit_leaves_nothing(workspace: Path) -> None:
    job = limited(workspace, max_job_bytes=2500)
    for i in range(3):
        (workspace / "tree" / f"d{i}").mkdir(parents=True)
        (workspace / "tree" / f"d{i}" / "f").write_bytes(b"x" * 1000)
    before = snapshot(workspace)
    message = job.error('fs.copy("tree", "copy")')
    assert "fs.copy: 'tree/d2/f': writing 1000 bytes would bring" in message
    assert snapshot(workspace) == before  # no partial tree, no temporary directory
    job.run('fs.copy("tree/d0", "one")')  # a failed call counts nothing


def test_default_limits_and_policy_file(tmp_path: Path) -> None:
    assert FsPolicy().max_file_bytes == DEFAULT_MAX_FILE_BYTES == 64 << 20
    assert FsPolicy().max_job_bytes == DEFAULT_MAX_JOB_BYTES == 1 << 30
    path = tmp_path / "policy.toml"
    path.write_text('[fs]\nmax_file_bytes = "1m"\nmax_job_bytes = 0\nmax_read_bytes = 4096\n')
    policy = Policy.load(path).fs
    assert (policy.max_file_bytes, policy.max_job_bytes, policy.max_read_bytes) == (
        1 << 20,
        0,
        4096,
    )
    policy.check_job_total(10**15, 10**15)  # 0: no limit
    path.write_text("[fs]\nmax_file_bytes = -1\n")
    with pytest.raises(ConfigError, match=r"fs\.max_file_bytes"):
        Policy.load(path)
    path.write_text('[fs]\nmax_filebytes = "1m"\n')
    with pytest.raises(ConfigError, match="max_filebytes"):
        Policy.load(path)
    example = Path(__file__).resolve().parents[3] / "examples" / "runner-policy.toml"
    text = example.read_text()
    assert "[fs]" in text
    for key in FsPolicy.model_fields:
        assert f"# {key} = " in text, f"examples/runner-policy.toml does not show fs.{key}"
    assert Policy.load(example).fs == FsPolicy()


def test_read_limit(workspace: Path) -> None:
    job = limited(workspace, max_read_bytes=10)
    (workspace / "big").write_bytes(b"x" * 11)
    assert "fs.read: 'big': the file is 11 bytes, over policy fs.max_read_bytes" in job.error(
        'fs.read("big")'
    )


# --- read-only stages ----------------------------------------------------------------------


def test_readonly_stage_refuses_every_fs_change(workspace: Path) -> None:
    (workspace / "f").write_text("x")
    (workspace / "d").mkdir()
    job = Job(workspace, readonly=True)
    before = snapshot(workspace)
    for call in (
        'fs.write("n", "x")',
        'fs.write("n", "\\255")',
        'fs.append("f", "x")',
        'fs.mkdir("m")',
        'fs.remove("f")',
        'fs.copy("f", "g")',
        'fs.move("f", "g")',
    ):
        message = job.error(call)
        name = call.split("(")[0]
        assert f"{name}: stage 's' is read-only (readonly = true)" in message, call
    assert snapshot(workspace) == before
    job.run('assert(fs.read("f") == "x"); assert(#fs.list() == 2); assert(fs.exists("d"))')


# --- a real container plants the links --------------------------------------------------------


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host file outside every workspace: the target of the destructive attacks."""
    path = tmp_path_factory.mktemp("outside") / "canary.txt"
    path.write_text("canary")
    return path


@pytest.fixture(scope="module")
def planted(
    podman_available: str, tmp_path_factory: pytest.TempPathFactory, canary: Path
) -> Iterator[Job]:
    """A job whose container created hostile links in its workspace with ``ln -s``.

    Links to /etc and /etc/passwd are the classic attack. Attacks that would
    overwrite an existing file go through ``canary``, a link to a host file outside
    the workspace (it does not exist inside the container, so only the runner could
    reach it): the same jail path, without risking the host's /etc/passwd should a
    regression ever break the jail."""
    workspace = tmp_path_factory.mktemp("planted")
    job = Job(workspace, backend=PodmanBackend())
    job.run(
        f"""
        process.run({{ "sh", "-c", [[
          set -e
          ln -s /etc/passwd leak
          ln -s /etc etc
          ln -s {canary} canary
          ln -s {canary.parent} canary-dir
          ln -s ../../../../../../.. up
          mkdir real && echo inside > real/file
          ln -s /workspace/real abs-inside
          mkfifo fifo
          printf 'file' > file
        ]], check = true }})
        """
    )
    yield job
    job.close()


@pytest.mark.podman
@pytest.mark.parametrize(
    "code",
    [
        'fs.read("leak")',
        'fs.read("etc/passwd")',
        'fs.read("up/etc/passwd")',
        'fs.read("canary")',
        'fs.write("canary", "pwned")',
        'fs.write("leak", "pwned")',
        'fs.append("canary", "pwned")',
        'fs.write("etc/rivet-pwned", "x")',
        'fs.write("canary-dir/new", "x")',
        'fs.list("etc")',
        'fs.list("canary-dir")',
        'fs.copy("file", "canary")',
        'fs.copy("file", "leak")',
        'fs.copy("file", "etc")',
        'fs.copy("leak", "stolen")',
        'fs.copy("etc", "stolen-dir")',
        'fs.move("file", "canary")',
        'fs.move("file", "etc/rivet-pwned")',
        'fs.mkdir("etc/rivet-pwned")',
        'fs.remove("canary-dir/canary.txt")',
        'fs.remove("etc/rivet-pwned", { recursive = true })',
        'fs.exists("etc/passwd")',
    ],
)
def test_links_made_in_a_container_are_refused(planted: Job, canary: Path, code: str) -> None:
    passwd = hashlib.sha256(PASSWD.read_bytes()).hexdigest()
    before = snapshot(planted.workspace)
    message = planted.error(code)
    assert message.startswith("t.lua:1: fs.")
    assert "leads outside the workspace (symlink '" in message
    assert hashlib.sha256(PASSWD.read_bytes()).hexdigest() == passwd
    assert canary.read_text() == "canary"
    assert not Path("/etc/rivet-pwned").exists()
    assert snapshot(planted.workspace) == before


@pytest.mark.podman
def test_glob_and_list_never_show_what_a_planted_link_points_to(planted: Job) -> None:
    planted.run(
        """
        output.set("glob", table.concat(fs.glob("**"), ","))
        output.set("through", #fs.glob("etc/*"))
        output.set("list", table.concat(fs.list(), ","))
        output.set("inside", fs.read("abs-inside/file"))
        output.set("leak", fs.stat("leak").type .. " -> " .. fs.stat("leak").target)
        """
    )
    outputs = planted.ctx.outputs
    names = "abs-inside,canary,canary-dir,etc,fifo,file,leak,real"
    assert outputs["glob"] == names + ",real/file,up"
    assert outputs["through"] == 0
    assert outputs["list"] == names + ",up"
    assert outputs["inside"] == "inside\n"
    assert outputs["leak"] == "symlink -> /etc/passwd"
    assert "fs.read: 'fifo' is not a regular file (fifo)" in planted.error('fs.read("fifo")')


@pytest.mark.podman
def test_binary_content_between_fs_and_a_container(planted: Job) -> None:
    planted.run(
        r"""
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        fs.write("bytes.bin", table.concat(all))
        local r = process.run({ "sha256sum", "bytes.bin", capture_stdout = true, check = true })
        output.set("sum", r.stdout:sub(1, 64))
        process.run({ "sh", "-c", [[printf '\000\377\200x' > made.bin]], check = true })
        local made = fs.read("made.bin")
        output.set("made", #made .. ":" .. made:byte(1) .. "," .. made:byte(2) .. "," .. made:byte(3))
        fs.remove("bytes.bin")
        fs.remove("made.bin")
        """
    )
    assert planted.ctx.outputs["sum"] == hashlib.sha256(bytes(range(256))).hexdigest()
    assert planted.ctx.outputs["made"] == "4:0,255,128"


@pytest.mark.podman
def test_readonly_stage_blocks_fs_and_processes(podman_available: str, tmp_path: Path) -> None:
    source = """
    return pipeline.define({ name = "ro", stages = {
      { name = "prepare", script = function()
          fs.write("data.txt", "before")
        end },
      { name = "inspect", readonly = true, script = function()
          local ok, err = pcall(fs.write, "data.txt", "changed")
          output.set("fs_error", err)
          local r = process.run({ "sh", "-c", "echo changed > data.txt", capture_stderr = true })
          output.set("exit", r.exit_code)
          output.set("stderr", r.stderr)
          output.set("read", fs.read("data.txt"))
          output.set("cat", process.run({ "cat", "data.txt", capture_stdout = true }).stdout)
        end },
      { name = "after", script = function()
          output.set("after", fs.read("data.txt"))
        end },
    } })
    """
    executor = Executor(
        PodmanBackend(), ExecutorSettings(workspace_root=tmp_path / "ws", default_image=BUSYBOX)
    )
    job_id = f"ro-{uuid.uuid4().hex[:8]}"
    result: JobResult = executor.run(JobSpec(job_id, source, "ro.lua", {}), EventLog())
    assert str(result.status) == "succeeded", result.error
    outputs = result.outputs
    assert outputs["fs_error"] == (
        "fs.write: stage 'inspect' is read-only (readonly = true): it cannot change the workspace"
    )
    assert outputs["exit"] != 0
    assert "Read-only file system" in str(outputs["stderr"])
    assert outputs["read"] == outputs["after"] == "before"
    assert outputs["cat"] == "before"
    leftovers = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert leftovers.stdout.strip() == ""


@pytest.mark.podman
def test_a_directory_of_more_than_100000_entries_is_refused_not_read(
    podman_available: str, workspace: Path
) -> None:
    """A container can make millions of files; the fs module would hold all their
    names at once. It stops reading a directory as soon as it passes the cap."""
    job = Job(workspace, backend=PodmanBackend())
    try:
        job.run(
            'process.run({ "sh", "-c", "mkdir big && cd big && seq 1 100001 | xargs touch",'
            " check = true })"
        )
        for call in (
            'fs.list("big")',
            'fs.glob("big/*")',
            'fs.glob("**/x")',
            'fs.copy("big", "c")',
        ):
            error = job.error(call)
            assert "'big' has more than 100000 entries, more than the fs module reads" in error
        assert sorted(os.listdir(workspace)) == ["big"]  # the refused copy left nothing
        job.run('process.run({ "rm", "big/1", check = true })')
        assert job.run('return #fs.list("big")') == 100000
    finally:
        job.close()


# --- path caps (policy fs.max_path_bytes / max_name_bytes / max_depth) -------------------


def test_paths_over_the_caps_are_refused_naming_the_path_and_the_rule(
    job: Job, workspace: Path
) -> None:
    long_name = "n" * 256
    message = job.error(f'fs.write("dir/{long_name}", "x")')
    assert "t.lua:1: fs.write: 'dir/nnnn" in message
    assert (
        "the name 'nnnn" in message
        and "is 256 bytes long, over policy fs.max_name_bytes (255)" in message
    )
    too_long = "/".join(["p" * 200] * 21)  # 4,220 bytes
    message = job.error(f'fs.mkdir("{too_long}", {{ parents = true }})')
    assert "is 4220 bytes long, over policy fs.max_path_bytes (4096)" in message
    assert "bytes)…" in message  # the path is shortened in the message
    deep = "/".join(["d"] * 129)
    message = job.error(f'fs.mkdir("{deep}", {{ parents = true }})')
    assert "is 129 levels deep, over policy fs.max_depth (128)" in message
    assert not (workspace / "d").exists() and not (workspace / "dir").exists()
    job.run(f'fs.mkdir("{"/".join(["d"] * 128)}", {{ parents = true }})')  # the cap itself is fine
    assert job.run(f'return fs.exists("{"/".join(["d"] * 128)}")') is True


def test_path_caps_apply_to_the_path_as_resolved_through_links(workspace: Path) -> None:
    j = limited(workspace, max_depth=5)
    try:
        (workspace / "a" / "b" / "c" / "d").mkdir(parents=True)
        os.symlink("a/b/c/d", workspace / "deep")
        j.run('fs.mkdir("deep/x")')  # 5 levels: a/b/c/d/x
        message = j.error('fs.write("deep/x/y", "no")')  # 3 as written, 6 as resolved
        assert "'deep/x/y' (through links: 'a/b/c/d/x/y') is 6 levels deep" in message
        assert "over policy fs.max_depth (5)" in message
        assert not (workspace / "a" / "b" / "c" / "d" / "x" / "y").exists()
    finally:
        j.close()


def test_copy_and_glob_keep_to_the_depth_cap(workspace: Path) -> None:
    j = limited(workspace, max_depth=4)
    try:
        (workspace / "src" / "a" / "b").mkdir(parents=True)
        (workspace / "src" / "a" / "b" / "f").write_text("x")
        (workspace / "into" / "x").mkdir(parents=True)
        message = j.error('fs.copy("src", "into/x/copy")')  # into/x/copy/a/b/f: 6 levels
        assert "'src/a/b' copied to 'into/x/copy/a/b' is 5 levels deep" in message
        assert "over policy fs.max_depth (4)" in message
        assert sorted(os.listdir(workspace / "into" / "x")) == []  # nothing half-copied
        (workspace / "t" / "1" / "2" / "3" / "4").mkdir(parents=True)
        message = j.error('fs.glob("t/**")')
        assert "the tree is more than 4 levels deep, over policy fs.max_depth (4)" in message
    finally:
        j.close()


def test_recursive_remove_handles_any_depth(job: Job, workspace: Path) -> None:
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir("deep", dir_fd=fd)
    for _ in range(1500):  # deeper than Python's recursion limit
        child = os.open("deep" if _ == 0 else "d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        os.mkdir("d", dir_fd=fd)
    os.close(fd)
    job.run('fs.remove("deep", { recursive = true })')
    assert os.listdir(workspace) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_name_bytes", 256), ("max_depth", 0), ("max_depth", 513), ("max_path_bytes", 0)],
)
def test_path_cap_keys_are_bounded(tmp_path: Path, key: str, value: int) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[fs]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"fs\.{key}"):
        Policy.load(path)


# --- set-id bits and ownership -------------------------------------------------------------


def test_copies_and_rewrites_never_keep_set_id_bits(job: Job, workspace: Path) -> None:
    binary = workspace / "suid"
    binary.write_bytes(b"\x7fELF")
    os.chmod(binary, 0o6755)
    (workspace / "tree" / "sgid").mkdir(parents=True)
    os.chmod(workspace / "tree" / "sgid", 0o2775)
    shutil.copy(binary, workspace / "tree" / "sgid" / "inner")
    os.chmod(workspace / "tree" / "sgid" / "inner", 0o4750)
    job.run('fs.copy("suid", "copy"); fs.copy("tree", "tree2"); fs.write("suid", "new")')
    assert stat.S_IMODE(os.stat(workspace / "copy").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(workspace / "tree2" / "sgid").st_mode) == 0o775
    assert stat.S_IMODE(os.stat(workspace / "tree2" / "sgid" / "inner").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(workspace / "suid").st_mode) == 0o755  # rewritten in place


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another uid needs root")
def test_new_entries_belong_to_the_workspace_owner(workspace: Path) -> None:
    """With a private user namespace the workspace belongs to the namespace's root;
    what fs creates must too, or the job's commands could not change it."""
    owner = (2_000_000_000, 2_000_000_001)
    os.chown(workspace, *owner)
    (workspace / "srcdir").mkdir()
    (workspace / "srcdir" / "f").write_text("x")
    os.symlink("f", workspace / "srcdir" / "link")
    j = Job(workspace)
    try:
        j.run(
            'fs.write("w.txt", "w"); fs.append("ap.txt", "a"); fs.mkdir("m/n", { parents = true })'
        )
        j.run('fs.mkdir("p/q/r", { parents = true }); fs.copy("srcdir", "copied")')
    finally:
        j.close()
    made = ["w.txt", "ap.txt", "m", "m/n", "p", "p/q", "p/q/r", "copied", "copied/f", "copied/link"]
    for rel in made:
        info = os.lstat(workspace / rel)
        assert (info.st_uid, info.st_gid) == owner, rel
