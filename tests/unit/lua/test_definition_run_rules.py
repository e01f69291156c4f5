"""The definition fields that bound how a job runs (docs/lua-reference.md, 'Leases,
retries, timeouts'): accepted values, every refusal with its field and line, and the
stored shape the server and runner read back."""

from __future__ import annotations

import random

import pytest

from rivet.domain.definition import PipelineDefinition
from rivet.domain.reliability import AttemptEnd, RetryPolicy
from rivet.errors import DefinitionError
from rivet.lua.definition import load_definition

STAGE = "stages = { { name = 's', script = function() end } }"


def define(body: str) -> str:
    return f"return pipeline.define({{ name = 'p',\n {body} }})"


def errors_of(source: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "p.lua")
    return str(info.value).splitlines()


def test_lease_timeout_and_retry_are_stored_and_read_back() -> None:
    source = define(
        "lease = 60, timeout = 3600.5,\n"
        "retry = { max = 2, on = { 'lost', 'failed', 'lost' }, backoff = 0.5 },\n"
        "stages = { { name = 's', timeout = 10, script = function() end } }"
    )
    d = load_definition(source, "p.lua")
    assert (d.lease, d.timeout) == (60.0, 3600.5)
    assert d.retry == RetryPolicy(max=2, on=("lost", "failed"), backoff=0.5)
    assert d.stages[0].timeout == 10.0
    again = PipelineDefinition.from_dict(d.to_dict())
    assert (again.lease, again.timeout, again.retry) == (d.lease, d.timeout, d.retry)
    assert again.stages[0].timeout == 10.0


def test_absent_fields_leave_the_server_defaults_and_old_rows_still_load() -> None:
    d = load_definition(define(STAGE), "p.lua")
    assert (d.lease, d.timeout, d.retry, d.stages[0].timeout) == (None, None, None, None)
    old = {"name": "p", "stages": [{"name": "s"}]}  # stored before these fields existed
    loaded = PipelineDefinition.from_dict(old)
    assert (loaded.lease, loaded.timeout, loaded.retry) == (None, None, None)


def test_retry_defaults_to_lost_with_a_five_second_backoff() -> None:
    d = load_definition(define(f"retry = {{ max = 1 }}, {STAGE}"), "p.lua")
    assert d.retry == RetryPolicy(max=1, on=("lost",), backoff=5.0)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("lease = 0.5", "p.lua:1: lease: must be between 1 and 3600 seconds, got 0.5"),
        ("lease = 'long'", "p.lua:1: lease: expected a number of seconds, got string"),
        ("lease = true", "p.lua:1: lease: expected a number of seconds, got boolean"),
        ("lease = 0/0", "p.lua:1: lease: expected a number of seconds, got number"),
        ("timeout = 1e9", "p.lua:1: timeout: must be between 1 and 604800 seconds, got 1e+09"),
        (
            "retry = 3",
            "p.lua:1: retry: expected a table { max = ..., on = ..., backoff = ... }, got number",
        ),
        (
            "retry = { 1, 2 }",
            "p.lua:1: retry: expected a table { max = ..., on = ..., backoff = ... }, got table",
        ),
        (
            "retry = { on = { 'lost' } }",
            "p.lua:1: retry.max: is required (retries after the first attempt)",
        ),
        ("retry = { max = 21 }", "p.lua:1: retry.max: must be an integer from 0 to 20, got 21"),
        ("retry = { max = 1.5 }", "p.lua:1: retry.max: must be an integer from 0 to 20, got 1.5"),
        (
            "retry = { max = 1, on = 'lost' }",
            'p.lua:1: retry.on: expected a non-empty list of "lost", "failed", "timed_out", got string',
        ),
        (
            "retry = { max = 1, on = { 'cancelled' } }",
            'p.lua:1: retry.on[1]: must be one of "lost", "failed", "timed_out", got \'cancelled\'',
        ),
        (
            "retry = { max = 1, backoff = -1 }",
            "p.lua:1: retry.backoff: must be between 0 and 3600 seconds, got -1",
        ),
        (
            "retry = { max = 1, tries = 3 }",
            "p.lua:1: retry.tries: unknown field (allowed: max, on, backoff)",
        ),
        ("leese = 3", "p.lua:1: leese: unknown field (did you mean 'lease'?"),
    ],
)
def test_refusals_name_the_field_and_line(body: str, expected: str) -> None:
    errors = errors_of(define(f"{body}, {STAGE}"))
    assert any(e.startswith(expected) for e in errors), errors


def test_a_stage_timeout_is_checked_with_the_stage_line() -> None:
    source = define("stages = {\n { name = 's',\n timeout = 0, script = function() end } }")
    assert errors_of(source) == [
        "p.lua:4: stages[1].timeout: must be between 1 and 604800 seconds, got 0"
    ]


def test_backoff_doubles_with_jitter_and_max_counts_retries() -> None:
    policy = RetryPolicy(max=2, on=("lost",), backoff=4.0)
    rng = random.Random(7)
    delays = [[policy.delay(n, rng) for _ in range(200)] for n in (1, 2, 3)]
    for n, seen in enumerate(delays, start=1):
        base = 4.0 * 2 ** (n - 1)
        assert min(seen) >= base * 0.75 and max(seen) <= base * 1.25
        assert max(seen) - min(seen) > base * 0.2  # jittered, not one value
    assert policy.applies(AttemptEnd.LOST, 1) and policy.applies(AttemptEnd.LOST, 2)
    assert not policy.applies(AttemptEnd.LOST, 3)  # the third attempt was the last
    assert not policy.applies(AttemptEnd.FAILED, 1)
    assert not policy.applies(AttemptEnd.CANCELLED, 1)
