"""Validation of what a pipeline file declared (docs/lua-reference.md, '1. Defining a
pipeline'): every rule, every problem at once, each with its field path and, where Lua
knows it, its line.

Works on the Lua tables recorded by ``pipeline.define`` / the builder; the loading
itself (sandbox, definition API, placeholders) is in :mod:`rivet.lua.definition`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from rivet.domain.definition import (
    INPUT_TYPES,
    InputDef,
    PipelineDefinition,
    RunnerTag,
    StageDef,
)
from rivet.errors import DefinitionError, Problem
from rivet.limits import (
    MAX_INPUTS,
    MAX_NAME,
    MAX_VALUE,
    name_problem,
    number_problem,
    pipeline_name_problem,
    text_problems,
)
from rivet.lua import run_rules
from rivet.lua.lua_values import (
    array_values,
    has_type,
    is_array,
    is_function,
    is_table,
    key_text,
    plain,
    raw,
    render,
    same,
    type_name,
)
from rivet.lua.sandbox import Sandbox

__all__ = [
    "INPUT_FIELDS",
    "PIPELINE_FIELDS",
    "STAGE_FIELDS",
    "Record",
    "StageCode",
    "Validator",
]

_PIPELINE_FIELDS = "name description inputs runner plugins lease timeout retry stages"
PIPELINE_FIELDS = tuple(_PIPELINE_FIELDS.split())
STAGE_FIELDS = ("name", "script", "condition", "container", "readonly", "network", "timeout")
NETWORK_MODES = ("none", "bridge")
INPUT_FIELDS = ("type", "description", "default", "options", "required", "name")
# Whole names only (fullmatch): "$" would also match before a final "\n".
STAGE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class StageCode:
    """The Lua functions of one stage, for the executor."""

    script: Any
    condition: Any | None


@dataclass
class Record:
    """What one ``pipeline.define`` call (or builder) recorded, with the lines known."""

    spec: Any
    line: int | None
    input_order: list[Any] | None  # the names as given (strings, unless the file is wrong)
    input_lines: dict[int, int]
    stage_lines: dict[int, int]


class Validator:
    """Turns a :class:`Record` into a definition, or a ``DefinitionError`` listing every
    problem; ``input_problems`` and ``stage`` also serve ``pipeline.input/stage``.

    ``stored``: the file is a version the server (or ``rivet run``) already accepted,
    about to run. Its names are then held to the rules that accepted it rather than
    to the name rules added since (the pipeline-name rule, whole-name matches, no
    control characters in tags and plugins), so that a stored version keeps running.
    """

    def __init__(self, sandbox: Sandbox, *, stored: bool = False) -> None:
        self.sandbox = sandbox
        self.stored = stored

    def _matches(self, rule: re.Pattern[str], name: str) -> bool:
        if self.stored:  # what the rules once accepted: "$" allowed one final "\n"
            return rule.fullmatch(name.removesuffix("\n")) is not None
        return rule.fullmatch(name) is not None

    def pipeline(self, rec: Record, filename: str) -> tuple[PipelineDefinition, list[StageCode]]:
        problems: list[Problem] = []
        spec = rec.spec
        line = rec.line
        if not is_table(spec):
            raise DefinitionError(
                filename,
                [Problem("", f"pipeline.define expects a table, got {type_name(spec)}", line)],
            )
        spec = raw(spec)
        for key in spec:
            if key not in PIPELINE_FIELDS:
                problems.append(Problem(key_text(key), _unknown_field(key, PIPELINE_FIELDS), line))

        name = spec["name"]
        if name is None:
            problems.append(Problem("name", "is required (a non-empty string)", line))
        elif not isinstance(name, str):
            problems.append(Problem("name", _expected("a non-empty string", name), line))
        elif not name.strip():
            problems.append(Problem("name", "must not be empty", line))
        elif not self.stored and (why := pipeline_name_problem(name)) is not None:
            problems.append(Problem("name", why, line))
        description = spec["description"]
        if description is not None and not isinstance(description, str):
            problems.append(Problem("description", _expected("a string", description), line))

        inputs = self.inputs(spec["inputs"], rec, problems)
        tags = self.tags(spec["runner"], problems, line)
        plugins = self.plugins(spec["plugins"], problems, line)
        lease = run_rules.lease(spec["lease"], problems, line)
        timeout = run_rules.timeout(spec["timeout"], "timeout", problems, line)
        retry = run_rules.retry_policy(spec["retry"], problems, line)
        stage_defs, stage_code = self.stages(spec["stages"], rec, problems)

        if problems:
            raise DefinitionError(filename, problems)
        definition = PipelineDefinition(
            name=str(name).strip(),
            description=description if isinstance(description, str) else None,
            inputs=tuple(inputs),
            tags=tuple(tags),
            plugins=tuple(plugins),
            lease=lease,
            timeout=timeout,
            retry=retry,
            stages=tuple(stage_defs),
        )
        problems = storable(definition, line)
        if problems:
            raise DefinitionError(filename, problems)
        return definition, stage_code

    # --- inputs ---------------------------------------------------------------------

    def inputs(self, value: Any, rec: Record, problems: list[Problem]) -> list[InputDef]:
        if value is None:
            return []
        if not is_table(value):
            problems.append(
                Problem("inputs", _expected("a table of name = {...}", value), rec.line)
            )
            return []
        value = raw(value)
        entries: list[tuple[str, Any, int | None]] = []
        if rec.input_order is not None:
            for position, name in enumerate(rec.input_order, start=1):
                entries.append((name, value[name], rec.input_lines.get(position, rec.line)))
        elif is_array(value) and len(value) > 0:
            # An array of pipeline.input{ name = ..., ... } is accepted too.
            for position, item in enumerate(array_values(value), start=1):
                item_name = raw(item)["name"] if is_table(item) else None
                if not isinstance(item_name, str):
                    problems.append(
                        Problem(
                            f"inputs[{position}].name", "is required in a list of inputs", rec.line
                        )
                    )
                    continue
                entries.append((item_name, item, rec.line))
        else:
            for key in sorted(value.keys(), key=key_text):
                entries.append((key, value[key], rec.line))
        result: list[InputDef] = []
        seen: set[str] = set()
        for name, spec, line in entries:
            path = f"inputs.{key_text(name)}"
            if not isinstance(name, str) or not self._matches(INPUT_NAME, name):
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
        if not is_table(spec):
            return [Problem(path, _expected('a table like { type = "string" }', spec), line)]
        spec = raw(spec)
        problems = [
            Problem(f"{path}.{key_text(key)}", _unknown_field(key, INPUT_FIELDS), line)
            for key in spec
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
                    f'must be "string", "number" or "bool", got {render(kind)}',
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
            if not is_array(options) or len(options) == 0:
                problems.append(
                    Problem(f"{path}.options", _expected("a non-empty list", options), line)
                )
            else:
                for position, option in enumerate(array_values(options), start=1):
                    if not has_type(kind, option):
                        problems.append(
                            Problem(
                                f"{path}.options[{position}]", _expected(f"a {kind}", option), line
                            )
                        )
                    option_values.append(option)
        default = spec["default"]
        if default is not None:
            if not has_type(kind, default):
                problems.append(Problem(f"{path}.default", _expected(f"a {kind}", default), line))
            elif option_values and not any(same(default, o) for o in option_values):
                problems.append(
                    Problem(
                        f"{path}.default",
                        f"{render(default)} is not one of the options "
                        f"({', '.join(render(o) for o in option_values)})",
                        line,
                    )
                )
        return problems

    # --- runner tags and plugins ----------------------------------------------------

    def tags(self, value: Any, problems: list[Problem], line: int | None) -> list[RunnerTag]:
        if value is None:
            return []
        if not is_array(value):
            problems.append(
                Problem("runner", _expected("a list of { key = ..., value = ... }", value), line)
            )
            return []
        result = []
        for position, item in enumerate(array_values(value), start=1):
            path = f"runner[{position}]"
            if not is_table(item):
                problems.append(
                    Problem(path, _expected("a table { key = ..., value = ... }", item), line)
                )
                continue
            item = raw(item)
            extra = [k for k in item if k not in ("key", "value")]
            for key in extra:
                problems.append(
                    Problem(f"{path}.{key_text(key)}", _unknown_field(key, ("key", "value")), line)
                )
            key, val = item["key"], item["value"]
            ok = True
            for fname, fval in (("key", key), ("value", val)):
                if not isinstance(fval, str) or not fval:
                    problems.append(
                        Problem(f"{path}.{fname}", _expected("a non-empty string", fval), line)
                    )
                    ok = False
                elif (why := self._name_problem(fval)) is not None:
                    problems.append(Problem(f"{path}.{fname}", why, line))
                    ok = False
            if ok and not extra:
                result.append(RunnerTag(key, val))
        return result

    def _name_problem(self, name: str) -> str | None:
        """A tag's or plugin's: runners register theirs under the same rule."""
        return None if self.stored else name_problem(name)

    def plugins(self, value: Any, problems: list[Problem], line: int | None) -> list[str]:
        if value is None:
            return []
        if not is_array(value):
            problems.append(Problem("plugins", _expected("a list of plugin names", value), line))
            return []
        result: list[str] = []
        for position, item in enumerate(array_values(value), start=1):
            if not isinstance(item, str) or not item:
                problems.append(
                    Problem(f"plugins[{position}]", _expected("a non-empty string", item), line)
                )
            elif (why := self._name_problem(item)) is not None:
                problems.append(Problem(f"plugins[{position}]", why, line))
            elif item not in result:
                result.append(item)
        return result

    # --- stages ---------------------------------------------------------------------

    def stages(
        self, value: Any, rec: Record, problems: list[Problem]
    ) -> tuple[list[StageDef], list[StageCode]]:
        if value is None:
            problems.append(Problem("stages", "is required (a non-empty list of stages)", rec.line))
            return [], []
        if not is_array(value) or len(value) == 0:
            problems.append(
                Problem("stages", _expected("a non-empty list of stages", value), rec.line)
            )
            return [], []
        defs: list[StageDef] = []
        code: list[StageCode] = []
        names: set[str] = set()
        for position, spec in enumerate(array_values(value), start=1):
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
        if not is_table(spec):
            problems.append(
                Problem(path, _expected("a stage table { name = ..., script = ... }", spec), line)
            )
            return None
        spec = raw(spec)
        script, condition = spec["script"], spec["condition"]
        line = self.sandbox.line_of(script) or line
        before = len(problems)
        for key in spec:
            if key not in STAGE_FIELDS:
                problems.append(
                    Problem(f"{path}.{key_text(key)}", _unknown_field(key, STAGE_FIELDS), line)
                )
        name = spec["name"]
        if name is None:
            problems.append(Problem(f"{path}.name", "is required", line))
        elif not isinstance(name, str) or not self._matches(STAGE_NAME, name):
            problems.append(
                Problem(f"{path}.name", f"must match [A-Za-z0-9_.-]+, got {render(name)}", line)
            )
        elif name in names:
            problems.append(Problem(f"{path}.name", f"duplicate stage name '{name}'", line))
        else:
            names.add(name)
        if script is None:
            problems.append(Problem(f"{path}.script", "is required (a function)", line))
        elif not is_function(script):
            problems.append(Problem(f"{path}.script", _expected("a function", script), line))
        if condition is not None and not is_function(condition):
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
                    f"{path}.network", f'must be "none" or "bridge", got {render(network)}', line
                )
            )
        stage_timeout = run_rules.timeout(spec["timeout"], f"{path}.timeout", problems, line)
        if len(problems) > before:
            return None
        stage_def = StageDef(
            name=name,
            container=container,
            has_condition=condition is not None,
            line=line,
            readonly=bool(readonly),
            network=network,
            timeout=stage_timeout,
        )
        return stage_def, StageCode(script=script, condition=condition)


def storable(definition: PipelineDefinition, line: int | None = None) -> list[Problem]:
    """What the server could not store or a job could not use exactly: names longer
    than the database holds, NUL characters, numbers outside ±2^53 (see rivet.limits)."""
    problems: list[Problem] = []
    if len(definition.name) > MAX_NAME:
        problems.append(Problem("name", f"may have at most {MAX_NAME} characters", line))
    if len(definition.inputs) > MAX_INPUTS:
        problems.append(Problem("inputs", f"at most {MAX_INPUTS} inputs may be declared", line))
    for spec in definition.inputs:
        path = f"inputs.{spec.name}"
        values = [("default", spec.default)] if spec.default is not None else []
        values += [(f"options[{i}]", o) for i, o in enumerate(spec.options or (), start=1)]
        for field, value in values:
            why = _value_problem(value)
            if why is not None:
                problems.append(Problem(f"{path}.{field}", why, line))
    for position, tag in enumerate(definition.tags, start=1):
        for field, text in (("key", tag.key), ("value", tag.value)):
            if len(text) > MAX_NAME:
                problems.append(
                    Problem(f"runner[{position}].{field}", f"at most {MAX_NAME} characters", line)
                )
    for position, plugin in enumerate(definition.plugins, start=1):
        if len(plugin) > MAX_NAME:
            problems.append(Problem(f"plugins[{position}]", f"at most {MAX_NAME} characters", line))
    for position, stage in enumerate(definition.stages, start=1):
        if len(stage.name) > MAX_NAME:
            problems.append(
                Problem(f"stages[{position}].name", f"at most {MAX_NAME} characters", stage.line)
            )
    # Every string anywhere (names, descriptions, images, tags): storable text.
    for path, why in text_problems(definition.to_dict(), "pipeline"):
        problems.append(Problem(path.removeprefix("pipeline").lstrip("."), why, line))
    return problems


def _value_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return f"at most {MAX_VALUE} characters" if len(value) > MAX_VALUE else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_problem(value)
    return None


def _input_def(name: str, spec: Any) -> InputDef:
    spec = raw(spec)
    options = spec["options"]
    default = spec["default"]
    required = spec["required"]
    return InputDef(
        name=name,
        type=spec["type"],
        description=spec["description"],
        default=plain(default) if default is not None else None,
        options=tuple(plain(o) for o in array_values(options)) if options is not None else None,
        required=bool(required) if required is not None else default is None,
    )


def _expected(what: str, got: Any) -> str:
    return f"expected {what}, got {type_name(got)}"


def _unknown_field(key: Any, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key_text(key), allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field ({hint}allowed: {', '.join(allowed)})"
