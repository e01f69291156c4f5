"""Pipeline files → validated definitions (docs/lua-reference.md, '1. Defining a pipeline').

The chunk runs in a sandbox with the definition API; runtime modules are present
but refuse to work at definition time. What ``pipeline.define`` / the builder
recorded is then validated as a whole, so every problem is reported at once with
its field path and, where Lua knows it, its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from rivet.domain.definition import PipelineDefinition
from rivet.errors import DefinitionError, LuaError, Problem
from rivet.lua.lua_values import array_values, int_map, is_table, raw, type_name
from rivet.lua.sandbox import Limits, LuaCallError, Sandbox
from rivet.lua.surface import RUNTIME_MODULES
from rivet.lua.validation import (
    INPUT_FIELDS,
    PIPELINE_FIELDS,
    STAGE_FIELDS,
    Record,
    StageCode,
    Validator,
)

__all__ = [
    "INPUT_FIELDS",
    "KNOWN_PLUGINS",
    "PIPELINE_FIELDS",
    "STAGE_FIELDS",
    "LoadedPipeline",
    "StageCode",
    "load_definition",
    "load_pipeline",
]

# Plugins this Rivet knows of; others only warn (runners may provide them).
# The built-in plugins (rivet/engine/plugins/builtin; a test holds the two equal).
KNOWN_PLUGINS: frozenset[str] = frozenset({"archive"})

API_CALL = re.compile(r"\bpipeline\s*\.\s*(define|builder)\b")
LOCATION = re.compile(r"(?P<file>[^\n:]+):(?P<line>\d+): (?P<message>.*)", re.DOTALL)
# A line break as Lua counts lines: "\n", "\r", and "\r\n" or "\n\r" as one.
LUA_LINE_BREAK = re.compile(r"\r\n|\n\r|\r|\n")


@dataclass
class LoadedPipeline:
    definition: PipelineDefinition
    stages: list[StageCode]
    sandbox: Sandbox
    warnings: list[str] = field(default_factory=list)


def split_location(message: str, filename: str) -> tuple[int | None, str]:
    """``"file.lua:12: boom"`` → ``(12, "boom")`` when the message is about ``filename``."""
    match = LOCATION.fullmatch(message)
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
    stored: bool = False,
) -> LoadedPipeline:
    """Evaluate ``source`` in ``sandbox`` and return the validated definition plus its
    stage functions, to be run in that sandbox.

    Without a sandbox (``rivet check``, the server) the file is evaluated in a fresh one
    with placeholder runtime modules, which is closed — its Lua state freed — before
    this returns: such callers get the definition and warnings, and no stage
    functions (``stages`` is empty).

    ``stored``: ``source`` is a version that was accepted before (the executor runs
    it); names are not held to rules added since (see ``Validator``)."""
    if sandbox is not None:
        return _load(source, filename, sandbox, stored)
    own = Sandbox(limits or Limits.from_env())
    try:
        install_definition_placeholders(own)
        return replace(_load(source, filename, own, stored), stages=[])
    finally:
        own.close()


def _load(source: str, filename: str, sandbox: Sandbox, stored: bool) -> LoadedPipeline:
    records: list[Record] = []
    validator = Validator(sandbox, stored=stored)

    def record(spec: Any, line: Any, order: Any = None, lines: Any = None) -> int:
        marks = raw(lines) if is_table(lines) else None
        records.append(
            Record(
                spec=spec,
                line=int(line) if isinstance(line, int) else None,
                input_order=array_values(order) if is_table(order) else None,
                input_lines=int_map(marks["inputs"]) if marks is not None else {},
                stage_lines=int_map(marks["stages"]) if marks is not None else {},
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
    pipeline_table, resolve = sandbox.eval_lua(
        api_source,
        sandbox.expose(record, "pipeline.define"),
        sandbox.expose(check_input, "pipeline.input", raw=True),
        sandbox.expose(check_stage, "pipeline.stage", raw=True),
        sandbox.caller_line_function,
        chunkname="=rivet/pipeline_api.lua",
    )
    sandbox.env["pipeline"] = pipeline_table
    sandbox.refuse_extra_arguments("pipeline")

    budget = sandbox.limits.definition_cpu_seconds
    try:
        chunk = sandbox.load(source, filename)
        # One budget for the file and for resolving what it returned (a builder is
        # recorded then): everything that runs pipeline code at definition time.
        with sandbox.budget(budget, f"{filename}: definition"):
            returned = sandbox.invoke(chunk)
            if isinstance(returned, tuple):
                returned = returned[0] if returned else None
            index = sandbox.invoke(resolve, returned)
    except LuaError as exc:
        line, message = split_location(str(exc), filename)
        raise DefinitionError(filename, [Problem("", message, line)]) from None
    if index is None:
        got = type_name(returned)
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
    try:
        # Validation reads the file's tables raw, so no pipeline code runs here; the
        # window makes sure that, if any did, it would run under a budget all the same.
        with sandbox.budget(budget, f"{filename}: validation"):
            definition, stages = validator.pipeline(rec, filename)
    except LuaError as exc:
        raise DefinitionError(filename, [Problem("", str(exc), rec.line)]) from None
    warnings = [
        f"{filename}: plugins: plugin '{p}' is not known to this Rivet; "
        "runners that take the job must provide it"
        for p in definition.plugins
        if p not in KNOWN_PLUGINS
    ]
    return LoadedPipeline(definition, stages, sandbox, warnings)


def _api_line(source: str) -> int | None:
    """Line of the first pipeline.define/builder call: the best line Lua cannot give
    when the definition is built in a tail call (``return pipeline.define{...}``)."""
    match = API_CALL.search(source)
    if match is None:
        return None
    return len(LUA_LINE_BREAK.findall(source, 0, match.start())) + 1
