"""Issue 14's everyday commands against a real ``rivet server`` process, read as a user
reads them: ``pipeline delete|restore`` (archive), ``pipeline list`` paging,
``job rerun``, ``runner remove``, and the ``waiting`` explanation of ``job show``."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_rivet import live_server, server_settings
from typer.testing import CliRunner, Result

from rivet.cli import common
from rivet.cli.main import app

Cli = Callable[..., Result]


def pipeline_source(name: str, tags: str = "", inputs: str = "") -> str:
    """``tags``: ``k = "v", …`` as a pipeline's required runner tags."""
    pairs = re.findall(r'(\w+) = "([^"]*)"', tags)
    runner = ", ".join(f'{{ key = "{k}", value = "{v}" }}' for k, v in pairs)
    return f"""
return pipeline.define({{
  name = "{name}",
  {f"runner = {{ {runner} }}," if runner else ""}
  {f"inputs = {{ {inputs} }}," if inputs else ""}
  stages = {{ {{ name = "build", script = function() log.info("hi") end }} }},
}})
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(cli: Cli, pipeline_file: Callable[..., Path], name: str, **parts: str) -> None:
    made = cli(["pipeline", "create", str(pipeline_file(pipeline_source(name, **parts)))])
    assert made.exit_code == 0, made.output


def job_id_in(text: str) -> str:
    found = re.search(r"launched job ([0-9a-f]{32})", text)
    assert found, text
    return found.group(1)


# --- pipeline delete / restore -------------------------------------------------------


def test_delete_archives_history_stays_launch_and_push_refused_restore_undoes(
    cli: Cli, rivet_server: Any, pipeline_file: Callable[..., Path], played_runner: Any
) -> None:
    lane = unique("lane")
    name = unique("old-build")
    create(cli, pipeline_file, name, tags=f'lane = "{lane}"')
    launched = cli(["job", "launch", name])
    job = job_id_in(launched.stdout)
    runner = played_runner(lane)
    runner.claim()
    runner.log(1, "build", "from before the archive")
    runner.complete("succeeded")

    # No terminal: --yes is required, and nothing changes without it.
    refused = cli(["pipeline", "delete", name])
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"error: archiving pipeline {name} needs confirmation and stdin is not a terminal: "
        "pass --yes to confirm\n"
    )
    assert name in cli(["pipeline", "list"]).stdout

    deleted = cli(["pipeline", "delete", name, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == (
        f"archived pipeline {name} (restore it with: rivet pipeline restore {name})\n"
    )
    assert name not in cli(["pipeline", "list"]).stdout
    every = cli(["pipeline", "list", "--all"]).stdout
    assert re.search(rf"^{name}\s+│ archived\s", every, re.MULTILINE), every
    only = cli(["pipeline", "list", "--archived", "--json"])
    assert [p["name"] for p in json.loads(only.stdout)["pipelines"]] == [name]

    # History stays readable.
    assert "from before the archive" in cli(["job", "logs", job]).stdout
    assert cli(["job", "show", job]).exit_code == 0
    shown = cli(["pipeline", "show", name])
    assert "archived " in shown.stdout and f"rivet pipeline restore {name}" in shown.stdout
    assert cli(["pipeline", "versions", name]).exit_code == 0

    # New launches, reruns and new versions: refused, naming the pipeline.
    for args in (["job", "launch", name], ["job", "rerun", job]):
        again = cli(args)
        assert again.exit_code == 1, again.output
        assert again.stderr.startswith(f"error: pipeline '{name}' is archived (since ")
        assert "it takes no new jobs" in again.stderr
        assert f"restore it with: rivet pipeline restore {name}" in again.stderr
    pushed = cli(["pipeline", "create", str(pipeline_file(pipeline_source(name)))])
    assert pushed.exit_code == 1
    assert f"pipeline '{name}' is archived" in pushed.stderr
    assert "it takes no new versions" in pushed.stderr
    api = httpx.post(f"{rivet_server.url}/api/jobs", json={"pipeline": name}, timeout=30)
    assert api.status_code == 409 and api.json()["error"]["code"] == "conflict"

    twice = cli(["pipeline", "delete", name, "--yes"])
    assert twice.exit_code == 0 and "is already archived" in twice.stdout

    restored = cli(["pipeline", "restore", name])
    assert restored.exit_code == 0
    assert restored.stdout == f"pipeline {name} is active (version 1)\n"
    assert name in cli(["pipeline", "list"]).stdout
    assert cli(["job", "launch", name]).exit_code == 0


def test_delete_asks_on_a_terminal(
    cli: Cli, pipeline_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("asked")
    create(cli, pipeline_file, name)
    monkeypatch.setattr(common, "is_interactive", lambda: True)
    declined = cli(["pipeline", "delete", name], input="n\n")
    assert declined.exit_code == 1
    assert f"Archive pipeline {name} (1 version(s))?" in declined.stderr
    assert "nothing changed" in declined.stderr
    assert name in cli(["pipeline", "list"]).stdout
    accepted = cli(["pipeline", "delete", name], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert name not in cli(["pipeline", "list"]).stdout


# --- pipeline list paging --------------------------------------------------------------


def test_pipeline_list_pages_with_a_hint_and_json_equal_to_the_api(
    cli: Cli, rivet_server: Any, pipeline_file: Callable[..., Path]
) -> None:
    for index in range(3):
        create(cli, pipeline_file, f"page-{index}-{uuid.uuid4().hex[:4]}")
    api = httpx.get(f"{rivet_server.url}/api/pipelines", params={"limit": 2}, timeout=30).json()
    total = api["total"]
    assert total >= 3 and len(api["pipelines"]) == 2 and api["offset"] == 0

    first = cli(["pipeline", "list", "--limit", "2"])
    assert first.exit_code == 0
    assert first.stdout.splitlines()[-1] == (
        f"pipelines 1-2 of {total}; next page: rivet pipeline list --offset 2 --limit 2"
    )
    names = [p["name"] for p in api["pipelines"]]
    assert all(n in first.stdout for n in names)

    last = cli(["pipeline", "list", "--limit", "2", "--offset", str(total - 1)])
    assert last.stdout.splitlines()[-1] == f"pipelines {total}-{total} of {total}"

    shaped = cli(["pipeline", "list", "--limit", "2", "--json"])
    assert json.loads(shaped.stdout) == api
    beyond = cli(["pipeline", "list", "--offset", str(total + 5)])
    assert beyond.stdout == f"no pipelines after the first {total}\n"

    bad = httpx.get(f"{rivet_server.url}/api/pipelines", params={"limit": 0}, timeout=30)
    assert bad.status_code == 422


# --- job rerun -------------------------------------------------------------------------


def test_rerun_launches_a_new_job_with_the_same_version_and_inputs(
    cli: Cli, rivet_server: Any, pipeline_file: Callable[..., Path]
) -> None:
    name = unique("rerun")
    inputs = 'who = { type = "string", required = true }, n = { type = "number", default = 2 }'
    create(cli, pipeline_file, name, inputs=inputs, tags='lane = "nobody-rerun"')
    first = job_id_in(cli(["job", "launch", name, "-i", "who=ada", "-i", "n=5"]).stdout)
    create(cli, pipeline_file, name, inputs=inputs, tags='lane = "nobody-rerun"')  # version 2

    rerun = cli(["job", "rerun", first[:8]])
    assert rerun.exit_code == 0, rerun.output
    second = job_id_in(rerun.stdout)
    assert second != first
    assert f"(rerun of {first[:8]}: pipeline {name} version 1)" in rerun.stdout
    job = httpx.get(f"{rivet_server.url}/api/jobs/{second}", timeout=30).json()
    assert job["version"] == 1 and job["inputs"] == {"who": "ada", "n": 5}
    assert job["rerun_of"] == first and job["status"] == "queued"
    shown = cli(["job", "show", second])
    assert re.search(rf"rerun of\s+{first}", shown.stdout), shown.stdout

    as_json = cli(["job", "rerun", first, "--json"])
    assert json.loads(as_json.stdout)["rerun_of"] == first
    unknown = cli(["job", "rerun", "ffffffff"])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: no job")


# --- runner remove ---------------------------------------------------------------------


def test_runner_remove_revokes_its_token_hides_it_and_keeps_its_history(
    cli: Cli, rivet_server: Any, pipeline_file: Callable[..., Path], played_runner: Any
) -> None:
    lane = unique("lane")
    name = unique("ran")
    create(cli, pipeline_file, name, tags=f'lane = "{lane}"')
    runner_name = unique("box")
    runner = played_runner(lane, name=runner_name)
    done = job_id_in(cli(["job", "launch", name]).stdout)
    runner.claim()
    runner.complete("succeeded")
    busy = job_id_in(cli(["job", "launch", name]).stdout)
    runner.claim()
    me = runner.http.get("/api/runner/self").json()
    ref = me["id"][:8]

    unconfirmed = cli(["runner", "remove", ref])  # no terminal, no --yes
    assert unconfirmed.exit_code == 2
    assert unconfirmed.stderr.startswith(f"error: removing runner {runner_name} needs confirm")
    refused = cli(["runner", "remove", ref, "--yes"])
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: runner '{runner_name}' ({ref}) is running job(s) {busy[:8]}: wait for them, "
        "cancel them (rivet job cancel ID), or remove it with --force (they are marked "
        "failed and the runner stops them)\n"
    )
    removed = cli(["runner", "remove", ref, "--yes", "--force"])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"removed runner {runner_name} ({ref}); its token is revoked\n"

    claim = runner.http.post("/api/runner/claim", json={"wait_seconds": 0})
    assert claim.status_code == 401
    error = claim.json()["error"]
    assert error["code"] == "runner_removed"
    assert error["message"].startswith(f"runner '{runner_name}' ({ref}) was removed by an admin")

    assert runner_name not in cli(["runner", "list"]).stdout
    every = cli(["runner", "list", "--all"])
    assert re.search(rf"^{runner_name}\s.*\d\d:\d\d:\d\d", every.stdout, re.MULTILINE)
    for job_id, status in ((done, "succeeded"), (busy, "failed")):
        job = httpx.get(f"{rivet_server.url}/api/jobs/{job_id}", timeout=30).json()
        assert job["runner"] == runner_name and job["status"] == status
    failed = cli(["job", "show", busy])
    assert f"runner '{runner_name}' was removed (rivet runner remove --force)" in failed.stdout
    assert cli(["runner", "remove", ref, "--yes"]).stdout.endswith("is already removed\n")


# --- waiting ---------------------------------------------------------------------------


def test_job_show_says_why_a_queued_job_waits(
    cli: Cli, rivet_server: Any, pipeline_file: Callable[..., Path], played_runner: Any
) -> None:
    lane = unique("lane")
    name = unique("nobody")
    create(cli, pipeline_file, name, tags=f'lane = "{lane}", os = "plan9"')
    other = played_runner(unique("elsewhere"))
    assert other.http.post("/api/runner/claim", json={"wait_seconds": 0}).status_code == 204
    job = job_id_in(cli(["job", "launch", name]).stdout)

    view = httpx.get(f"{rivet_server.url}/api/jobs/{job}", timeout=30).json()
    waiting = view["waiting"]
    assert waiting["reason"] == "no_match" and waiting["required_tags"] == {
        "lane": lane,
        "os": "plan9",
    }
    online = waiting["online"]
    assert online >= 1 and waiting["matching"] == 0
    shown = cli(["job", "show", job])
    expected = f"waiting for a runner with lane={lane}, os=plan9 " + (
        "(the only online runner does not match)"
        if online == 1
        else f"(none of the {online} online runners match)"
    )
    assert expected in shown.stdout, shown.stdout
    listed = httpx.get(f"{rivet_server.url}/api/jobs", timeout=30).json()["jobs"]
    assert all(j["waiting"] is None for j in listed)  # only the job view explains


def test_an_empty_listing_says_how_many_are_archived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline_file: Callable[..., Path]
) -> None:
    # A server of its own (the module's has other tests' pipelines): the real app.
    with live_server(server_settings(tmp_path / "home")) as url:
        for name in [n for n in os.environ if n.startswith("RIVET_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("RIVET_SERVER", url)
        monkeypatch.setenv("RIVET_HOME", str(tmp_path / "cli-home"))
        run = CliRunner()
        assert run.invoke(app, ["pipeline", "list"]).stdout == (
            "no pipelines yet; create one with: rivet pipeline create FILE\n"
        )
        path = pipeline_file(pipeline_source("lonely"))
        assert run.invoke(app, ["pipeline", "create", str(path)]).exit_code == 0
        assert run.invoke(app, ["pipeline", "delete", "lonely", "--yes"]).exit_code == 0
        assert run.invoke(app, ["pipeline", "list"]).stdout == (
            "no active pipelines (1 archived: rivet pipeline list --archived)\n"
        )
