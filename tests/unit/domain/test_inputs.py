"""Launch-time input conversion and validation (docs/lua-reference.md, 'Inputs')."""

from __future__ import annotations

import pytest

from rivet.domain.definition import InputDef, PipelineDefinition, StageDef
from rivet.domain.inputs import coerce_value, missing_required, resolve_inputs
from rivet.errors import InputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        ("On", True),
        ("false", False),
        ("no", False),
        ("0", False),
        ("OFF", False),
    ],
)
def test_bool_strings(text: str, expected: bool) -> None:
    assert coerce_value("bool", text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4", 4), (" 4 ", 4), ("4.0", 4), ("2.5", 2.5), ("-3", -3), ("1e3", 1000), (7, 7), (2.0, 2)],
)
def test_numbers(value: object, expected: float) -> None:
    result = coerce_value("number", value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "four", "", True, float("nan")])
def test_bad_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        coerce_value("number", value)


def test_string_accepts_only_strings() -> None:
    assert coerce_value("string", "x") == "x"
    with pytest.raises(ValueError, match="expected a string, got number"):
        coerce_value("string", 3)


def test_bad_bool() -> None:
    with pytest.raises(ValueError, match="expected a bool"):
        coerce_value("bool", "maybe")


DEF = PipelineDefinition(
    name="p",
    stages=(StageDef("s"),),
    inputs=(
        InputDef("image", "string", required=True),
        InputDef("jobs", "number", default=4, options=(1, 2, 4, 8), required=False),
        InputDef("verbose", "bool", default=False, required=False),
        InputDef("note", "string", required=False),
    ),
)


def test_defaults_and_conversion() -> None:
    assert resolve_inputs(DEF, {"image": "x", "jobs": "8", "verbose": "yes"}) == {
        "image": "x",
        "jobs": 8,
        "verbose": True,
    }
    assert resolve_inputs(DEF, {"image": "x"}) == {"image": "x", "jobs": 4, "verbose": False}


def test_one_error_names_every_bad_input() -> None:
    with pytest.raises(InputError) as info:
        resolve_inputs(DEF, {"jobs": "3", "verbose": "maybe", "colour": "red"})
    assert info.value.problems == {
        "colour": "unknown input (known inputs: image, jobs, note, verbose)",
        "image": "required string input is missing",
        "jobs": "3 is not one of the options (1, 2, 4, 8)",
        "verbose": "expected a bool (true/false, yes/no, 1/0, on/off), got 'maybe'",
    }
    message = str(info.value)
    for name in ("colour", "image", "jobs", "verbose"):
        assert f"{name}:" in message


def test_json_values_are_type_checked() -> None:
    with pytest.raises(InputError, match="jobs: expected a number, got bool"):
        resolve_inputs(DEF, {"image": "x", "jobs": True})


def test_missing_required_for_prompts() -> None:
    assert [i.name for i in missing_required(DEF, {})] == ["image"]
    assert missing_required(DEF, {"image": "x"}) == []


@pytest.mark.parametrize(
    "value",
    [1e30, -1e30, 2**53 + 1, -(2**53) - 1, 10**30, "1e30", "9007199254740993", "9" * 5000],
)
def test_numbers_beyond_2_to_the_53_are_refused_saying_so(value: object) -> None:
    """JSON, PostgreSQL's jsonb and Lua share exact integers up to 2^53 only: jsonb
    turns 1e30 into a 31-digit integer, which the runner's Lua cannot hold."""
    with pytest.raises(ValueError, match=r"outside the range .* 2\^53|finite"):
        coerce_value("number", value)


@pytest.mark.parametrize(("value", "expected"), [(2**53, 2**53), (-(2**53), -(2**53)), (0.1, 0.1)])
def test_numbers_up_to_2_to_the_53_pass_exactly(value: float, expected: float) -> None:
    assert coerce_value("number", value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [("a\x00b", "NUL"), ("\ud800", "surrogate"), ("x" * 65537, "at most 65536")],
)
def test_strings_that_cannot_be_stored_are_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        coerce_value("string", value)
    assert coerce_value("string", "x" * 65536) == "x" * 65536


def test_rivet_run_applies_the_same_rules() -> None:
    """``rivet run`` resolves inputs with resolve_inputs, like the server."""
    definition = PipelineDefinition(
        name="p",
        stages=(StageDef("s"),),
        inputs=(InputDef("n", "number", required=True), InputDef("s", "string", required=False)),
    )
    with pytest.raises(InputError) as caught:
        resolve_inputs(definition, {"n": "1e30", "s": "bad\x00"})
    assert set(caught.value.problems) == {"n", "s"}
    assert "2^53" in caught.value.problems["n"] and "NUL" in caught.value.problems["s"]
