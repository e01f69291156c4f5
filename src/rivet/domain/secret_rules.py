"""What a secret name, value and grant may be; shared by the server, the CLI,
``rivet run`` and the redactor, so that all of them refuse the same things with the
same words."""

from __future__ import annotations

import re

from rivet import limits
from rivet.domain.env_names import ENV_NAME_PATTERN
from rivet.errors import RivetError
from rivet.limits import pipeline_name_problem, text_problem

__all__ = [
    "MAX_VALUE_BYTES",
    "MIN_SECRET_LENGTH",
    "SECRET_NAME",
    "SecretRuleError",
    "check_granted",
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
    """A secret name, value or grant breaks a rule; the message never holds the value.

    ``field`` is where the broken thing was (``path.name``, ``body.value``,
    ``body.grants[0]``: split on "." it is the answer's ``loc``, as the edge's own text
    check names a list item), for the API's answer: 422 ``invalid_request`` like every
    other invalid field (``orchestrator/http_errors.py``)."""

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        super().__init__(message)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")


def check_name(name: str, field: str = "name") -> str:
    if not SECRET_NAME.fullmatch(name):
        raise SecretRuleError(
            f"invalid secret name {_shown(name)}: use letters, digits and '_', starting with "
            "a letter or '_', at most 128 characters (e.g. DEPLOY_TOKEN)",
            field,
        )
    return name


def check_value(name: str, value: str, field: str = "value") -> str:
    """The value, unchanged; refuses values the redactor could not hide safely."""
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise SecretRuleError(
            f"secret '{name}': the value must have at least {MIN_SECRET_LENGTH} non-blank "
            "characters (shorter values cannot be redacted from logs without masking "
            "ordinary text)",
            field,
        )
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise SecretRuleError(
            f"secret '{name}': the value is larger than {MAX_VALUE_BYTES // 1024} KiB", field
        )
    if "\0" in value:
        raise SecretRuleError(
            f"secret '{name}': the value contains a NUL character (it could not be passed "
            "as an environment variable)",
            field,
        )
    if (problem := text_problem(value)) is not None:
        raise SecretRuleError(f"secret '{name}': the value {problem}", field)
    return value


def check_pipeline(pipeline: str, field: str = "pipeline") -> str:
    """A pipeline name to grant a secret to: a name a pipeline can have (the
    pipeline-name rule of :mod:`rivet.limits`), since a grant to any other could
    never cover a version."""
    problem = pipeline_name_problem(pipeline)
    if problem is None:
        problem = text_problem(pipeline)
    if problem is not None:
        raise SecretRuleError(
            f"invalid pipeline name {_shown(pipeline)} for a grant: {problem}", field
        )
    return pipeline


def check_granted(pipeline: str, field: str = "pipeline") -> str:
    """A pipeline name to revoke a grant from: any name a grant can be stored under,
    including those granted before the pipeline-name rule existed, so that such a
    grant can still be removed."""
    if not pipeline or len(pipeline) > MAX_PIPELINE_NAME:
        raise SecretRuleError(
            f"invalid pipeline name {_shown(pipeline)}: a grant's pipeline name has 1 to "
            f"{MAX_PIPELINE_NAME} characters",
            field,
        )
    return pipeline
