"""The name rules of a definition, attacked: whole-name matches (no trailing "\\n"),
the pipeline-name rule (no '/', '.' or '..', no control, format or bidi characters,
no leading or trailing whitespace), no such characters in tags and plugins either,
in the declarative form, the builder and the helpers; ordinary Unicode names work;
and a stored version runs under the rules that accepted it."""

from __future__ import annotations

import pytest

from rivet.errors import DefinitionError
from rivet.limits import MAX_NAME, PIPELINE_NAME_RULE, name_problem, pipeline_name_problem
from rivet.lua.definition import load_definition, load_pipeline

STAGE = "stages = { { name = 's', script = function() end } }"

# Characters no name may hold, as Lua escapes, with the code point the error names.
HIDDEN = {
    "\\0": "U+0000",
    "\\t": "U+0009",
    "\\n": "U+000A",
    "\\r": "U+000D",
    "\\27[2J": "U+001B",
    "\\127": "U+007F",
    "\\u{85}": "U+0085",
    "\\u{9B}": "U+009B",
    "\\u{AD}": "U+00AD",
    "\\u{61C}": "U+061C",
    "\\u{200B}": "U+200B",
    "\\u{200C}": "U+200C",
    "\\u{200D}": "U+200D",
    "\\u{200E}": "U+200E",
    "\\u{200F}": "U+200F",
    "\\u{2028}": "U+2028",
    "\\u{2029}": "U+2029",
    "\\u{202A}": "U+202A",
    "\\u{202B}": "U+202B",
    "\\u{202C}": "U+202C",
    "\\u{202D}": "U+202D",
    "\\u{202E}": "U+202E",
    "\\u{2060}": "U+2060",
    "\\u{2066}": "U+2066",
    "\\u{2067}": "U+2067",
    "\\u{2068}": "U+2068",
    "\\u{2069}": "U+2069",
    "\\u{FEFF}": "U+FEFF",
    "\\u{E0041}": "U+E0041",
}

ORDINARY = [
    "hello",
    "build-and-test",
    "release_2.0",
    "a.b",
    "...",
    "Déploiement",
    "构建",
    "ビルド",
    "сборка",
    "بناء",
    "deploy 1",
    "café ☕",
    "[bold]x",
    "x\u00a0y",
    "n" * MAX_NAME,
]


def problems(source: str) -> list[str]:
    """Each problem as ``rivet check`` renders it (``p.lua:LINE: PATH: message``)."""
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "p.lua")
    return [p.render("p.lua") for p in info.value.problems]


def paths(source: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "p.lua")
    return [p.path for p in info.value.problems]


def lua(text: str) -> str:
    """A Lua string literal of ``text`` (anything but printable ASCII as \\u{...})."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char < "\x7f":
            out.append(char)
        else:
            out.append(f"\\u{{{ord(char):X}}}")
    return '"' + "".join(out) + '"'


# --- pipeline names ------------------------------------------------------------------


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_unicode_names_are_pipeline_names(name: str) -> None:
    source = f"return pipeline.define({{ name = {lua(name)}, {STAGE} }})"
    assert load_definition(source, "p.lua").name == name
    built = f"return pipeline.builder():name({lua(name)}):stage({{ name = 's', script = function() end }})"
    assert load_definition(built, "p.lua").name == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ('"team/app"', "contains '/'"),
        ('"/"', "contains '/'"),
        ('"a/"', "contains '/'"),
        ('"."', "is '.'"),
        ('".."', "is '..'"),
        ('" deploy"', "starts or ends with whitespace"),
        ('"deploy "', "starts or ends with whitespace"),
        ('"deploy\\n"', "starts or ends with whitespace"),
        ('"\\tdeploy"', "starts or ends with whitespace"),
        ('"deploy\\u{A0}"', "starts or ends with whitespace"),
        ('"deploy\\u{3000}"', "starts or ends with whitespace"),
        ('"deploy\\u{2028}"', "starts or ends with whitespace"),
        (f'"{"n" * (MAX_NAME + 1)}"', f"has {MAX_NAME + 1} characters"),
    ],
)
def test_the_pipeline_name_rule(name: str, why: str) -> None:
    expected = f"p.lua:1: name: {why}; {PIPELINE_NAME_RULE}"
    assert problems(f"return pipeline.define({{ name = {name}, {STAGE} }})") == [expected]
    built = (
        f"return pipeline.builder():name({name}):stage({{ name = 's', script = function() end }})"
    )
    assert expected.removeprefix("p.lua:1: ") in problems(built)[0]


@pytest.mark.parametrize("char", list(HIDDEN))
def test_no_control_format_or_bidi_character_in_a_pipeline_name(char: str) -> None:
    (line,) = problems(f'return pipeline.define({{ name = "de{char}ploy", {STAGE} }})')
    assert line.startswith(f"p.lua:1: name: contains {HIDDEN[char]} (")
    assert "at character 3" in line and line.endswith(PIPELINE_NAME_RULE)


def test_the_rule_is_the_same_function_everywhere() -> None:
    """The validator, the grants (rivet.domain.secret_rules) and the docs use this rule."""
    assert pipeline_name_problem("hello") is None
    assert pipeline_name_problem("a\u202eb") == (
        f"contains U+202E (RIGHT-TO-LEFT OVERRIDE) at character 2; {PIPELINE_NAME_RULE}"
    )
    assert name_problem("a/b") is None  # only pipeline names are URL segments
    assert name_problem("x\x1b") == (
        "contains U+001B (a control character) at character 2: names may not hold control, "
        "format or bidi characters"
    )


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


# --- tags and plugins ------------------------------------------------------------------


@pytest.mark.parametrize(
    "char",
    [
        "\\n",
        "\\27]0;t\\7",
        "\\u{9B}",
        "\\u{202E}",
        "\\u{2066}",
        "\\u{200B}",
        "\\u{FEFF}",
        "\\u{2028}",
    ],
)
def test_no_control_format_or_bidi_character_in_tags_and_plugins(char: str) -> None:
    source = (
        f'return pipeline.define({{ name = "x", runner = {{ {{ key = "o{char}s", value = "linux" }},'
        f' {{ key = "arch", value = "amd{char}" }} }}, plugins = {{ "git", "g{char}it" }}, {STAGE} }})'
    )
    lines = problems(source)
    rule = "names may not hold control, format or bidi characters"
    assert paths(source) == ["runner[1].key", "runner[2].value", "plugins[2]"], lines
    assert all(line.endswith(rule) for line in lines)
    built = (
        f'return pipeline.builder():name("x"):tag("os", "l{char}"):plugin("p{char}")'
        ':stage({ name = "s", script = function() end })'
    )
    assert paths(built) == ["runner[1].value", "plugins[1]"]


def test_ordinary_unicode_tags_and_plugins_work() -> None:
    source = (
        'return pipeline.define({ name = "x", runner = { { key = "région", value = "欧洲 1" } },'
        f' plugins = {{ "git-lfs", "ビルド" }}, {STAGE} }})'
    )
    definition = load_definition(source, "p.lua")
    assert [(t.key, t.value) for t in definition.tags] == [("région", "欧洲 1")]
    assert definition.plugins == ("git-lfs", "ビルド")


# --- stored versions ---------------------------------------------------------------------


def test_a_stored_version_runs_under_the_rules_that_accepted_it() -> None:
    """A version the server stored before the name rules (its name has '/' and a bidi
    control, a stage name ends in "\\n", a tag and a plugin hold escapes): creating it
    now is refused, but the executor (stored=True) still loads it, with the name it
    was stored under (the old rule stripped blanks), so its jobs keep running."""
    source = (
        'return pipeline.define({ name = " team/app\\u{202E} ",'
        ' inputs = { ["a\\n"] = { type = "string", default = "v" } },'
        ' runner = { { key = "os", value = "linux\\27[2J" } }, plugins = { "git\\u{9B}" },'
        ' stages = { { name = "build\\n", script = function() end } } })'
    )
    assert paths(source) == [
        "name",
        "inputs.a\n",
        "runner[1].value",
        "plugins[1]",
        "stages[1].name",
    ]
    stored = load_pipeline(source, "p.lua", stored=True).definition
    assert stored.name == "team/app\u202e"
    assert [s.name for s in stored.stages] == ["build\n"]
    assert stored.tags[0].value == "linux\x1b[2J" and stored.plugins == ("git\x9b",)


def test_stored_versions_keep_every_other_rule() -> None:
    """Leniency covers only the rules added for names: anything an older Rivet also
    refused is still refused for a stored version."""
    for source, expected in (
        (f'return pipeline.define({{ name = "", {STAGE} }})', "name: must not be empty"),
        (
            'return pipeline.define({ name = "x", stages = { { name = "a b", script = function() end } } })',
            "stages[1].name: must match",
        ),
        (
            'return pipeline.define({ name = "x", stages = { { name = "a\\n\\n", script = function() end } } })',
            "stages[1].name: must match",
        ),
        (f'return pipeline.define({{ name = "{"n" * 201}", {STAGE} }})', "at most 200 characters"),
    ):
        with pytest.raises(DefinitionError) as info:
            load_pipeline(source, "p.lua", stored=True)
        assert expected in str(info.value), (source, str(info.value))
