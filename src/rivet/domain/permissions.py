"""Who may do what to a pipeline or a secret, below the role level: the rules alone,
on values (no storage), so every caller decides the same way.

Subjects. An access-list entry names who it is for:

- ``user:<name>`` matches the principal whose actor is exactly that string;
- ``api-key:<name>`` likewise for an API key;
- ``role:<role>`` (pipelines only) matches every principal whose role is at least
  ``<role>`` (``role:viewer`` is everyone, ``role:user`` every user and admin);
- ``pipeline:<name>`` (pipelines only) matches the jobs of pipeline ``<name>`` when
  they download this pipeline's artifacts (they act with the viewer role, so only
  ``view`` matters; ``orchestrator/services/artifacts.py``).

Pipeline levels are cumulative: ``view`` < ``launch`` (also launch and cancel its
jobs) < ``push`` (also push new versions). A principal's level on a pipeline is
:func:`pipeline_level`: admins and the owner push; otherwise the highest matching
entry, capped by the role (a viewer never does more than view) and by an API key's
pipeline narrowing (``Principal.pipelines``: nothing on any other pipeline).

Secret levels are cumulative too: ``use`` (launch pipelines granted it; versions the
holder pushes receive it) < ``grant`` (also grant it to and revoke it from
pipelines) < ``write`` (also set its value and delete it). Admins have every level on
every secret; nobody else has any without an entry. Secret entries name users or API
keys only: whether a pushed version receives a secret is decided when a job is
claimed, from the actor recorded with the version, which carries no role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

from rivet.domain.principals import Principal, Role
from rivet.errors import InvalidRequest
from rivet.limits import name_problem

__all__ = [
    "DEFAULT_PIPELINE_ACCESS",
    "PipelineLevel",
    "SecretLevel",
    "check_subject",
    "matches",
    "narrowed_out",
    "pipeline_level",
    "secret_level",
]


class PipelineLevel(StrEnum):
    """What a principal may do with a pipeline, weakest first; each includes the ones
    before it."""

    NONE = "none"
    VIEW = "view"
    LAUNCH = "launch"
    PUSH = "push"

    def at_least(self, other: PipelineLevel) -> bool:
        order = list(PipelineLevel)
        return order.index(self) >= order.index(other)


class SecretLevel(StrEnum):
    """What a principal may do with a secret, weakest first (cumulative)."""

    USE = "use"
    GRANT = "grant"
    WRITE = "write"

    def at_least(self, other: SecretLevel) -> bool:
        order = list(SecretLevel)
        return order.index(self) >= order.index(other)


# Every new pipeline starts with these entries: everyone may view, every user launch.
DEFAULT_PIPELINE_ACCESS: Mapping[str, PipelineLevel] = {
    "role:viewer": PipelineLevel.VIEW,
    "role:user": PipelineLevel.LAUNCH,
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_ROLE_CAP = {
    Role.VIEWER: PipelineLevel.VIEW,
    Role.USER: PipelineLevel.PUSH,
    Role.ADMIN: PipelineLevel.PUSH,
}


def check_subject(subject: str, field: str, *, roles: bool = True) -> str:
    """``subject`` if it is a valid entry (see the module), else ``InvalidRequest``
    naming ``field`` and the accepted forms."""
    kind, sep, name = subject.partition(":")
    forms = "user:<name>, api-key:<name>" + (
        " or role:viewer|user|admin (or pipeline:<name>)" if roles else ""
    )
    if sep and kind in ("user", "api-key") and _NAME.fullmatch(name):
        return subject
    if sep and roles and kind == "pipeline" and 0 < len(name) <= 193 and not name_problem(name):
        return subject
    if sep and roles and kind == "role" and name in {r.value for r in Role}:
        return subject
    raise InvalidRequest([(field, f"not an access entry: use {forms}")])


def matches(principal: Principal, subject: str) -> bool:
    """Does the entry ``subject`` apply to ``principal``?"""
    kind, _, name = subject.partition(":")
    if kind == "role":
        try:
            return principal.role.at_least(Role(name))
        except ValueError:
            return False  # a stored entry for a role that no longer exists
    return principal.actor == subject


def narrowed_out(principal: Principal, pipeline: str) -> bool:
    """True when ``principal`` is an API key narrowed to other pipelines."""
    return principal.pipelines is not None and pipeline not in principal.pipelines


def pipeline_level(
    principal: Principal,
    pipeline: str,
    owner: str | None,
    entries: Mapping[str, str],
) -> PipelineLevel:
    """The principal's level on ``pipeline`` (owned by ``owner``, with the access list
    ``entries``: subject -> level name). ``owner`` None: the pipeline does not exist
    yet, and whoever may push anything may create it (a user, not a viewer)."""
    if narrowed_out(principal, pipeline):
        return PipelineLevel.NONE
    if principal.is_admin:
        return PipelineLevel.PUSH
    if owner is None or principal.actor == owner:
        best = PipelineLevel.PUSH
    else:
        best = PipelineLevel.NONE
        for subject, level in entries.items():
            if matches(principal, subject):
                found = _pipeline_level(level)
                if found.at_least(best):
                    best = found
    cap = _ROLE_CAP[principal.role]
    return best if cap.at_least(best) else cap


def _pipeline_level(name: str) -> PipelineLevel:
    try:
        return PipelineLevel(name)
    except ValueError:
        return PipelineLevel.NONE  # an unknown stored level grants nothing


def secret_level(
    actor: str, is_admin: bool, entries: Iterable[tuple[str, str]]
) -> SecretLevel | None:
    """The highest level ``actor`` holds on a secret whose entries are ``entries``
    (subject, level); admins: ``write``; None: no permission at all."""
    if is_admin:
        return SecretLevel.WRITE
    best: SecretLevel | None = None
    for subject, level in entries:
        if subject != actor or level not in _SECRET_LEVELS:
            continue
        found = SecretLevel(level)
        if best is None or found.at_least(best):
            best = found
    return best


_SECRET_LEVELS = frozenset(s.value for s in SecretLevel)
