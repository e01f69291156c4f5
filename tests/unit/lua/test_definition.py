"""Every validation rule of docs/lua-reference.md, '1. Defining a pipeline', with the message users see."""

from __future__ import annotations

import pytest

from rivet.errors import DefinitionError
from rivet.lua.definition import load_definition, load_pipeline

REFERENCE_EXAMPLE = """
return pipeline.define({
  name = "build-and-test",
  description = "optional text",
  inputs = {
    branch   = { type = "string", default = "main", description = "..." },
    jobs     = { type = "number", default = 4, options = { 1, 2, 4, 8 } },
    verbose  = { type = "bool", default = false, required = false },
    image    = { type = "string", required = true },
  },
  runner  = { { key = "os", value = "linux" } },
  plugins = { "git" },
  stages  = {
    { name = "build", container = "rust:latest", script = function() end },
    { name = "test",  condition = function() return not input.get("skip") end,
      script = function() end },
  },
})
"""

BUILDER = """
return pipeline.builder()
  :name("image")
  :description("builds an image")
  :input("image_name", { type = "string", required = true })
  :input("push", { type = "bool", default = true })
  :tag({ key = "capability", value = "podman" })
  :tag("arch", "amd64")
  :plugin("git")
  :stage({ name = "build", script = function() end })
  :stage(pipeline.stage({ name = "push", condition = function() return true end,
                          script = function() end }))
"""


def errors_of(source: str, filename: str = "build.lua") -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_definition(source, filename)
    return str(info.value).splitlines()


def define(body: str) -> str:
    return f"return pipeline.define({{ {body} }})"


STAGE = "stages = { { name = 's', script = function() end } }"


def test_the_reference_example_parses_to_the_documented_shape() -> None:
    d = load_definition(REFERENCE_EXAMPLE, "build.lua")
    data = d.to_dict()
    assert data["name"] == "build-and-test"
    assert data["description"] == "optional text"
    inputs = {i["name"]: i for i in data["inputs"]}
    assert inputs["branch"] == {
        "name": "branch",
        "type": "string",
        "description": "...",
        "default": "main",
        "options": None,
        "required": False,
    }
    assert inputs["jobs"]["options"] == [1, 2, 4, 8] and inputs["jobs"]["default"] == 4
    assert inputs["verbose"]["required"] is False and inputs["verbose"]["default"] is False
    assert inputs["image"]["required"] is True
    assert data["tags"] == [{"key": "os", "value": "linux"}]
    assert data["plugins"] == ["git"]
    assert [(s["name"], s["container"], s["has_condition"]) for s in data["stages"]] == [
        ("build", "rust:latest", False),
        ("test", None, True),
    ]
    assert data["stages"][0]["line"] == 14


def test_unknown_plugin_only_warns() -> None:
    loaded = load_pipeline(REFERENCE_EXAMPLE, "build.lua")
    assert loaded.warnings == [
        "build.lua: plugins: plugin 'git' is not known to this Rivet; "
        "runners that take the job must provide it"
    ]


@pytest.mark.parametrize("with_build", [True, False])
def test_builder_with_and_without_build(with_build: bool) -> None:
    source = BUILDER + (":build()" if with_build else "")
    d = load_definition(source, "b.lua")
    assert d.name == "image" and d.description == "builds an image"
    assert [i.name for i in d.inputs] == ["image_name", "push"]  # declaration order
    assert [(t.key, t.value) for t in d.tags] == [("capability", "podman"), ("arch", "amd64")]
    assert d.plugins == ("git",)
    assert [(s.name, s.has_condition) for s in d.stages] == [("build", False), ("push", True)]


def test_builder_method_called_with_dot() -> None:
    (line,) = errors_of("local b = pipeline.builder().name('x')\nreturn b")
    assert line == "build.lua:1: builder:name(...) must be called with ':' (not '.')"


def test_builder_errors_carry_the_line_of_the_call() -> None:
    lines = errors_of(
        "return pipeline.builder()\n  :name('x')\n  :input('n', { type = 'number', default = 'x' })\n"
        "  :stage({ name = 's', script = function() end })"
    )
    assert lines == ["build.lua:3: inputs.n.default: expected a number, got string"]


def test_tag_helper() -> None:
    d = load_definition(
        define(f"name = 'x', runner = {{ pipeline.tag('os', 'linux') }}, {STAGE}"), "t.lua"
    )
    assert [(t.key, t.value) for t in d.tags] == [("os", "linux")]


def test_input_and_stage_helpers_check_their_argument() -> None:
    (line,) = errors_of(
        "local i = pipeline.input({ type = 'text' })\n" + define(f"name = 'x', {STAGE}")
    )
    assert line.startswith("build.lua:1: pipeline.input: input.type: must be")
    (line,) = errors_of(
        "local s = pipeline.stage({ name = 's' })\n" + define(f"name = 'x', {STAGE}")
    )
    assert line == "build.lua:1: pipeline.stage: stage.script: is required (a function)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (STAGE, "build.lua:1: name: is required (a non-empty string)"),
        (f"name = '', {STAGE}", "build.lua:1: name: must not be empty"),
        (f"name = 3, {STAGE}", "build.lua:1: name: expected a non-empty string, got number"),
        (
            f"name = 'x', description = 1, {STAGE}",
            "build.lua:1: description: expected a string, got number",
        ),
        ("name = 'x'", "build.lua:1: stages: is required (a non-empty list of stages)"),
        (
            "name = 'x', stages = {}",
            "build.lua:1: stages: expected a non-empty list of stages, got table",
        ),
        (
            f"name = 'x', stagse = 1, {STAGE}",
            "build.lua:1: stagse: unknown field (did you mean 'stages'? ",
        ),
        (f"name = 'x', runner = 'linux', {STAGE}", "build.lua:1: runner: expected a list of"),
        (
            f"name = 'x', runner = {{ {{ key = 'os' }} }}, {STAGE}",
            "build.lua:1: runner[1].value: expected a non-empty string, got nil",
        ),
        (
            f"name = 'x', plugins = {{ 1 }}, {STAGE}",
            "build.lua:1: plugins[1]: expected a non-empty string, got number",
        ),
        (
            f"name = 'x', inputs = 'a', {STAGE}",
            "build.lua:1: inputs: expected a table of name = {...}, got string",
        ),
    ],
)
def test_pipeline_rules(body: str, expected: str) -> None:
    lines = errors_of(define(body))
    assert any(line.startswith(expected) for line in lines), lines


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{}", 'inputs.a.type: is required: "string", "number" or "bool"'),
        ("{ type = 'int' }", 'inputs.a.type: must be "string", "number" or "bool", got \'int\''),
        ("{ type = 'string', default = 1 }", "inputs.a.default: expected a string, got number"),
        ("{ type = 'number', default = '1' }", "inputs.a.default: expected a number, got string"),
        ("{ type = 'bool', default = 'true' }", "inputs.a.default: expected a bool, got string"),
        (
            "{ type = 'number', options = { 1, 'two' } }",
            "inputs.a.options[2]: expected a number, got string",
        ),
        (
            "{ type = 'string', options = {} }",
            "inputs.a.options: expected a non-empty list, got table",
        ),
        (
            "{ type = 'string', options = { 'a', 'b' }, default = 'c' }",
            "inputs.a.default: 'c' is not one of the options ('a', 'b')",
        ),
        (
            "{ type = 'string', required = 'yes' }",
            "inputs.a.required: expected a boolean, got string",
        ),
        (
            "{ type = 'string', descripton = 'x' }",
            "inputs.a.descripton: unknown field (did you mean 'description'?",
        ),
        ("'string'", 'inputs.a: expected a table like { type = "string" }, got string'),
    ],
)
def test_input_rules(spec: str, expected: str) -> None:
    lines = errors_of(define(f"name = 'x', inputs = {{ a = {spec} }}, {STAGE}"))
    assert any(expected in line for line in lines), lines


def test_input_name_rule() -> None:
    lines = errors_of(
        define(f"name = 'x', inputs = {{ ['bad name'] = {{ type = 'string' }} }}, {STAGE}")
    )
    assert lines == ["build.lua:1: inputs.bad name: input names must match [A-Za-z_][A-Za-z0-9_-]*"]


def test_required_defaults() -> None:
    d = load_definition(
        define(
            "name = 'x', inputs = { a = { type = 'string' }, b = { type = 'string', default = 'v' },"
            " c = { type = 'string', required = false } }, " + STAGE
        ),
        "r.lua",
    )
    assert {i.name: i.required for i in d.inputs} == {"a": True, "b": False, "c": False}


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("{ script = function() end }", "stages[1].name: is required"),
        (
            "{ name = 'a b', script = function() end }",
            "stages[1].name: must match [A-Za-z0-9_.-]+, got 'a b'",
        ),
        ("{ name = 's' }", "stages[1].script: is required (a function)"),
        ("{ name = 's', script = 'echo hi' }", "stages[1].script: expected a function, got string"),
        (
            "{ name = 's', script = function() end, condition = true }",
            "stages[1].condition: expected a function, got boolean",
        ),
        (
            "{ name = 's', script = function() end, container = 5 }",
            "stages[1].container: expected an image name (string), got number",
        ),
        ("{ name = 's', script = function() end, timout = 5 }", "stages[1].timout: unknown field"),
        ("'build'", "stages[1]: expected a stage table { name = ..., script = ... }, got string"),
    ],
)
def test_stage_rules(stage: str, expected: str) -> None:
    lines = errors_of(define(f"name = 'x', stages = {{ {stage} }}"))
    assert any(expected in line for line in lines), lines


def test_duplicate_stage_names_and_line_of_the_stage() -> None:
    source = (
        "return pipeline.define({ name = 'x', stages = {\n"
        "  { name = 'a', script = function() end },\n"
        "  { name = 'a', script = function() end },\n"
        "} })"
    )
    assert errors_of(source) == ["build.lua:3: stages[2].name: duplicate stage name 'a'"]


def test_every_problem_is_reported_at_once() -> None:
    lines = errors_of(
        define(
            "name = '', inputs = { a = { type = 'x' } }, stages = { { name = 's', script = 1 } }"
        )
    )
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return 42", "build.lua: the file must return a pipeline definition"),
        ("local x = 1", "build.lua: the file must return a pipeline definition"),
        ("return { name = 'x' }", "build.lua: the file must return a pipeline definition"),
        (
            "local d = pipeline.define('x')\nreturn d",
            "build.lua:1: pipeline.define expects a table",
        ),
        ("x = = 1", "build.lua:1: unexpected symbol near '='"),
        ("\n\nerror('boom')", "build.lua:3: boom"),
    ],
)
def test_file_level_errors(source: str, expected: str) -> None:
    lines = errors_of(source)
    assert lines[0].startswith(expected), lines


@pytest.mark.parametrize(
    "call",
    [
        "process.run({ 'true' })",
        "log.info('x')",
        "input.get('a')",
        "output.set('a', 1)",
        "container.with('alpine', function() end)",
        "print('x')",
    ],
)
def test_runtime_calls_at_definition_time_are_errors(call: str) -> None:
    (line,) = errors_of(call + "\n" + define(f"name = 'x', {STAGE}"))
    assert line.startswith("build.lua:1: ")
    assert "can only be called inside a stage script or condition" in line


def test_inputs_as_list_of_pipeline_input() -> None:
    d = load_definition(
        define(
            "name = 'x', inputs = { pipeline.input({ name = 'who', type = 'string', default = 'w' }) }, "
            + STAGE
        ),
        "l.lua",
    )
    assert d.inputs[0].name == "who" and d.inputs[0].default == "w"


def test_definition_round_trips_through_dict() -> None:
    from rivet.domain.definition import PipelineDefinition

    d = load_definition(REFERENCE_EXAMPLE, "build.lua")
    assert PipelineDefinition.from_dict(d.to_dict()) == d
