"""``rivet pipeline create/list/show/versions`` against a real ``rivet server``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

Cli = Callable[..., Result]
PipelineFile = Callable[..., Path]


def source(name: str, description: str = "first") -> str:
    return f"""return pipeline.define({{
  name = "{name}",
  description = "{description}",
  inputs = {{
    branch = {{ type = "string", default = "main", description = "branch to build" }},
    jobs = {{ type = "number", default = 2, options = {{ 1, 2, 4 }} }},
  }},
  runner = {{ {{ key = "os", value = "linux" }} }},
  plugins = {{ "git" }},
  stages = {{
    {{ name = "build", container = "alpine:latest", script = function() end }},
    {{ name = "test", condition = function() return true end, script = function() end }},
  }},
}})
"""


BAD = """return pipeline.define({
  name = "broken",
  stages = {
    { name = "a", script = "not a function" },
    { name = "a", condition = 3, script = function() end, contaner = "x" },
  },
})
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_list_show_versions(cli: Cli, pipeline_file: PipelineFile) -> None:
    name = unique("build")
    first = pipeline_file(source(name), "v1.lua")
    second = pipeline_file(source(name, "second"), "v2.lua")

    created = cli(["pipeline", "create", str(first)])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith(f"{first}: created pipeline {name} version 1 (id ")
    again = cli(["pipeline", "create", str(second)])
    assert again.exit_code == 0
    assert f"created pipeline {name} version 2" in again.stdout

    listed = cli(["pipeline", "list"])
    assert listed.exit_code == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert "2/2" in row and "branch, jobs" in row and "second" in row

    shown = cli(["pipeline", "show", name])
    assert shown.exit_code == 0
    text = shown.stdout
    assert f"pipeline {name}  version 2 of 2" in text
    assert "second" in text and "runner tags: os=linux" in text and "plugins: git" in text
    assert "branch to build" in text and "1, 2, 4" in text
    assert "alpine:latest" in text

    old = cli(["pipeline", "show", name, "--version", "1", "--source"])
    assert old.exit_code == 0
    assert old.stdout == source(name)

    as_json: dict[str, Any] = json.loads(cli(["pipeline", "show", name, "--json"]).stdout)
    assert as_json["version"] == 2
    assert [s["name"] for s in as_json["definition"]["stages"]] == ["build", "test"]

    versions = cli(["pipeline", "versions", name])
    assert versions.exit_code == 0
    rows = [line.split() for line in versions.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["1", "2"]
    # pushed with this machine's admin token (RIVET_HOME holds the server's)
    assert all("admin" in row for row in rows), versions.stdout


def test_show_by_id_prefix(cli: Cli, pipeline_file: PipelineFile) -> None:
    name = unique("prefixed")
    cli(["pipeline", "create", str(pipeline_file(source(name)))])
    data = json.loads(cli(["pipeline", "show", name, "--json"]).stdout)
    shown = cli(["pipeline", "show", data["id"][:6]])
    assert shown.exit_code == 0
    assert f"pipeline {name}" in shown.stdout


def test_definition_errors_are_printed_like_check(cli: Cli, pipeline_file: PipelineFile) -> None:
    path = pipeline_file(BAD, "broken.lua")
    created = cli(["pipeline", "create", str(path)])
    checked = cli(["check", str(path)])
    assert created.exit_code == 1 and checked.exit_code == 1
    assert created.stderr.splitlines() == checked.stdout.splitlines()
    assert len(created.stderr.splitlines()) == 4
    assert f"{path}:5: stages[2].contaner: unknown field" in created.stderr
    assert "broken" not in cli(["pipeline", "list"]).stdout


def test_unknown_pipeline_and_version(cli: Cli, pipeline_file: PipelineFile) -> None:
    missing = cli(["pipeline", "show", "no-such-pipeline"])
    assert missing.exit_code == 1
    assert missing.stderr == "error: no pipeline named 'no-such-pipeline'\n"
    name = unique("one")
    cli(["pipeline", "create", str(pipeline_file(source(name)))])
    bad_version = cli(["pipeline", "show", name, "--version", "7"])
    assert bad_version.exit_code == 1
    assert bad_version.stderr == f"error: pipeline '{name}' has no version 7\n"


def test_missing_file_is_named(cli: Cli, tmp_path: Path) -> None:
    result = cli(["pipeline", "create", str(tmp_path / "nope.lua")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope.lua'}: no such file\n"


# Each is one line break to Lua; Python's universal newlines would turn "\n\r" into
# two and a lone "\r" into "\n".
LINE_ENDS = ["\r\n", "\r", "\n\r", "\n"]


def test_create_sends_the_files_exact_text(cli: Cli, tmp_path: Path) -> None:
    """``pipeline create`` stores the file's text as it is (``--source`` gives back its
    bytes), and the server's error lines are ``rivet check``'s, counted as Lua does."""
    name = unique("line-ends")
    lines = [f"-- line {n}" for n in range(1, 9)]
    head = "".join(line + LINE_ENDS[n % 4] for n, line in enumerate(lines))
    good = tmp_path / "good.lua"
    good.write_bytes(
        (
            head + f"return pipeline.define({{ name = '{name}', stages = {{\r"
            "{ name = 's', script = function() end } } })\n\r\n"
        ).encode()
    )
    created = cli(["pipeline", "create", str(good)])
    assert created.exit_code == 0, created.output
    # stdout_bytes: click's Result.stdout turns "\r\n" into "\n".
    shown = cli(["pipeline", "show", name, "--source"]).stdout_bytes
    assert shown == good.read_bytes()
    stored = json.loads(cli(["pipeline", "show", name, "--json"]).stdout)
    assert stored["definition"]["stages"][0]["line"] == 10  # Lua's count: 8 + 1 + the "\r"

    bad = tmp_path / "bad.lua"
    bad.write_bytes(
        (
            head + "return pipeline.define({ name = '', stages = {\n\r\n\r"
            "{ name = 'a b', script = function() end } } })"
        ).encode()
    )
    checked = cli(["check", str(bad)])
    refused = cli(["pipeline", "create", str(bad)])
    assert refused.exit_code == 1 and checked.exit_code == 1
    assert refused.stderr.splitlines() == checked.stdout.splitlines()
    assert f"{bad}:9: name: must not be empty" in refused.stderr
    assert f"{bad}:11: stages[1].name: must match" in refused.stderr  # the script's line
