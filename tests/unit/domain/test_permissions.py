"""The permission rules on values (rivet.domain.permissions), hostile cases included."""

from __future__ import annotations

import pytest

from rivet.domain.permissions import (
    DEFAULT_PIPELINE_ACCESS,
    PipelineLevel,
    SecretLevel,
    check_subject,
    pipeline_level,
    secret_level,
)
from rivet.domain.principals import ADMIN_TOKEN, ANONYMOUS_PRINCIPAL, Principal, Role
from rivet.errors import InvalidRequest

ANN = Principal("user:ann", "user 'ann'", Role.USER)
BOB = Principal("user:bob", "user 'bob'", Role.USER)
VIEWER = Principal("user:vic", "user 'vic'", Role.VIEWER)
KEY_A = Principal("api-key:ci", "API key 'ci'", Role.USER, frozenset({"a"}))
DEFAULTS = {k: v.value for k, v in DEFAULT_PIPELINE_ACCESS.items()}


def level(who: Principal, entries: dict[str, str], owner: str = "user:ann", name: str = "a"):
    return pipeline_level(who, name, owner, entries)


def test_defaults_every_user_views_and_launches_only_owner_and_admins_push() -> None:
    assert level(ANN, DEFAULTS) is PipelineLevel.PUSH  # the owner
    assert level(BOB, DEFAULTS) is PipelineLevel.LAUNCH
    assert level(ANONYMOUS_PRINCIPAL, DEFAULTS) is PipelineLevel.LAUNCH
    assert level(VIEWER, DEFAULTS) is PipelineLevel.VIEW
    assert level(ADMIN_TOKEN, DEFAULTS) is PipelineLevel.PUSH


def test_entries_by_name_and_by_role() -> None:
    by_name = {**DEFAULTS, "user:bob": "push"}
    assert level(BOB, by_name) is PipelineLevel.PUSH
    assert level(Principal("user:bobby", "u", Role.USER), by_name) is PipelineLevel.LAUNCH
    # role entries match every role at least that strong; the highest entry wins
    restricted = {"role:admin": "view", "user:bob": "view"}
    assert level(BOB, restricted) is PipelineLevel.VIEW
    assert level(Principal("user:carl", "u", Role.USER), restricted) is PipelineLevel.NONE
    assert level(BOB, {"role:user": "push", "user:bob": "view"}) is PipelineLevel.PUSH


def test_a_viewer_never_does_more_than_view_even_when_listed() -> None:
    assert level(VIEWER, {"user:vic": "push"}) is PipelineLevel.VIEW
    assert level(VIEWER, {}, owner="user:vic") is PipelineLevel.VIEW  # even as owner
    assert pipeline_level(VIEWER, "new", None, {}) is PipelineLevel.VIEW  # cannot create


def test_an_api_key_narrowed_to_a_pipeline_has_nothing_on_others() -> None:
    assert level(KEY_A, {"api-key:ci": "push"}, name="a") is PipelineLevel.PUSH
    # Hostile: listed by name and by role on B, owner of B, creating C: all refused.
    assert level(KEY_A, {"api-key:ci": "push", "role:user": "push"}, name="b") is (
        PipelineLevel.NONE
    )
    assert level(KEY_A, {}, owner="api-key:ci", name="b") is PipelineLevel.NONE
    assert pipeline_level(KEY_A, "c", None, {}) is PipelineLevel.NONE
    narrowed_admin = Principal("api-key:root", "k", Role.ADMIN, frozenset({"a"}))
    assert level(narrowed_admin, {}, name="b") is PipelineLevel.NONE


def test_unknown_stored_levels_and_roles_grant_nothing() -> None:
    assert level(BOB, {"user:bob": "everything", "role:superuser": "push"}) is (PipelineLevel.NONE)


@pytest.mark.parametrize(
    "subject", ["user:ann", "api-key:ci-bot", "role:viewer", "role:admin", "user:a.b@c"]
)
def test_valid_subjects(subject: str) -> None:
    assert check_subject(subject, "body.subject") == subject


@pytest.mark.parametrize(
    "subject", ["ann", "user:", "role:root", "group:dev", "user:a b", "user:\u202eevil", "x" * 300]
)
def test_invalid_subjects_name_the_field_and_the_forms(subject: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_subject(subject, "body.subject")
    assert caught.value.problems[0][0] == "body.subject"
    assert "user:<name>, api-key:<name> or role:" in caught.value.problems[0][1]


def test_secret_entries_name_users_or_keys_only() -> None:
    with pytest.raises(InvalidRequest):
        check_subject("role:user", "body.subject", roles=False)


def test_secret_levels() -> None:
    entries = [("user:ann", "grant"), ("user:bob", "use"), ("user:eve", "bogus")]
    assert secret_level("user:ann", False, entries) is SecretLevel.GRANT
    assert secret_level("user:bob", False, entries) is SecretLevel.USE
    assert secret_level("user:eve", False, entries) is None
    assert secret_level("user:carl", False, entries) is None
    assert secret_level("admin", True, []) is SecretLevel.WRITE
    assert SecretLevel.WRITE.at_least(SecretLevel.GRANT)
    assert not SecretLevel.USE.at_least(SecretLevel.GRANT)
