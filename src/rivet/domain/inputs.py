"""Typed pipeline inputs: conversion of launch values and validation against a definition.

Launch values arrive as JSON values or as strings (``--input k=v``, web forms);
strings are converted by the declared type. Every bad input is reported at once.

The rules of :mod:`rivet.limits` hold here too, for ``rivet run`` as for the server:
strings are storable text of at most ``MAX_VALUE`` characters, numbers finite within
±2^53 (the range Lua and JSON share exactly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rivet.errors import InputError
from rivet.limits import MAX_EXACT_NUMBER, MAX_VALUE, number_problem, text_problem

if TYPE_CHECKING:
    from rivet.domain.definition import InputDef, PipelineDefinition

__all__ = ["InputValue", "coerce_value", "describe_type", "resolve_inputs"]

InputValue = str | int | float | bool

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def describe_type(value: object) -> str:
    """The pipeline-language name of a value's type, for messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "nil"
    return type(value).__name__


def coerce_value(kind: str, value: object) -> InputValue:
    """Convert ``value`` to ``kind`` (string/number/bool) or raise ``ValueError`` saying why."""
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {describe_type(value)}")
        if (problem := text_problem(value)) is not None:
            raise ValueError(f"the value {problem}")
        if len(value) > MAX_VALUE:
            raise ValueError(f"a string value may have at most {MAX_VALUE} characters")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected a bool (true/false, yes/no, 1/0, on/off), got {value!r}")
        raise ValueError(f"expected a bool, got {describe_type(value)}")
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("expected a number, got bool")
        if isinstance(value, int | float):
            if (problem := number_problem(value)) is not None:
                raise ValueError(problem)
            if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_NUMBER:
                return int(value)
            return value
        if isinstance(value, str):
            text = value.strip()
            number: float
            try:
                number = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    shown = text if len(text) <= 60 else text[:60] + "…"
                    raise ValueError(f"expected a number, got {shown!r}") from None
            return coerce_value("number", number)
        raise ValueError(f"expected a number, got {describe_type(value)}")
    raise ValueError(f"unknown input type {kind!r}")


def _same(a: InputValue, b: InputValue) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def check_value(spec: InputDef, value: object) -> InputValue:
    """Coerce one value for ``spec`` and check it against the options."""
    typed = coerce_value(spec.type, value)
    if spec.options is not None and not any(_same(typed, o) for o in spec.options):
        allowed = ", ".join(_render(o) for o in spec.options)
        raise ValueError(f"{_render(typed)} is not one of the options ({allowed})")
    return typed


def _render(value: InputValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def missing_required(definition: PipelineDefinition, given: Mapping[str, object]) -> list[InputDef]:
    """Inputs that have no value, no default and are required (for CLI prompts)."""
    return [
        spec
        for spec in definition.inputs
        if spec.name not in given and spec.default is None and spec.required
    ]


def resolve_inputs(
    definition: PipelineDefinition, given: Mapping[str, object]
) -> dict[str, InputValue]:
    """Typed values for every input that has one, or ``InputError`` naming every bad input."""
    problems: dict[str, str] = {}
    resolved: dict[str, InputValue] = {}
    known = {spec.name for spec in definition.inputs}
    for name in given:
        if name not in known:
            hint = f" (known inputs: {', '.join(sorted(known))})" if known else ""
            problems[name] = f"unknown input{hint}"
    for spec in definition.inputs:
        if spec.name in given and given[spec.name] is not None:
            try:
                resolved[spec.name] = check_value(spec, given[spec.name])
            except ValueError as exc:
                problems[spec.name] = str(exc)
        elif spec.default is not None:
            resolved[spec.name] = spec.default
        elif spec.required:
            problems[spec.name] = f"required {spec.type} input is missing"
    if problems:
        raise InputError(problems)
    return resolved
