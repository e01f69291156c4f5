"""Rivet's Lua functions refuse a table, string or function where they take no
argument (a newcomer's trap: Lua drops extra arguments, so ``process.run({"make"},
{check = true})`` ran without the check); an extra number or boolean is ignored, as
Lua's own multi-value returns need. Checked for every function of every module in ``rivet.lua.surface``, so a
new function cannot slip through, on the real executor with the fake backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_jobs import run_job, stage

from rivet.domain.status import JobStatus
from rivet.errors import DefinitionError
from rivet.lua.definition import load_definition
from rivet.lua.surface import DEFINITION_MODULES, RUNTIME_MODULES

# Functions whose extra arguments mean something: log.info("a", x) joins them.
VARIADIC = {f"log.{name}" for name in RUNTIME_MODULES["log"]}

# A non-nil value far past any function's own parameters; the nils before it are
# what Lua passes for missing arguments, so only the stray value may be refused.
STRAY = ", ".join(["nil"] * 12) + ", 'stray'"

RUNTIME = sorted(
    f"{module}.{name}"
    for module, names in RUNTIME_MODULES.items()
    for name in names
    if f"{module}.{name}" not in VARIADIC
)


@pytest.mark.parametrize("function", RUNTIME)
def test_every_runtime_function_refuses_an_argument_it_does_not_take(
    tmp_path: Path, function: str
) -> None:
    job = run_job(tmp_path, stage("s", f"{function}({STRAY})"))
    assert job.result.status is JobStatus.FAILED
    error = job.result.stages[0].error or ""
    assert f"t.lua:3: {function} takes " in error
    assert "argument 13 is a string (Lua would ignore it)" in error


def test_the_newcomer_case_says_where_options_go(tmp_path: Path) -> None:
    job = run_job(tmp_path, stage("s", "process.run({ 'make' }, { check = true })"))
    error = job.result.stages[0].error or ""
    assert error == (
        "t.lua:3: process.run takes 1 argument, but argument 2 is a table (Lua would "
        "ignore it); options go inside the table the function takes"
    )
    assert job.fake.argvs == []  # nothing ran without the check


def test_trailing_nils_numbers_booleans_and_variadic_logging_are_accepted(
    tmp_path: Path,
) -> None:
    # A number or boolean is what Lua's own functions return after their result.
    job = run_job(
        tmp_path,
        stage(
            "s",
            "log.info('a', 'b', 3)\nprocess.run({ 'true' }, nil)\njson.encode({}, nil, 1)\n"
            "output.set('v', ('x  '):gsub('%s+$', ''))\nfs.exists('a', true)",
        ),
    )
    assert job.result.status is JobStatus.SUCCEEDED
    assert job.fake.argvs == [("true",)]


@pytest.mark.parametrize(
    "function", sorted(f"{m}.{n}" for m, names in DEFINITION_MODULES.items() for n in names)
)
def test_every_definition_function_refuses_an_argument_it_does_not_take(function: str) -> None:
    source = f"{function}({STRAY})\nreturn pipeline.define({{ name = 'p', stages = {{}} }})"
    with pytest.raises(DefinitionError) as caught:
        load_definition(source, "p.lua")
    message = str(caught.value)
    assert f"p.lua:1: {function} takes " in message
    assert "argument 13 is a string (Lua would ignore it)" in message
