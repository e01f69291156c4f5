"""Every name rule is a whole-string match: a valid name followed (or preceded) by
"\\n", "\\r" or NUL is refused, for each kind of name Rivet checks (pipeline, stage,
input, secret, grant, environment variable, tag and plugin, runner, header, secret
file; image references are parsed, not matched, and their surrounding blanks are
stripped by design). And the class is closed in the code: no rule in ``src/rivet`` is
applied with ``re.match``/``.match`` or anchored with ``$`` (which also matches before
a final "\\n"); they use ``fullmatch`` (or ``\\Z``)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rivet.domain.env_names import EnvNameError, check_env_name, is_env_name
from rivet.domain.secret_rules import SecretRuleError, check_name, check_pipeline
from rivet.engine.job_secrets import _FILE_NAME
from rivet.engine.modules.http_module.options import _TOKEN
from rivet.errors import DefinitionError
from rivet.limits import name_problem, pipeline_name_problem
from rivet.lua.definition import load_definition
from rivet.protocol import RegisterRequest

SRC = Path(__file__).resolve().parents[2] / "src" / "rivet"
# What may follow a valid name and must make it invalid.
TAILS = ["\n", "\r", "\0", "\r\n", "\n\n"]
STAGE = "stages = { { name = 's', script = function() end } }"


def lua(text: str) -> str:
    return '"' + "".join(f"\\{ord(c)}" if not c.isalnum() else c for c in text) + '"'


def refused_definition(source: str) -> bool:
    try:
        load_definition(source, "p.lua")
    except DefinitionError:
        return True
    return False


def pipeline(name: str) -> bool:
    return refused_definition(f"return pipeline.define({{ name = {lua(name)}, {STAGE} }})")


def stage(name: str) -> bool:
    return refused_definition(
        f'return pipeline.define({{ name = "x", stages = {{ {{ name = {lua(name)},'
        " script = function() end } } })"
    )


def input_(name: str) -> bool:
    return refused_definition(
        f'return pipeline.define({{ name = "x", inputs = {{ [{lua(name)}] = {{ type = "string" }} }},'
        f" {STAGE} }})"
    )


def tag(name: str) -> bool:
    return refused_definition(
        f'return pipeline.define({{ name = "x", runner = {{ {{ key = {lua(name)}, value = "v" }} }},'
        f" {STAGE} }})"
    )


def plugin(name: str) -> bool:
    return refused_definition(
        f'return pipeline.define({{ name = "x", plugins = {{ {lua(name)} }}, {STAGE} }})'
    )


def raises(check: Callable[[str], object], error: type[Exception]) -> Callable[[str], bool]:
    def refused(name: str) -> bool:
        try:
            check(name)
        except error:
            return True
        return False

    return refused


def runner(name: str) -> bool:
    try:
        RegisterRequest(registration_token="t", name=name)
    except ValueError:
        return True
    return False


# kind -> (a valid name, "is it refused?")
KINDS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "pipeline": ("deploy", pipeline),
    "pipeline rule": ("deploy", lambda n: pipeline_name_problem(n) is not None),
    "stage": ("build", stage),
    "input": ("target", input_),
    "tag": ("os", tag),
    "plugin": ("git", plugin),
    "name rule": ("git", lambda n: name_problem(n) is not None),
    "runner": ("runner-1", runner),
    "secret": ("DEPLOY_TOKEN", raises(check_name, SecretRuleError)),
    "grant": ("deploy", raises(check_pipeline, SecretRuleError)),
    "env": ("PATH", raises(lambda n: check_env_name(n, "env"), EnvNameError)),
    "env test": ("PATH", lambda n: not is_env_name(n)),
    "header": ("X-Trace", lambda n: _TOKEN.fullmatch(n) is None),
    "secret file": ("token.txt", lambda n: _FILE_NAME.fullmatch(n) is None),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_valid_name_is_accepted(kind: str) -> None:
    valid, refused = KINDS[kind]
    assert not refused(valid), kind


@pytest.mark.parametrize("tail", TAILS, ids=repr)
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_trailing_line_break_or_nul_is_refused(kind: str, tail: str) -> None:
    valid, refused = KINDS[kind]
    assert refused(valid + tail), (kind, valid + tail)
    assert refused(tail + valid), (kind, tail + valid)


# --- the class, in the code -------------------------------------------------------------

REGEX_FUNCTIONS = {"compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall"}


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _is_re(node: ast.expr, name: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == "re"
    )


def _dollar_anchored(pattern: str) -> bool:
    """A "$" that is not escaped and not in a character class."""
    return re.search(r"(?<!\\)\$", re.sub(r"\[(?:\\.|[^\]])*\]", "", pattern)) is not None


def scan(tree: ast.Module, name: str) -> list[str]:
    """Where ``tree`` applies a rule with a prefix match or anchors one with "$"."""
    found = []
    compiled: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _is_re(node.value.func, "compile")
        ):
            compiled |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{name}:{node.lineno}"
        func = node.func
        if _is_re(func, "match"):
            found.append(f"{where}: re.match (a prefix match: use re.fullmatch)")
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "match"
            and isinstance(func.value, ast.Name)
            and func.value.id in compiled
        ):
            found.append(f"{where}: {func.value.id}.match (use .fullmatch)")
        if any(_is_re(func, f) for f in REGEX_FUNCTIONS) and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _dollar_anchored(first.value)
            ):
                found.append(f"{where}: pattern {first.value!r} uses '$' (use \\Z)")
    return found


def test_no_rule_is_applied_with_match_or_anchored_with_dollar() -> None:
    found = [f for path, tree in modules() for f in scan(tree, str(path.relative_to(SRC)))]
    assert found == []


def test_the_code_scan_finds_what_it_looks_for() -> None:
    """The scan, on code that breaks the rule each way, finds each break."""
    sample = (
        "import re\n"
        "NAME = re.compile(r'^[a-z]+$')\n"
        "def f(x):\n"
        "    return NAME.match(x) or re.match('[a-z]+', x) or re.search('[$]\\\\$', x)\n"
    )
    assert scan(ast.parse(sample), "m.py") == [
        "m.py:2: pattern '^[a-z]+$' uses '$' (use \\Z)",
        "m.py:4: NAME.match (use .fullmatch)",
        "m.py:4: re.match (a prefix match: use re.fullmatch)",
    ]
