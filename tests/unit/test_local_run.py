"""The local-run service (``rivet.local.run``) without the CLI: what it refuses before
anything runs, in which order, and what it hands the executor. Running jobs on real
Podman through it: tests/integration/test_local_run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rivet.engine.events import CancelToken, JobEvents, JobResult
from rivet.engine.executor import JobSpec
from rivet.errors import ConfigError, DefinitionError, InputError, RivetError
from rivet.local.run import LocalRun, LocalRunOptions, PreparedRun
from rivet.lua.sandbox import Limits
from rivet.settings import JobsGroup, LuaGroup, load_settings

SIMPLE = """return pipeline.define({
  name = "simple",
  inputs = { who = { type = "string" }, n = { type = "number", default = 2 } },
  stages = { { name = "build", script = function() end } },
})
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def options(tmp_path: Path) -> LocalRunOptions:
    return LocalRunOptions(workspace_root=tmp_path / "ws", default_image="busybox:test")


def test_options_come_from_the_jobs_and_lua_settings(tmp_path: Path) -> None:
    (tmp_path / "config").write_text('[jobs]\ndefault_image = "from-file"\n[lua]\nmemory_mib = 8\n')
    settings = load_settings(
        {JobsGroup.policy: tmp_path / "p.toml"},
        {"RIVET_HOME": str(tmp_path), "RIVET_LUA_STAGE_SECONDS": "3"},
    )
    options = LocalRunOptions.from_settings(settings)
    assert options.workspace_root == tmp_path / "workspaces"
    assert options.default_image == "from-file"
    assert options.policy_file == tmp_path / "p.toml"
    assert options.limits == Limits(memory_bytes=8 * 1024 * 1024, stage_cpu_seconds=3)
    assert LuaGroup.memory_mib.default * 1024 * 1024 == Limits().memory_bytes


def test_a_bad_policy_is_refused_before_the_file_is_even_read(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[process]\ndenied_binaries = 'curl'\n")
    options = LocalRunOptions(workspace_root=tmp_path / "ws", policy_file=bad)
    with pytest.raises(ConfigError, match=r"bad\.toml: process\.denied_binaries: must be a list"):
        LocalRun.load(tmp_path / "missing.lua", options)


def test_file_definition_and_plugin_errors(tmp_path: Path, options: LocalRunOptions) -> None:
    with pytest.raises(RivetError, match=r"missing\.lua: no such file"):
        LocalRun.load(tmp_path / "missing.lua", options)
    bad = write(tmp_path / "bad.lua", 'return pipeline.define({ name = "x", stages = {} })\n')
    with pytest.raises(DefinitionError) as info:
        LocalRun.load(bad, options)
    assert [p.path for p in info.value.problems] == ["stages"]
    plugins = write(
        tmp_path / "plugins.lua",
        SIMPLE.replace('name = "simple",', 'name = "p", plugins = { "terraform" },'),
    )
    with pytest.raises(RivetError, match=r"plugins\.lua: plugins: terraform not available"):
        LocalRun.load(plugins, options)


def test_a_loaded_run_knows_its_definition_and_warnings(
    tmp_path: Path, options: LocalRunOptions
) -> None:
    path = write(tmp_path / "s.lua", SIMPLE)
    local = LocalRun.load(path, options, secrets={"TOKEN": "s3cret-value"})
    assert local.definition.name == "simple"
    assert [s.name for s in local.definition.stages] == ["build"]
    assert local.warnings == []
    assert local.filename == str(path) and local.source.startswith("return pipeline.define")


class ScriptedExecutor:
    """A fake executor (named so): records the job it is handed and answers at once."""

    def __init__(self) -> None:
        self.jobs: list[JobSpec] = []

    def run(self, job: JobSpec, events: JobEvents, cancel: CancelToken) -> JobResult:
        self.jobs.append(job)
        return JobResult("succeeded")  # type: ignore[arg-type]


def test_prepare_checks_inputs_before_touching_the_workspace(
    tmp_path: Path, options: LocalRunOptions
) -> None:
    local = LocalRun.load(write(tmp_path / "s.lua", SIMPLE), options)
    with pytest.raises(InputError) as info:
        local.prepare({"n": "many", "typo": "1"})
    assert set(info.value.problems) == {"who", "n", "typo"}
    assert not options.workspace_root.exists()


def test_prepare_types_the_inputs_grants_every_secret_and_readies_the_root(
    tmp_path: Path, options: LocalRunOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rivet.engine.backends.userns.check_subids", lambda: None)
    local = LocalRun.load(
        write(tmp_path / "s.lua", SIMPLE), options, secrets={"TOKEN": "s3cret-value"}
    )
    notes: list[str] = []
    prepared = local.prepare({"who": "me"}, warn=notes.append, backend=object())  # type: ignore[arg-type]
    assert isinstance(prepared, PreparedRun)
    assert options.workspace_root.is_dir()
    assert (options.workspace_root.stat().st_mode & 0o777) == 0o700
    job = prepared.job
    assert job.inputs == {"who": "me", "n": 2}
    assert job.secrets == {"TOKEN": "s3cret-value"} and job.local_secrets
    assert job.job_id == prepared.job_id and job.job_id.startswith("local-")
    executor: Any = prepared.executor
    assert executor.settings.default_image == "busybox:test"
    assert executor.settings.workspace_root == options.workspace_root
    fake = ScriptedExecutor()
    result = PreparedRun(job, fake).run(events=None)  # type: ignore[arg-type]
    assert str(result.status) == "succeeded" and fake.jobs == [job]
