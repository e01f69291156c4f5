"""``rivet runner list`` and ``rivet runner token create/list/revoke`` against a real
server; the admin token is read from the local server's ``$RIVET_HOME/admin-token``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import Result

Cli = Callable[..., Result]


def test_token_create_register_and_list(cli: Cli, rivet_server: Any) -> None:
    description = f"box-{uuid.uuid4().hex[:6]}"
    created = cli(["runner", "token", "create", "--description", description])
    assert created.exit_code == 0, created.output
    token = created.stdout.splitlines()[1]
    assert token.startswith("rivet_reg_")
    assert (
        f"rivet runner --server {rivet_server.url} --registration-token {token}" in created.stderr
    )

    listed = cli(["runner", "token", "list"])
    assert re.search(rf"{description}\s+│ .* │ no", listed.stdout)
    assert token not in listed.stdout

    name = f"runner-{uuid.uuid4().hex[:6]}"
    request = {"registration_token": token, "name": name, "tags": {"os": "linux", "arch": "x86"}}
    registered = httpx.post(f"{rivet_server.url}/api/runners/register", json=request, timeout=30)
    assert registered.status_code == 200
    runner_id = registered.json()["runner_id"]

    assert re.search(rf"{description}\s+│ .* │ yes", cli(["runner", "token", "list"]).stdout)
    runners = cli(["runner", "list"])
    assert runners.exit_code == 0
    row = next(line for line in runners.stdout.splitlines() if line.startswith(name))
    assert runner_id[:8] in row and "arch=x86, os=linux" in row and "never" in row


def test_quiet_token_and_revoke(cli: Cli) -> None:
    quiet = cli(["runner", "token", "create", "-q"])
    token = quiet.stdout.strip()
    assert re.fullmatch(r"rivet_reg_\S+", token)
    token_id = next(
        line.split()[0]
        for line in cli(["runner", "token", "list"]).stdout.splitlines()[2:]
        if " no" in line
    )
    revoked = cli(["runner", "token", "revoke", token_id])
    assert revoked.exit_code == 0
    assert revoked.stdout == f"revoked registration token {token_id}\n"
    again = cli(["runner", "token", "revoke", token_id])
    assert again.exit_code == 1 and again.stderr.startswith("error: ")


def test_wrong_or_missing_admin_token(
    cli: Cli, rivet_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    wrong = cli(["runner", "token", "create", "--admin-token", "rivet_admin_wrong"])
    assert wrong.exit_code == 1
    assert wrong.stderr == "error: invalid admin token\n"
    monkeypatch.setenv("RIVET_HOME", str(tmp_path))  # no admin-token file there
    missing = cli(["runner", "token", "list"])
    assert missing.exit_code == 1
    assert "needs the server's admin token" in missing.stderr


def test_set_tags_and_plugins_replace_what_claims_match(cli: Cli, rivet_server: Any) -> None:
    headers = rivet_server.runner({"os": "linux"})
    me = httpx.get(f"{rivet_server.url}/api/runner/self", headers=headers, timeout=30).json()
    ref = me["id"][:8]

    changed = cli(["runner", "set-tags", ref, "os=linux", "env=prod"])
    assert changed.exit_code == 0, changed.output
    assert changed.stdout == (
        f"runner {me['name']} ({ref}): pool default; tags env=prod, os=linux; plugins none\n"
    )
    assert "next claim" in changed.stderr
    plugins = cli(["runner", "set-plugins", ref, "git"])
    assert plugins.stdout.endswith("tags env=prod, os=linux; plugins git\n")
    row = next(ln for ln in cli(["runner", "list"]).stdout.splitlines() if ref in ln)
    assert "env=prod, os=linux" in row and "git" in row

    cleared = cli(["runner", "set-tags", ref, "--clear"])
    assert cleared.exit_code == 0 and "tags none; plugins git" in cleared.stdout
    assert cli(["runner", "set-plugins", ref, "--clear"]).stdout.endswith("plugins none\n")

    nothing = cli(["runner", "set-tags", ref])
    assert nothing.exit_code == 2
    assert nothing.stderr == (
        "error: give the runner's tags as KEY=VALUE, or --clear to remove them all\n"
    )
    both = cli(["runner", "set-tags", ref, "a=b", "--clear"])
    assert both.exit_code == 2
    bad = cli(["runner", "set-tags", ref, "oops"])
    assert (
        bad.exit_code == 2 and bad.stderr == "error: tag: expected a tag as key=value, got 'oops'\n"
    )
    unknown = cli(["runner", "set-tags", "ffffffff", "a=b"])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: ")
    refused = cli(["runner", "set-tags", ref, "a=b", "--admin-token", "rivet_admin_wrong"])
    assert refused.exit_code == 1 and refused.stderr == "error: invalid admin token\n"
    assert httpx.get(f"{rivet_server.url}/api/runners/{ref}", timeout=30).json()["tags"] == {}
