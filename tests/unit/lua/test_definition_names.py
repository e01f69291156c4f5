"""The name rules of a definition, attacked: whole-name matches (no trailing "\\n",
"\\r", NUL, blank or bidi character after a valid name), in the declarative form,
the builder and the helpers."""

from __future__ import annotations

import pytest

from rivet.errors import DefinitionError
from rivet.lua.definition import load_definition

STAGE = "stages = { { name = 's', script = function() end } }"


def problems(source: str) -> list[str]:
    """Each problem as ``rivet check`` renders it (``p.lua:LINE: PATH: message``)."""
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "p.lua")
    return [p.render("p.lua") for p in info.value.problems]


def paths(source: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "p.lua")
    return [p.path for p in info.value.problems]


# --- stage and input names: whole-name matches ----------------------------------------


@pytest.mark.parametrize("suffix", ["\\n", "\\r", "\\n\\n", " ", "\\0", "\\u{202E}", "\\u{200B}"])
def test_stage_names_match_whole(suffix: str) -> None:
    source = (
        f'return pipeline.define({{ name = "x", stages = {{'
        f' {{ name = "build{suffix}", script = function() end }} }} }})'
    )
    (line,) = problems(source)
    assert line.startswith("p.lua:1: stages[1].name: must match [A-Za-z0-9_.-]+, got 'build")
    helper = f'pipeline.stage({{ name = "build{suffix}", script = function() end }})\nreturn 1'
    assert "pipeline.stage: stage.name: must match" in problems(helper)[0]


@pytest.mark.parametrize("suffix", ["\\n", "\\r", " ", "\\u{202E}"])
def test_input_names_match_whole(suffix: str) -> None:
    source = f'return pipeline.define({{ name = "x", inputs = {{ ["a{suffix}"] = {{ type = "string" }} }}, {STAGE} }})'
    (line,) = problems(source)
    assert line.endswith(": input names must match [A-Za-z_][A-Za-z0-9_-]*")
    built = f'return pipeline.builder():name("x"):input("a{suffix}", {{ type = "string" }}):stage({{ name = "s", script = function() end }})'
    assert "input names must match" in problems(built)[0]
