"""Secrets end to end: stored on the real orchestrator, granted to one pipeline, claimed
by a runner agent, used in Podman; what reaches the server (logs, outputs, stage and job
errors) shows ``***`` only, and an ungranted pipeline is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from live_rivet import ADMIN, Api, tagged_pipeline

from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]
VALUE = "runner-Secret/Value+77"


def put_secret(api: Api, name: str, value: str, grants: list[str]) -> None:
    response = api.http.put(
        f"/api/secrets/{name}", headers=ADMIN, json={"value": value, "grants": grants}
    )
    assert response.status_code in (200, 201), response.text


@pytest.mark.podman
def test_granted_secret_is_used_and_redacted_before_leaving_the_runner(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    stages = """
    { name = "use", script = function()
        local v = secret.get("DEPLOY")
        log.info("value " .. v)
        process.run({ "sh", "-c", 'echo "env $TOKEN"; echo -n "$TOKEN" | base64; cat "$RIVET_SECRETS_DIR/t"',
                      secrets = { TOKEN = "DEPLOY" }, secret_files = { t = "DEPLOY" } })
        output.set("leak", v)
        error("bye " .. v)
      end },
    """
    granted = tagged_pipeline(api, tag, stages)
    ungranted = tagged_pipeline(
        api, tag, '{ name = "s", script = function() secret.get("DEPLOY") end },'
    )
    put_secret(api, "DEPLOY", VALUE, [granted])
    assert api.push_again_as_admin(granted) == 2  # version 1 predates the grant
    start_agent()

    job = api.wait_finished(api.launch(granted, admin=True), timeout=60)
    assert job["status"] == "failed"
    everything = json.dumps([job, api.logs(job["id"])])
    assert "value ***" in everything and "env ***" in everything
    assert job["outputs"] == {"leak": "***"} and "bye ***" in job["error"]
    for form in (VALUE, base64.b64encode(VALUE.encode()).decode(), VALUE[:11], VALUE[11:]):
        assert form not in everything

    refused = api.wait_finished(api.launch(ungranted), timeout=60)
    assert refused["status"] == "failed"
    assert f"secret 'DEPLOY' is not granted to pipeline '{ungranted}'" in refused["error"]


def test_a_version_older_than_the_grant_runs_without_the_secret_and_says_why(
    api: Api, tag: str, start_agent: StartAgent
) -> None:
    stages = """
    { name = "use", script = function()
        if secret.has("DEPLOY") then error("version 1 must not have it") end
        secret.get("DEPLOY")
      end },
    """
    pipeline = tagged_pipeline(api, tag, stages)  # version 1, pushed without the admin token
    put_secret(api, "DEPLOY", VALUE, [pipeline])
    assert api.push_again_as_admin(pipeline) == 2
    start_agent()

    old = api.wait_finished(api.launch(pipeline, version=1, admin=True), timeout=60)
    reason = (
        f"version 1 of pipeline '{pipeline}' predates its grant of secret 'DEPLOY' "
        "(the grant covers version 2 and later)"
    )
    assert old["status"] == "failed"
    assert f"secret.get: secret 'DEPLOY' is withheld from this job: {reason}" in old["error"]
    warned = [ln for ln in api.logs(old["id"]) if ln["level"] == "warning"]
    assert warned and reason in warned[0]["message"]

    covered = api.wait_finished(api.launch(pipeline, version=2, admin=True), timeout=60)
    assert covered["status"] == "failed"  # the stage errors on purpose: it has the secret
    assert "version 1 must not have it" in covered["error"]
