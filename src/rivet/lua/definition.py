"""Pipeline files → validated definitions (spec section 1).

The chunk runs in a sandbox with the definition API; runtime modules are present
but refuse to work at definition time. What ``pipeline.define`` / the builder
recorded is then validated as a whole, so every problem is reported at once with
its field path and, where Lua knows it, its line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from rivet.domain.definition import (
    INPUT_TYPES,
    InputDef,
    PipelineDefinition,
    RunnerTag,
    StageDef,
)
from rivet.errors import DefinitionError, LuaError, Problem
from rivet.lua import lua_values as lv
from rivet.lua.sandbox import Limits, LuaCallError, Sandbox
from rivet.lua.surface import RUNTIME_MODULES

__all__ = ["KNOWN_PLUGINS", "LoadedPipeline", "StageCode", "load_definition", "load_pipeline"]

# Plugins this Rivet knows of; others only warn (runners may provide them).
KNOWN_PLUGINS: frozenset[str] = frozenset()

PIPELINE_FIELDS = ("name", "description", "inputs", "runner", "plugins", "stages")
STAGE_FIELDS = ("name", "script", "condition", "container", "readonly", "network")
NETWORK_MODES = ("none", "bridge")
INPUT_FIELDS = ("type", "description", "default", "options", "required", "name")
STAGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
API_CALL = re.compile(r"\bpipeline\s*\.\s*(define|builder)\b")
LOCATION = re.compile(r"^(?P<file>[^\n:]+):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class StageCode:
    """The Lua functions of one stage, for the executor."""

    script: Any
    condition: Any | None


@dataclass
class LoadedPipeline:
    definition: PipelineDefinition
    stages: list[StageCode]
    sandbox: Sandbox
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Record:
    spec: Any
    line: int | None
    input_order: list[str] | None
    input_lines: dict[int, int]
    stage_lines: dict[int, int]


def split_location(message: str, filename: str) -> tuple[int | None, str]:
    """``"file.lua:12: boom"`` → ``(12, "boom")`` when the message is about ``filename``."""
    match = LOCATION.match(message)
    if match and match.group("file") == filename:
        return int(match.group("line")), match.group("message")
    return None, message


def definition_time_only(module: str, name: str) -> Callable[..., Any]:
    def refuse(*_args: Any) -> None:
        raise LuaCallError(
            f"{module}.{name} can only be called inside a stage script or condition, "
            "not while the pipeline is being defined (top level of the file)"
        )

    return refuse


def install_definition_placeholders(sandbox: Sandbox) -> None:
    """Runtime modules that refuse every call: what ``rivet check`` and the server use."""
    for module, names in RUNTIME_MODULES.items():
        sandbox.module(module, {n: definition_time_only(module, n) for n in names})
    sandbox.env["print"] = sandbox.expose(definition_time_only("log", "info (print)"), "print")


def load_definition(source: str, filename: str, limits: Limits | None = None) -> PipelineDefinition:
    """Validate a pipeline file offline; raises ``DefinitionError`` with every problem."""
    return load_pipeline(source, filename, limits=limits).definition


def load_pipeline(
    source: str,
    filename: str,
    *,
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> LoadedPipeline:
    """Evaluate ``source`` in ``sandbox`` (a fresh one with placeholder runtime modules
    when not given) and return the validated definition plus its stage functions."""
    if sandbox is None:
        sandbox = Sandbox(limits or Limits.from_env())
        install_definition_placeholders(sandbox)
    records: list[_Record] = []
    validator = _Validator(sandbox)

    def record(spec: Any, line: Any, order: Any = None, lines: Any = None) -> int:
        records.append(
            _Record(
                spec=spec,
                line=int(line) if isinstance(line, int) else None,
                input_order=[str(v) for v in lv.array_values(order)] if order else None,
                input_lines=lv.int_map(lines["inputs"]) if lines else {},
                stage_lines=lv.int_map(lines["stages"]) if lines else {},
            )
        )
        return len(records)

    def check_input(spec: Any) -> None:
        problems = validator.input_problems("input", spec)
        if problems:
            raise LuaCallError(f"pipeline.input: {problems[0].path}: {problems[0].message}")

    def check_stage(spec: Any) -> None:
        problems: list[Problem] = []
        validator.stage("stage", spec, set(), problems, None)
        if problems:
            raise LuaCallError(f"pipeline.stage: {problems[0].path}: {problems[0].message}")

    api_source = resources.files("rivet.lua").joinpath("pipeline_api.lua").read_text("utf-8")
    api_fn = sandbox.load(api_source, "rivet/pipeline_api.lua")
    pipeline_table, resolve = api_fn(
        sandbox.expose(record, "pipeline.define"),
        sandbox.expose(check_input, "pipeline.input", raw=True),
        sandbox.expose(check_stage, "pipeline.stage", raw=True),
        sandbox.caller_line_function,
    )
    sandbox.env["pipeline"] = pipeline_table

    try:
        chunk = sandbox.load(source, filename)
        returned = sandbox.call(
            chunk, budget=sandbox.limits.definition_cpu_seconds, label=f"{filename}: definition"
        )
    except LuaError as exc:
        line, message = split_location(str(exc), filename)
        raise DefinitionError(filename, [Problem("", message, line)]) from None
    if isinstance(returned, tuple):
        returned = returned[0] if returned else None
    index = resolve(returned)
    if index is None:
        got = lv.type_name(returned)
        raise DefinitionError(
            filename,
            [
                Problem(
                    "",
                    "the file must return a pipeline definition: "
                    f"`return pipeline.define({{...}})` or a pipeline.builder(), got {got}",
                )
            ],
        )
    rec = records[int(index) - 1]
    if rec.line is None:
        rec.line = _api_line(source)
    definition, stages = validator.pipeline(rec, filename)
    warnings = [
        f"{filename}: plugins: plugin '{p}' is not known to this Rivet; "
        "runners that take the job must provide it"
        for p in definition.plugins
        if p not in KNOWN_PLUGINS
    ]
    return LoadedPipeline(definition, stages, sandbox, warnings)


class _Validator:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def pipeline(self, rec: _Record, filename: str) -> tuple[PipelineDefinition, list[StageCode]]:
        problems: list[Problem] = []
        spec = rec.spec
        line = rec.line
        if not lv.is_table(spec):
            raise DefinitionError(
                filename,
                [Problem("", f"pipeline.define expects a table, got {lv.type_name(spec)}", line)],
            )
        for key in lv.keys(spec):
            if key not in PIPELINE_FIELDS:
                problems.append(Problem(str(key), _unknown_field(key, PIPELINE_FIELDS), line))

        name = spec["name"]
        if name is None:
            problems.append(Problem("name", "is required (a non-empty string)", line))
        elif not isinstance(name, str):
            problems.append(Problem("name", _expected("a non-empty string", name), line))
        elif not name.strip():
            problems.append(Problem("name", "must not be empty", line))
        description = spec["description"]
        if description is not None and not isinstance(description, str):
            problems.append(Problem("description", _expected("a string", description), line))

        inputs = self.inputs(spec["inputs"], rec, problems)
        tags = self.tags(spec["runner"], problems, line)
        plugins = self.plugins(spec["plugins"], problems, line)
        stage_defs, stage_code = self.stages(spec["stages"], rec, problems)

        if problems:
            raise DefinitionError(filename, problems)
        definition = PipelineDefinition(
            name=str(name).strip(),
            description=description if isinstance(description, str) else None,
            inputs=tuple(inputs),
            tags=tuple(tags),
            plugins=tuple(plugins),
            stages=tuple(stage_defs),
        )
        return definition, stage_code

    # --- inputs ---------------------------------------------------------------------

    def inputs(self, value: Any, rec: _Record, problems: list[Problem]) -> list[InputDef]:
        if value is None:
            return []
        if not lv.is_table(value):
            problems.append(
                Problem("inputs", _expected("a table of name = {...}", value), rec.line)
            )
            return []
        entries: list[tuple[str, Any, int | None]] = []
        if rec.input_order is not None:
            for position, name in enumerate(rec.input_order, start=1):
                entries.append((name, value[name], rec.input_lines.get(position, rec.line)))
        elif lv.is_array(value) and len(value) > 0:
            # An array of pipeline.input{ name = ..., ... } is accepted too.
            for position, item in enumerate(lv.array_values(value), start=1):
                item_name = item["name"] if lv.is_table(item) else None
                if not isinstance(item_name, str):
                    problems.append(
                        Problem(
                            f"inputs[{position}].name", "is required in a list of inputs", rec.line
                        )
                    )
                    continue
                entries.append((item_name, item, rec.line))
        else:
            for key in sorted(lv.keys(value), key=str):
                entries.append((key, value[key], rec.line))
        result: list[InputDef] = []
        seen: set[str] = set()
        for name, spec, line in entries:
            path = f"inputs.{name}"
            if not isinstance(name, str) or not INPUT_NAME.match(name):
                problems.append(
                    Problem(path, "input names must match [A-Za-z_][A-Za-z0-9_-]*", line)
                )
                continue
            if name in seen:
                problems.append(Problem(path, "is declared twice", line))
                continue
            seen.add(name)
            found = self.input_problems(path, spec, line)
            if found:
                problems.extend(found)
                continue
            result.append(_input_def(name, spec))
        return result

    def input_problems(self, path: str, spec: Any, line: int | None = None) -> list[Problem]:
        if not lv.is_table(spec):
            return [Problem(path, _expected('a table like { type = "string" }', spec), line)]
        problems = [
            Problem(f"{path}.{key}", _unknown_field(key, INPUT_FIELDS), line)
            for key in lv.keys(spec)
            if key not in INPUT_FIELDS
        ]
        kind = spec["type"]
        if kind is None:
            problems.append(
                Problem(f"{path}.type", 'is required: "string", "number" or "bool"', line)
            )
            return problems
        if kind not in INPUT_TYPES:
            problems.append(
                Problem(
                    f"{path}.type",
                    f'must be "string", "number" or "bool", got {lv.render(kind)}',
                    line,
                )
            )
            return problems
        description = spec["description"]
        if description is not None and not isinstance(description, str):
            problems.append(
                Problem(f"{path}.description", _expected("a string", description), line)
            )
        required = spec["required"]
        if required is not None and not isinstance(required, bool):
            problems.append(Problem(f"{path}.required", _expected("a boolean", required), line))
        options = spec["options"]
        option_values: list[Any] = []
        if options is not None:
            if not lv.is_array(options) or len(options) == 0:
                problems.append(
                    Problem(f"{path}.options", _expected("a non-empty list", options), line)
                )
            else:
                for position, option in enumerate(lv.array_values(options), start=1):
                    if not lv.has_type(kind, option):
                        problems.append(
                            Problem(
                                f"{path}.options[{position}]", _expected(f"a {kind}", option), line
                            )
                        )
                    option_values.append(option)
        default = spec["default"]
        if default is not None:
            if not lv.has_type(kind, default):
                problems.append(Problem(f"{path}.default", _expected(f"a {kind}", default), line))
            elif option_values and not any(lv.same(default, o) for o in option_values):
                problems.append(
                    Problem(
                        f"{path}.default",
                        f"{lv.render(default)} is not one of the options "
                        f"({', '.join(lv.render(o) for o in option_values)})",
                        line,
                    )
                )
        return problems

    # --- runner tags and plugins ----------------------------------------------------

    def tags(self, value: Any, problems: list[Problem], line: int | None) -> list[RunnerTag]:
        if value is None:
            return []
        if not lv.is_array(value):
            problems.append(
                Problem("runner", _expected("a list of { key = ..., value = ... }", value), line)
            )
            return []
        result = []
        for position, item in enumerate(lv.array_values(value), start=1):
            path = f"runner[{position}]"
            if not lv.is_table(item):
                problems.append(
                    Problem(path, _expected("a table { key = ..., value = ... }", item), line)
                )
                continue
            extra = [k for k in lv.keys(item) if k not in ("key", "value")]
            for key in extra:
                problems.append(
                    Problem(f"{path}.{key}", _unknown_field(key, ("key", "value")), line)
                )
            key, val = item["key"], item["value"]
            ok = True
            for fname, fval in (("key", key), ("value", val)):
                if not isinstance(fval, str) or not fval:
                    problems.append(
                        Problem(f"{path}.{fname}", _expected("a non-empty string", fval), line)
                    )
                    ok = False
            if ok and not extra:
                result.append(RunnerTag(key, val))
        return result

    def plugins(self, value: Any, problems: list[Problem], line: int | None) -> list[str]:
        if value is None:
            return []
        if not lv.is_array(value):
            problems.append(Problem("plugins", _expected("a list of plugin names", value), line))
            return []
        result: list[str] = []
        for position, item in enumerate(lv.array_values(value), start=1):
            if not isinstance(item, str) or not item:
                problems.append(
                    Problem(f"plugins[{position}]", _expected("a non-empty string", item), line)
                )
            elif item not in result:
                result.append(item)
        return result

    # --- stages ---------------------------------------------------------------------

    def stages(
        self, value: Any, rec: _Record, problems: list[Problem]
    ) -> tuple[list[StageDef], list[StageCode]]:
        if value is None:
            problems.append(Problem("stages", "is required (a non-empty list of stages)", rec.line))
            return [], []
        if not lv.is_array(value) or len(value) == 0:
            problems.append(
                Problem("stages", _expected("a non-empty list of stages", value), rec.line)
            )
            return [], []
        defs: list[StageDef] = []
        code: list[StageCode] = []
        names: set[str] = set()
        for position, spec in enumerate(lv.array_values(value), start=1):
            result = self.stage(
                f"stages[{position}]",
                spec,
                names,
                problems,
                rec.stage_lines.get(position, rec.line),
            )
            if result is not None:
                defs.append(result[0])
                code.append(result[1])
        return defs, code

    def stage(
        self, path: str, spec: Any, names: set[str], problems: list[Problem], line: int | None
    ) -> tuple[StageDef, StageCode] | None:
        if not lv.is_table(spec):
            problems.append(
                Problem(path, _expected("a stage table { name = ..., script = ... }", spec), line)
            )
            return None
        script, condition = spec["script"], spec["condition"]
        line = self.sandbox.line_of(script) or line
        before = len(problems)
        for key in lv.keys(spec):
            if key not in STAGE_FIELDS:
                problems.append(Problem(f"{path}.{key}", _unknown_field(key, STAGE_FIELDS), line))
        name = spec["name"]
        if name is None:
            problems.append(Problem(f"{path}.name", "is required", line))
        elif not isinstance(name, str) or not STAGE_NAME.match(name):
            problems.append(
                Problem(f"{path}.name", f"must match [A-Za-z0-9_.-]+, got {lv.render(name)}", line)
            )
        elif name in names:
            problems.append(Problem(f"{path}.name", f"duplicate stage name '{name}'", line))
        else:
            names.add(name)
        if script is None:
            problems.append(Problem(f"{path}.script", "is required (a function)", line))
        elif not lv.is_function(script):
            problems.append(Problem(f"{path}.script", _expected("a function", script), line))
        if condition is not None and not lv.is_function(condition):
            problems.append(Problem(f"{path}.condition", _expected("a function", condition), line))
        container = spec["container"]
        if container is not None and (not isinstance(container, str) or not container.strip()):
            problems.append(
                Problem(f"{path}.container", _expected("an image name (string)", container), line)
            )
        readonly = spec["readonly"]
        if readonly is not None and not isinstance(readonly, bool):
            problems.append(Problem(f"{path}.readonly", _expected("a boolean", readonly), line))
        network = spec["network"]
        if network is not None and network not in NETWORK_MODES:
            problems.append(
                Problem(
                    f"{path}.network", f'must be "none" or "bridge", got {lv.render(network)}', line
                )
            )
        if len(problems) > before:
            return None
        stage_def = StageDef(
            name=name,
            container=container,
            has_condition=condition is not None,
            line=line,
            readonly=bool(readonly),
            network=network,
        )
        return stage_def, StageCode(script=script, condition=condition)


def _input_def(name: str, spec: Any) -> InputDef:
    options = spec["options"]
    default = spec["default"]
    required = spec["required"]
    return InputDef(
        name=name,
        type=spec["type"],
        description=spec["description"],
        default=lv.plain(default) if default is not None else None,
        options=tuple(lv.plain(o) for o in lv.array_values(options))
        if options is not None
        else None,
        required=bool(required) if required is not None else default is None,
    )


def _expected(what: str, got: Any) -> str:
    return f"expected {what}, got {lv.type_name(got)}"


def _unknown_field(key: Any, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field ({hint}allowed: {', '.join(allowed)})"


def _api_line(source: str) -> int | None:
    """Line of the first pipeline.define/builder call: the best line Lua cannot give
    when the definition is built in a tail call (``return pipeline.define{...}``)."""
    match = API_CALL.search(source)
    return source.count("\n", 0, match.start()) + 1 if match else None
