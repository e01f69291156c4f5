"""The archive plugin on real Podman (the job's user namespace, the real workspace
mount): archives the plugin makes are read by GNU tar and unzip-free tools in a
container, archives a container makes are unpacked (owned by the job's root, so the
container can change them) and hostile ones made in the container are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from recording import EventLog

from rivet.domain.status import JobStatus
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

DEBIAN = "localhost/rivet/debian-git:latest"

PIPELINE = """
return pipeline.define({ name = "arch", plugins = { "archive" }, stages = {
  { name = "s", container = "DEBIAN", script = function()
    fs.mkdir("src/sub", { parents = true })
    fs.write("src/a.txt", "alpha\\n")
    fs.write("src/sub/b.txt", "beta\\n")
    archive.create({ path = "out/src.tar.gz", from = "src" })
    local r = process.run({ "tar", "tzf", "out/src.tar.gz", capture_stdout = true, check = true })
    output.set("tar_lists", (r.stdout:gsub("\\n", ",")))

    process.run({ "sh", "-c", "mkdir -p made && echo made > made/m.txt && tar czf made.tgz made", check = true })
    archive.extract({ path = "made.tgz", to = "unpacked" })
    output.set("unpacked", fs.read("unpacked/made/m.txt"))
    process.run({ "sh", "-c", "echo changed >> unpacked/made/m.txt && rm -r unpacked", check = true })

    process.run({ "sh", "-c", "ln -s /etc/passwd leak && tar czf evil.tgz leak", check = true })
    local ok, err = pcall(function() archive.extract({ path = "evil.tgz", to = "e" }) end)
    output.set("evil", tostring(err))
    output.set("e_exists", tostring(fs.exists("e")))
  end },
} })
""".replace("DEBIAN", DEBIAN)


@pytest.mark.podman
def test_archive_plugin_with_real_containers(podman_available: str, tmp_path: Path) -> None:
    settings = ExecutorSettings(workspace_root=tmp_path / "ws", secrets_root=tmp_path)
    events = EventLog()
    spec = JobSpec(f"it-{uuid.uuid4().hex[:8]}", PIPELINE, "arch.lua", {}, local_secrets=True)
    result = Executor(PodmanBackend(), settings).run(spec, events)
    assert result.status is JobStatus.SUCCEEDED, events.text()
    assert result.outputs["tar_lists"] == "src/,src/a.txt,src/sub/,src/sub/b.txt,"
    assert result.outputs["unpacked"] == "made\n"
    assert "archive.extract: entry 'leak': is a symlink to the absolute path '/etc/passwd'" in str(
        result.outputs["evil"]
    )
    assert result.outputs["e_exists"] == "false"
