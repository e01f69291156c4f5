"""Launch inputs on the command line: ``--input k=v`` parsing and interactive prompts.

Shared by ``rivet run`` and ``rivet job launch``. Values stay strings here; the domain
(:func:`rivet.domain.inputs.resolve_inputs`, locally or on the server) converts them
by type, so the CLI accepts exactly what the API accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich.console import Console
from rich.text import Text

from rivet.cli.common import UsageProblem
from rivet.cli.terminal import safe, visible
from rivet.domain.definition import InputDef, PipelineDefinition
from rivet.domain.inputs import InputValue, check_value, missing_required, resolve_inputs
from rivet.errors import InputError

__all__ = [
    "collect_inputs",
    "parse_input_args",
    "parse_pairs",
    "prompt_input",
    "render_value",
]

Reader = Callable[[str], str]


def parse_pairs(items: Sequence[str], flag: str, example: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; a missing ``=``, an empty name
    or a name given twice is a usage error naming the offending argument."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageProblem(f"{flag} {item!r}: expected NAME=VALUE (e.g. {flag} {example})")
        if name in values:
            raise UsageProblem(f"{flag} {name}: given twice")
        values[name] = value
    return values


def parse_input_args(items: Sequence[str]) -> dict[str, str]:
    """``--input`` values; see :func:`parse_pairs`."""
    return parse_pairs(items, "--input", "branch=main")


def render_value(value: InputValue | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def collect_inputs(
    definition: PipelineDefinition,
    given: Mapping[str, object],
    *,
    interactive: bool,
    console: Console,
    reader: Reader | None = None,
) -> dict[str, object]:
    """``given`` plus a value for every missing required input.

    Interactive: values that were given are checked first (a typo fails at once, naming
    every bad input), then each missing input is asked for, re-asking until the value is
    valid. Otherwise: an ``InputError`` naming every bad and missing input, with a hint.
    """
    missing = missing_required(definition, given)
    if not missing:
        return dict(given)
    try:
        resolve_inputs(definition, given)
    except InputError as exc:
        missing_names = {spec.name for spec in missing}
        others = {k: v for k, v in exc.problems.items() if k not in missing_names}
        if others or not interactive:
            raise InputError(exc.problems) from None
    collected: dict[str, object] = dict(given)
    for spec in missing:
        collected[spec.name] = prompt_input(spec, console, reader or _reader(console))
    return collected


def _reader(console: Console) -> Reader:
    def read(prompt: str) -> str:
        return console.input(prompt, markup=False)

    return read


def _describe(spec: InputDef) -> Text:
    # Name, type and description come from the pipeline file (perhaps a server's).
    text = Text.assemble(("input ", "dim"), (visible(spec.name), "bold"))
    text.append(f" ({visible(spec.type)}, required)", style="dim")
    if spec.description:
        text.append(f": {visible(spec.description)}")
    return text


def prompt_input(spec: InputDef, console: Console, reader: Reader) -> InputValue:
    """Ask for one input on the terminal until the answer is valid for its type/options."""
    console.print(_describe(spec))
    if spec.options is not None:
        console.print(safe("  options: " + ", ".join(render_value(o) for o in spec.options), "dim"))
    if spec.default is not None:
        console.print(safe(f"  default: {render_value(spec.default)}", "dim"))
    hint = {"bool": " [yes/no]", "number": " (number)"}.get(spec.type, "")
    while True:
        try:
            answer = reader(f"{visible(spec.name)}{hint}: ")
        except EOFError:
            raise InputError({spec.name: "no value given (end of input)"}) from None
        if not answer.strip():
            if spec.default is not None:
                return spec.default
            if spec.type != "string" or spec.options is None or "" not in spec.options:
                console.print(Text("  a value is required", style="yellow"))
                continue
        try:
            return check_value(spec, answer if spec.type == "string" else answer.strip())
        except ValueError as exc:
            console.print(safe(f"  invalid: {exc}; try again", "yellow"))
