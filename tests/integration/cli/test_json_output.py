"""``--json`` prints what the API answers: for every list and record command the parsed
output equals the API's own JSON for the same request, and ``job logs --json`` gives
one API log line per output line (also with ``--follow``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

Cli = Callable[..., Result]


def api(server: Any, path: str, admin: bool = False) -> Any:
    headers = server.admin if admin else {}
    answer = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def printed_json(cli: Cli, args: list[str]) -> Any:
    result = cli([*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def populated(rivet_server: Any, cli: Cli, tmp_path: Path) -> str:
    """A pipeline with two versions, a runner, an unused token and a secret."""
    name = f"json-{uuid.uuid4().hex[:8]}"
    for description in ("first", "second"):
        path = tmp_path / f"{name}.lua"
        path.write_text(
            f'return pipeline.define({{ name = "{name}", description = "{description}", '
            'stages = { { name = "s", script = function() end } } })'
        )
        assert cli(["pipeline", "create", str(path)]).exit_code == 0
    rivet_server.runner({"lane": name})
    assert cli(["runner", "token", "create", "-d", "for json"]).exit_code == 0
    secret = f"S_{uuid.uuid4().hex[:8].upper()}"
    granted = cli(["secret", "set", secret, "--grant", f"{name}-deploy"], input="value-1\n")
    assert granted.exit_code == 0, granted.output
    return name


@pytest.mark.parametrize(
    ("args", "path", "admin"),
    [
        (["runner", "list"], "/api/runners", False),
        (["runner", "token", "list"], "/api/runner-tokens", True),
        (["secret", "list"], "/api/secrets", True),
        (["pipeline", "list"], "/api/pipelines", False),
    ],
)
def test_lists_print_the_api_answer(
    cli: Cli, rivet_server: Any, populated: str, args: list[str], path: str, admin: bool
) -> None:
    printed = printed_json(cli, args)
    assert printed == api(rivet_server, path, admin)
    assert printed  # not an empty list: the fixture made one of each


def test_pipeline_versions_print_the_api_answer(
    cli: Cli, rivet_server: Any, populated: str
) -> None:
    printed = printed_json(cli, ["pipeline", "versions", populated])
    assert printed == api(rivet_server, f"/api/pipelines/{populated}/versions")
    assert [v["description"] for v in printed] == ["first", "second"]


def test_job_logs_print_one_api_line_per_line(
    cli: Cli, rivet_server: Any, played_runner: Any, tmp_path: Path
) -> None:
    name, lane = f"logs-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    path = tmp_path / "p.lua"
    path.write_text(
        f'return pipeline.define({{ name = "{name}", runner = {{ {{ key = "lane", '
        f'value = "{lane}" }} }}, stages = {{ {{ name = "s", script = function() end }} }} }})'
    )
    assert cli(["pipeline", "create", str(path)]).exit_code == 0
    launched = cli(["job", "launch", name, "--quiet"])
    job_id = launched.stdout.strip()
    runner = played_runner(lane)
    runner.claim()
    runner.stage("s", "running")
    runner.log(1, "s", "one")
    runner.log(2, "s", 'two "quoted"\ttab', "warning")
    runner.log(3, None, "three")
    runner.stage("s", "succeeded")
    runner.complete("succeeded")

    expected = api(rivet_server, f"/api/jobs/{job_id}/logs")["lines"]
    assert len(expected) == 3
    stored = cli(["job", "logs", job_id, "--json"])
    assert stored.exit_code == 0, stored.output
    assert [json.loads(line) for line in stored.stdout.splitlines()] == expected
    followed = cli(["job", "logs", job_id[:8], "--follow", "--json"])
    assert followed.exit_code == 0, followed.output
    assert [json.loads(line) for line in followed.stdout.splitlines()] == expected
    after = cli(["job", "logs", job_id, "--json", "--after", "2"])
    assert [json.loads(line) for line in after.stdout.splitlines()] == expected[2:]
