"""What a secret name, value and grant may be; shared by the server, the CLI,
``rivet run`` and the redactor, so that all of them refuse the same things with the
same words."""

from __future__ import annotations

import re

from rivet import limits
from rivet.domain.env_names import ENV_NAME_PATTERN
from rivet.errors import RivetError
from rivet.limits import text_problem

__all__ = [
    "MAX_VALUE_BYTES",
    "MIN_SECRET_LENGTH",
    "SECRET_NAME",
    "SecretRuleError",
    "check_name",
    "check_pipeline",
    "check_value",
]

# Names double as the suffix of RIVET_SECRET_<NAME> variables: the environment-name
# rule (rivet.domain.env_names), at most 128 characters.
MAX_NAME = 128
SECRET_NAME = re.compile(rf"(?={ENV_NAME_PATTERN}\Z).{{1,{MAX_NAME}}}", re.DOTALL)
MAX_VALUE_BYTES = 64 * 1024
MAX_PIPELINE_NAME = limits.MAX_NAME  # the pipelines' name column
# Shorter values would mask ordinary words and digits all over every log, so the
# redactor ignores them and nothing may store them as a secret.
MIN_SECRET_LENGTH = 4


class SecretRuleError(RivetError):
    """A secret name, value or grant breaks a rule; the message never holds the value."""


def check_name(name: str) -> str:
    if not SECRET_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "…"
        raise SecretRuleError(
            f"invalid secret name {shown!r}: use letters, digits and '_', starting with a "
            "letter or '_', at most 128 characters (e.g. DEPLOY_TOKEN)"
        )
    return name


def check_value(name: str, value: str) -> str:
    """The value, unchanged; refuses values the redactor could not hide safely."""
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise SecretRuleError(
            f"secret '{name}': the value must have at least {MIN_SECRET_LENGTH} non-blank "
            "characters (shorter values cannot be redacted from logs without masking "
            "ordinary text)"
        )
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise SecretRuleError(
            f"secret '{name}': the value is larger than {MAX_VALUE_BYTES // 1024} KiB"
        )
    if "\0" in value:
        raise SecretRuleError(
            f"secret '{name}': the value contains a NUL character (it could not be passed "
            "as an environment variable)"
        )
    if (problem := text_problem(value)) is not None:
        raise SecretRuleError(f"secret '{name}': the value {problem}")
    return value


def check_pipeline(pipeline: str) -> str:
    cleaned = pipeline.strip()
    if (
        not cleaned
        or len(cleaned) > MAX_PIPELINE_NAME
        or any(ord(c) < 32 for c in cleaned)
        or text_problem(cleaned) is not None
    ):
        raise SecretRuleError(
            f"invalid pipeline name {pipeline[:60]!r} for a grant: a non-empty name of at "
            f"most {MAX_PIPELINE_NAME} characters of valid text without control characters"
        )
    return cleaned
