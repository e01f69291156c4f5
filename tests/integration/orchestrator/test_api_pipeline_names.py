"""Pipeline names at the API edge, on SQLite and PostgreSQL: a name no URL can carry
back ('/', '.', '..', control, format and bidi characters, blanks around it, a
trailing "\\n") is refused when the pipeline is created (422 naming the field and
the rule, nothing stored), and every name the rule accepts, URL-special characters
included, is found again by name: shown, listed by version and launched."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from api_helpers import ADMIN
from fastapi import FastAPI
from test_api_limits import row_counts

from rivet.limits import MAX_NAME, PIPELINE_NAME_RULE

pytestmark = pytest.mark.anyio


def lua(text: str) -> str:
    """A Lua literal of ``text``: every byte of its UTF-8 form as a decimal escape."""
    return '"' + "".join(f"\\{b}" for b in text.encode("utf-8")) + '"'


def source(name: str) -> str:
    return (
        f"return pipeline.define({{ name = {lua(name)},"
        " stages = { { name = 's', script = function() end } } })"
    )


REFUSED = {
    "team/app": "contains '/'",
    "/": "contains '/'",
    "a/": "contains '/'",
    ".": "is '.'",
    "..": "is '..'",
    " deploy": "starts or ends with whitespace",
    "deploy ": "starts or ends with whitespace",
    "deploy\n": "starts or ends with whitespace",
    "deploy\r": "starts or ends with whitespace",
    "deploy\r\n": "starts or ends with whitespace",
    "\ndeploy": "starts or ends with whitespace",
    "deploy\t": "starts or ends with whitespace",
    "deploy\u3000": "starts or ends with whitespace",
    "de\nploy": "contains U+000A",
    "de\x1b[2Jploy": "contains U+001B",
    "de\x7fploy": "contains U+007F",
    "de\x85ploy": "contains U+0085",
    "de\x9bploy": "contains U+009B",
    "de\u202eploy": "contains U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "de\u2066ploy\u2069": "contains U+2066 (LEFT-TO-RIGHT ISOLATE)",
    "de\u200fploy": "contains U+200F (RIGHT-TO-LEFT MARK)",
    "de\u061cploy": "contains U+061C (ARABIC LETTER MARK)",
    "de\u200bploy": "contains U+200B (ZERO WIDTH SPACE)",
    "de\ufeffploy": "contains U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
    "de\u2028ploy": "contains U+2028 (LINE SEPARATOR)",
    "n" * (MAX_NAME + 1): f"has {MAX_NAME + 1} characters",
}

# URL-special characters a name may hold: each must come back through the URL.
FOUND = [
    "build-and-test",
    "a.b",
    "...",
    ".hidden",
    "a?b",
    "a#b",
    "100%",
    "a%2Fb",
    "a%00b",
    "a\\b",
    "a;b=c&d",
    "a+b",
    "~x",
    "deploy 1",
    "[bold]x",
    "Déploiement",
    "构建",
    "بناء",
    "x\u00a0y",
    "café ☕",
    "n" * MAX_NAME,
]


@pytest.mark.parametrize("name", list(REFUSED), ids=ascii)
async def test_a_name_no_url_can_carry_is_refused_at_creation(
    client: httpx.AsyncClient, app: FastAPI, name: str
) -> None:
    before = await row_counts(app)
    for headers in (None, ADMIN):
        response = await client.post(
            "/api/pipelines", json={"source": source(name), "filename": "p.lua"}, headers=headers
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_definition", error
        (problem,) = error["details"]["problems"]
        assert problem["path"] == "name", problem
        assert REFUSED[name] in problem["message"], problem
        assert problem["message"].endswith(PIPELINE_NAME_RULE), problem
        assert f"p.lua:1: name: {REFUSED[name]}" in error["message"], error["message"]
    assert await row_counts(app) == before


@pytest.mark.parametrize("name", FOUND, ids=ascii)
async def test_every_accepted_name_is_found_again_by_name(
    client: httpx.AsyncClient, name: str
) -> None:
    created = await client.post("/api/pipelines", json={"source": source(name)})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    url = f"/api/pipelines/{quote(name, safe='')}"
    shown = await client.get(url)
    assert shown.status_code == 200, (name, shown.text)
    assert shown.json()["name"] == name and shown.json()["id"] == created.json()["id"]
    versions = await client.get(f"{url}/versions")
    assert versions.status_code == 200 and len(versions.json()) == 1, versions.text
    launched = await client.post("/api/jobs", json={"pipeline": name, "inputs": {}})
    assert launched.status_code == 201, launched.text
    assert launched.json()["pipeline"] == name
