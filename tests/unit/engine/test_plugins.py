"""Plugins in a job: the archive plugin end to end through the fs jail, a plugin from
a plugin directory (docs/plugins.md's example), and hostile plugins that try to
replace a core module or another plugin, or reach pipeline globals."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from recording import EventLog

from rivet.domain.status import JobStatus
from rivet.engine.backends.fake import FakeBackend
from rivet.engine.events import JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.plugins import discover
from rivet.engine.policy import Policy
from rivet.lua.definition import KNOWN_PLUGINS

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "plugins"


def _run(
    tmp_path: Path,
    plugins: str,
    body: str,
    dirs: tuple[Path, ...] = (),
    policy: dict[str, Any] | None = None,
) -> tuple[JobResult, EventLog]:
    source = (
        f"return pipeline.define({{ name = 't', plugins = {{ {plugins} }}, stages = {{\n"
        f"{{ name = 's', script = function()\n{body}\nend }} }} }})"
    )
    settings = ExecutorSettings(
        workspace_root=tmp_path / "ws",
        policy=Policy.model_validate(policy or {}),
        secrets_root=tmp_path,
        plugins=discover(dirs),
    )
    events = EventLog()
    spec = JobSpec(f"unit-{uuid.uuid4().hex[:8]}", source, "t.lua", {}, local_secrets=True)
    result = Executor(FakeBackend(), settings).run(spec, events)
    return result, events


def test_built_in_plugins_are_the_known_ones() -> None:
    assert set(discover().plugins) == set(KNOWN_PLUGINS)


def test_archive_round_trip_in_every_format(tmp_path: Path) -> None:
    body = """
    fs.mkdir("src/sub", { parents = true })
    fs.write("src/a.txt", "alpha")
    fs.write("src/sub/b.bin", "\\0\\255")
    local out = {}
    for _, f in ipairs({ "tar", "tar.gz", "tar.zst", "zip" }) do
      local name = "dist/out." .. f
      archive.create({ path = name, from = { "src" }, format = f })
      local names = {}
      for _, e in ipairs(archive.list(name)) do names[#names + 1] = e.name .. ":" .. e.type end
      archive.extract({ path = name, to = "x-" .. f })
      assert(fs.read("x-" .. f .. "/src/sub/b.bin") == "\\0\\255")
      out[#out + 1] = table.concat(names, ",")
    end
    output.set("names", table.concat(out, ";"))
    """
    result, events = _run(tmp_path, '"archive"', body)
    assert result.status is JobStatus.SUCCEEDED, events.text()
    listing = "src:dir,src/a.txt:file,src/sub:dir,src/sub/b.bin:file"
    assert result.outputs["names"] == ";".join([listing] * 4)


def test_archive_extract_refuses_a_crafted_archive_naming_the_entry(tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    raw = buf.getvalue().decode("latin-1")
    lua_bytes = "".join(f"\\{b}" for b in raw.encode("latin-1"))
    body = f"""
    fs.write("evil.tar", "{lua_bytes}")
    local ok, err = pcall(function() archive.extract({{ path = "evil.tar", to = "out" }}) end)
    output.set("err", tostring(err))
    output.set("left", tostring(fs.exists("out") and #fs.list("out") or 0))
    """
    result, events = _run(tmp_path, '"archive"', body)
    assert result.status is JobStatus.SUCCEEDED, events.text()
    assert "archive.extract: entry '../../escape': has a '..' component" in result.outputs["err"]
    assert result.outputs["left"] == "0"


def test_the_documented_example_plugin_loads_from_a_plugin_directory(tmp_path: Path) -> None:
    result, events = _run(
        tmp_path, '"greet"', 'output.set("g", greet.hello("Rivet"))', dirs=(EXAMPLE,)
    )
    assert result.status is JobStatus.SUCCEEDED, events.text()
    assert result.outputs["g"] == "hello, Rivet"
    assert "greet: said hello to Rivet" in events.text()


def test_a_denied_plugin_fails_the_job_naming_the_rule(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, '"archive"', "", policy={"plugins": {"denied": ["archive"]}})
    assert result.status is JobStatus.FAILED
    assert "policy plugins.denied forbids plugin 'archive'" in (result.error or "")


def test_a_missing_plugin_fails_the_job(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, '"nope"', "")
    assert "plugin 'nope' is not available on this runner" in (result.error or "")


def _plugin(root: Path, name: str, lua: str, modules: str = "[]") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "plugin.toml").write_text(f'name = "{name}"\nversion = "0.1"\nmodules = {modules}\n')
    (d / "init.lua").write_text(lua)
    return d


def test_hostile_plugins_cannot_replace_core_modules_or_other_plugins(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    _plugin(root, "fs", "return {}")  # a core module's name: refused
    _plugin(root, "archive", "return { create = function() end }")  # a built-in's name
    # A plugin that tries to overwrite globals: only its own environment changes.
    _plugin(
        root,
        "evil",
        "fs = nil; _G.log = nil; archive = nil; secret = 'x'\n"
        "return { probe = function() return tostring(input) .. ',' .. tostring(mine) end }",
        modules='["log"]',
    )
    catalog = discover([root])
    assert "core module" in catalog.problems["fs"]
    assert catalog.plugins["archive"].builtin
    body = """
    mine = 1
    output.set("probe", evil.probe())
    output.set("fs", type(fs.read))
    output.set("archive", type(archive.extract))
    """
    result, events = _run(tmp_path, '"archive", "evil"', body, dirs=(root,))
    assert result.status is JobStatus.SUCCEEDED, events.text()
    assert result.outputs == {"probe": "nil,nil", "fs": "function", "archive": "function"}


def test_a_plugin_that_loops_at_load_time_is_stopped_by_the_cpu_budget(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    _plugin(root, "spin", "while true do end")
    result, _ = _run(tmp_path, '"spin"', "", dirs=(root,))
    assert result.status is JobStatus.FAILED
    assert "CPU budget" in (result.error or "")
    shutil.rmtree(root)
