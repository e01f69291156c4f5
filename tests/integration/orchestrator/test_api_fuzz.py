"""Schema-driven fuzzing of the whole API (schemathesis + hypothesis), on SQLite and
PostgreSQL: no request may ever get a 5xx, and answers must match the OpenAPI document.

A plain schemathesis run mostly hits 404 and 401: random ids name nothing and random
tokens open nothing. So the server is first seeded through the API itself with real
objects — pipelines with typed inputs of every type, queued, running, finished and
cancelled jobs with log lines, a registered runner and its token, spare registration
tokens, a granted secret — and every operation is fuzzed three ways: with the real
ids and the matching token (admin or runner), with hand-written valid bodies (so
creates, launches, claims and completions really happen), and with free-form
generated and schema-violating data. The run is derandomised (fixed examples, no
example database) so CI sees the same requests every time, and bounded in size.

The app runs in-process: its lifespan and every request run on one event loop in a
blocking portal, requests go through httpx's ASGI transport (no socket), and
schemathesis generates the cases and checks the answers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.from_thread
import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rivet.orchestrator import create_app

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from api_helpers import ADMIN, ADMIN_TOKEN, lua_pipeline
from live_rivet import rivet_settings

# Each operation: a few seeded requests, then this many generated ones per database.
FUZZ_EXAMPLES = 15
SEEDED_EXAMPLES = 2
HOSTILE_EXAMPLES = 10
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]

TYPED_INPUTS = {
    "branch": {"type": "string", "default": "main"},
    "mode": {"type": "string", "options": ["fast", "full"], "default": "fast"},
    "jobs": {"type": "number", "default": 4, "options": [1, 2, 4, 8]},
    "ratio": {"type": "number", "default": 0.5},
    "verbose": {"type": "bool", "default": False},
    "target": {"type": "string", "required": False},
}


class Client:
    """A synchronous face for an in-process app: ``request`` runs on the app's loop."""

    def __init__(self, portal: Any, http: httpx.AsyncClient) -> None:
        self._portal = portal
        self._http = http

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self._portal.call(
            partial(self._http.request, method, url, **kwargs)
        )
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)


@contextmanager
def in_process(app: FastAPI) -> Iterator[Client]:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        try:
            yield Client(portal, http)
        finally:
            portal.call(http.aclose)


@dataclass
class Seed:
    """What the fuzzer may refer to: real names, ids and tokens."""

    runner_headers: dict[str, str]
    pipelines: list[str]
    jobs: dict[str, str]  # role (queued, running, finished, cancelled) -> id
    runner_id: str
    token_ids: list[str]
    registration_tokens: list[str]
    secret: str
    stage: str = "build"
    ids: dict[str, list[str]] = field(default_factory=dict)


def _ok(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def _seed(client: Client) -> Seed:
    typed = lua_pipeline("fuzz-typed", inputs=TYPED_INPUTS, stages=("build", "test"))
    _ok(client.post("/api/pipelines", json={"source": typed, "filename": "typed.lua"}), 201)
    _ok(client.post("/api/pipelines", json={"source": typed, "filename": "typed.lua"}), 201)
    _ok(client.post("/api/pipelines", json={"source": lua_pipeline("fuzz-plain")}), 201)
    secret = "FUZZ_SECRET"
    _ok(
        client.put(
            f"/api/secrets/{secret}",
            headers=ADMIN,
            json={"value": "fuzz-secret-value-1234", "grants": ["fuzz-typed"]},
        ),
        201,
    )
    tokens = [
        _ok(client.post("/api/runner-tokens", headers=ADMIN, json={"description": f"t{i}"}), 201)
        for i in range(8)
    ]
    registered = _ok(
        client.post(
            "/api/runners/register",
            json={"registration_token": tokens[0]["token"], "name": "fuzz-runner"},
        ),
        200,
    )
    runner = {"Authorization": f"Bearer {registered['token']}"}
    raw = {**ADMIN, "Content-Type": "application/octet-stream"}
    uploaded = _ok(client.post("/api/sources", content=b"fuzz source archive", headers=raw), 200)
    archive = {**uploaded, "files": 1}
    jobs: dict[str, str] = {}
    for role in ("finished", "running", "cancelled", "queued"):
        body: dict[str, Any] = {"pipeline": "fuzz-typed", "inputs": {"jobs": 2}}
        if role == "running":
            body["source_archive"] = archive
        launched = _ok(
            client.post(
                "/api/jobs",
                json=body,
                headers=ADMIN,  # it has a secret granted: launching needs a permission on it
            ),
            201,
        )
        jobs[role] = launched["id"]
        if role in ("finished", "running"):
            claimed = _ok(
                client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0}), 200
            )
            assert claimed["job_id"] == launched["id"]
            batch = {
                "lines": [
                    {"seq": s, "ts": "2026-01-01T00:00:00Z", "stage": "build", "message": f"l{s}"}
                    for s in (1, 2, 3)
                ]
            }
            _ok(
                client.post(f"/api/runner/jobs/{launched['id']}/logs", headers=runner, json=batch),
                200,
            )
        if role == "running":
            _ok(
                client.post(
                    f"/api/runner/jobs/{launched['id']}/artifacts/wheel/files",
                    params={"path": "dist/a.whl"},
                    content=b"fuzz wheel",
                    headers={**runner, "Content-Type": "application/octet-stream"},
                ),
                200,
            )
        if role == "finished":
            done = {"status": "succeeded", "outputs": {"artifact": "a.tar", "count": 3}}
            _ok(
                client.post(
                    f"/api/runner/jobs/{launched['id']}/complete", headers=runner, json=done
                ),
                200,
            )
        if role == "cancelled":
            _ok(client.post(f"/api/jobs/{launched['id']}/cancel", headers=ADMIN), 200)
    seed = Seed(
        runner_headers=runner,
        pipelines=["fuzz-typed", "fuzz-plain"],
        jobs=jobs,
        runner_id=registered["runner_id"],
        token_ids=[t["id"] for t in tokens],
        registration_tokens=[t["token"] for t in tokens[1:]],
        secret=secret,
    )
    pipeline_id = _ok(client.get("/api/pipelines/fuzz-typed"), 200)["id"]
    seed.ids = {
        "pipeline": [*seed.pipelines, pipeline_id, pipeline_id[:8]],
        "job": [*jobs.values(), jobs["running"][:6]],
        "runner": [seed.runner_id, seed.runner_id[:6]],
        "token": seed.token_ids[-3:],
        "secret": [secret],
    }
    return seed


def _path_values(path: str, seed: Seed) -> list[dict[str, str]]:
    """Real values for the path parameters of ``path`` (several combinations)."""
    if path.startswith("/api/secrets/{name}/grants"):
        return [{"name": seed.secret, "pipeline": p} for p in seed.pipelines]
    if path.startswith("/api/secrets/{name}/access/{subject}"):
        return [{"name": seed.secret, "subject": "user:fuzz"}]
    if path.startswith("/api/pipelines/{ref}/access/{subject}"):
        return [{"ref": p, "subject": s} for p in seed.pipelines for s in ("role:user", "user:x")]
    if path.startswith("/api/secrets/{name}"):
        return [{"name": seed.secret}]
    if path.startswith("/api/runner-pools/{name}"):
        return [{"name": "prod"}, {"name": "default"}]
    if path.startswith("/api/runner/jobs/{job_id}/artifacts/{name}"):
        return [{"job_id": seed.jobs["running"], "name": "wheel"}]
    if path.startswith("/api/runner/jobs/{job_id}"):
        return [{"job_id": seed.jobs["running"]}, {"job_id": seed.jobs["finished"]}]
    if path == "/api/jobs/{ref}/artifacts/{name}/files/{path}":
        return [{"ref": seed.jobs["running"], "name": "wheel", "path": "dist/a.whl"}]
    if path == "/api/jobs/{ref}/logs/stream":
        # A stream of an unfinished job never ends; the finished one replays and closes.
        return [{"ref": seed.jobs["finished"]}, {"ref": seed.jobs["cancelled"]}]
    kind = {"pipelines": "pipeline", "jobs": "job", "runners": "runner", "runner-tokens": "token"}
    for prefix, name in kind.items():
        if path.startswith(f"/api/{prefix}/{{ref}}"):
            return [{"ref": value} for value in seed.ids[name]]
    return [{}]


def _query_for(path: str, seed: Seed) -> dict[str, str] | None:
    """Real query values for the artifact routes, whose queries name what they read."""
    running = seed.jobs["running"]
    if path == "/api/runner/jobs/{job_id}/artifacts":
        return {"name": "wheel", "job": running}
    if path == "/api/runner/jobs/{job_id}/artifact-files":
        return {"name": "wheel", "job": running, "path": "dist/a.whl"}
    if path == "/api/runner/jobs/{job_id}/artifacts/{name}/files":
        return {"path": "dist/b.whl"}
    return None


def _headers_for(path: str, seed: Seed) -> dict[str, str]:
    if path.startswith("/api/runner/"):
        return seed.runner_headers
    return ADMIN


def _valid_bodies(method: str, path: str, seed: Seed) -> list[Any]:
    """Hand-written valid bodies, so that writes really happen."""
    now = "2026-01-01T00:00:01Z"
    bodies: dict[tuple[str, str], list[Any]] = {
        ("post", "/api/pipelines"): [
            {"source": lua_pipeline("fuzz-typed", inputs=TYPED_INPUTS, stages=("build", "test"))},
            {"source": lua_pipeline("fuzz-new", tags={"os": "linux"}), "filename": "n.lua"},
        ],
        ("post", "/api/jobs"): [
            {"pipeline": "fuzz-typed", "inputs": {"jobs": 8, "ratio": 2.5, "verbose": True}},
            {"pipeline": "fuzz-plain", "version": 1},
            {"pipeline": "fuzz-typed", "inputs": {"mode": "full", "target": "x", "jobs": "1"}},
        ],
        ("post", "/api/runners/register"): [
            {"registration_token": token, "name": "fuzz-runner-2", "tags": {"os": "linux"}}
            for token in seed.registration_tokens[:3]
        ],
        ("post", "/api/runner/claim"): [{"wait_seconds": 0}, {"wait_seconds": 0, "tags": {}}],
        ("post", "/api/runner/jobs/{job_id}/logs"): [
            {"lines": [{"seq": 4, "ts": now, "stage": seed.stage, "message": "more"}]}
        ],
        ("post", "/api/runner/jobs/{job_id}/stages"): [
            {"name": seed.stage, "status": "running", "started_at": now},
            {"name": seed.stage, "status": "succeeded", "finished_at": now},
        ],
        ("post", "/api/runner/jobs/{job_id}/complete"): [
            {"status": "succeeded", "outputs": {"n": 1, "ok": True, "s": "x"}}
        ],
        ("put", "/api/secrets/{name}"): [
            {"value": "another-secret-value", "grants": ["fuzz-plain"]}
        ],
        ("post", "/api/runner-tokens"): [{"description": "fuzz"}],
        ("put", "/api/pipelines/{ref}/access"): [{"subject": "user:fuzz", "level": "push"}],
        ("put", "/api/pipelines/{ref}/pools"): [{"pools": ["prod"]}, {"pools": []}],
        ("put", "/api/runner-pools/{name}"): [{"exclusive": True}, {"exclusive": False}],
        ("put", "/api/secrets/{name}/access"): [{"subject": "user:fuzz", "level": "use"}],
    }
    return bodies.get((method, path), [])


def _bounded(case: Any) -> Any:
    """Keep long polls short: a claim may otherwise wait up to 60 s per example."""
    if case.operation.path == "/api/runner/claim" and isinstance(case.body, dict):
        wait = case.body.get("wait_seconds", 20)
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0:
            case.body["wait_seconds"] = 0
    return case


# Values that broke the API before it validated at the edge: lone surrogates, NUL,
# integers beyond 64 bits, numbers no pipeline can hold, text over the caps.
HOSTILE: list[Any] = [
    "\ud800",
    "x\udfffy",
    "nul\x00byte",
    "\x00",
    2**64 + 1,
    -(2**70),
    1e30,
    1.7976931348623157e308,
    "9" * 5000,
    "long" * 70_000,
]


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, index))
    elif isinstance(data, str | int | float) and not isinstance(data, bool):
        yield path


def _plant(kwargs: dict[str, Any], case: Any, hostile: Any, pick: int) -> None:
    """Put ``hostile`` into one leaf of the JSON body, one query parameter or one path
    parameter of the request ``kwargs`` (after schemathesis built it: its own checks
    cannot handle a lone surrogate)."""
    body = kwargs.get("json")
    targets: list[tuple[str, tuple[Any, ...]]] = [("body", p) for p in _leaves(body)]
    targets += [("query", (k,)) for k in (kwargs.get("params") or {})]
    targets += [("path", (k,)) for k in (case.path_parameters or {})]
    if not targets:
        return
    where, path = targets[pick % len(targets)]
    if where == "body":
        if not path:
            kwargs["json"] = hostile
            return
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = hostile
        return
    # A URL is UTF-8 on the wire (a lone surrogate cannot be sent there at all), and
    # servers refuse request lines over a few KiB before any app sees them.
    text = str(hostile).encode("utf-8", "replace").decode()[:4000]
    if where == "query":
        kwargs["params"][path[0]] = text
    else:
        values = {**case.path_parameters, path[0]: text}
        # Percent-encoded, as any client sends a path segment ("?" would start the query).
        route = case.operation.path.format(**{k: quote(str(v), safe="") for k, v in values.items()})
        kwargs["url"] = "http://testserver" + route


@dataclass
class Report:
    statuses: dict[str, set[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    operations: int = 0
    failures: list[str] = field(default_factory=list)


def _exercise(client: Client, operation: Any, strategy: Any, examples: int, report: Report) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate),  # failures are collected, not shrunk
    )
    @given(drawn=strategy)
    def run(drawn: Any) -> None:
        case, planted = drawn if isinstance(drawn, tuple) else (drawn, None)
        case = _bounded(case)
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        if planted is not None:
            _plant(kwargs, case, *planted)
        headers = {k: v for k, v in kwargs["headers"].items() if k != "Connection"}
        request: dict[str, Any] = {
            "headers": headers,
            "params": kwargs.get("params"),
            "cookies": kwargs.get("cookies") or None,
        }
        if "json" in kwargs:
            # ASCII JSON: a lone surrogate travels as its \u escape, as any client sends it.
            request["content"] = json.dumps(kwargs["json"]).encode()
            headers["Content-Type"] = "application/json"
        elif kwargs.get("data") is not None:
            request["content"] = kwargs["data"]
        started = time.monotonic()
        response = client.request(kwargs["method"], kwargs["url"], **request)
        report.seconds[label] = report.seconds.get(label, 0.0) + time.monotonic() - started
        report.statuses.setdefault(label, set()).add(response.status_code)
        if response.status_code >= 500:
            report.failures.append(f"{label}: {response.status_code} for {kwargs!r:.600}")
            return
        if planted is not None:
            # Refused with the project's JSON envelope (or accepted: a hostile value may
            # sit where it is harmless, e.g. an ignored extra field).
            if response.status_code >= 400 and "error" not in response.json():
                report.failures.append(f"{label}: {response.status_code} without an error body")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseExceptionGroup as exc:  # schemathesis' FailureGroup
            report.failures.append(f"{label}: {str(exc)[:800]}")

    run()


def _strategies(operation: Any, seed: Seed) -> Iterator[tuple[Any, int]]:
    method, path = operation.method, operation.path
    headers = _headers_for(path, seed)
    query = _query_for(path, seed)
    seeded = [
        operation.as_strategy(path_parameters=values, headers=headers, query=query)
        for values in _path_values(path, seed)
    ]
    for body in _valid_bodies(method, path, seed):
        for values in _path_values(path, seed)[:1]:
            seeded.append(operation.as_strategy(path_parameters=values, headers=headers, body=body))
    yield st.one_of(seeded), SEEDED_EXAMPLES * len(seeded)
    fuzz = [
        operation.as_strategy(),  # no token, random ids
        *seeded,
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    yield st.one_of(fuzz), FUZZ_EXAMPLES
    # Seeded (so they reach the handlers) with one hostile value planted somewhere.
    planted = st.tuples(st.one_of(seeded), st.tuples(st.sampled_from(HOSTILE), st.integers(0, 99)))
    yield planted, HOSTILE_EXAMPLES


# Reads first, then writes; deletes last, so that the objects live as long as possible.
_ORDER: dict[str, int] = {"get": 0, "post": 1, "put": 2, "delete": 3}


def _fuzz(database_url: str, tmp_path: Path) -> Report:
    server = rivet_settings(
        tmp_path / "home",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        poll_interval=0.2,
        sse_keepalive=0.5,
        # The seeded running job must stay claimed for the whole run (minutes without
        # a heartbeat): its runner routes are fuzzed, not its loss.
        lease_seconds=3600.0,
    )
    app = create_app(server)
    report = Report()
    with in_process(app) as client:
        seed = _seed(client)
        schema = schemathesis.openapi.from_dict(app.openapi())
        operations = [result.ok() for result in schema.get_all_operations()]
        report.operations = len(operations)
        # Deletes of the deepest paths first: a grant before its secret.
        operations.sort(key=lambda op: (_ORDER.get(op.method, 9), -op.path.count("/"), op.path))
        for operation in operations:
            for strategy, examples in _strategies(operation, seed):
                _exercise(client, operation, strategy, examples, report)
    return report


def test_fuzz_whole_api_never_answers_5xx(database_url: str, tmp_path: Path) -> None:
    report = _fuzz(database_url, tmp_path)
    slowest = sorted(report.seconds.items(), key=lambda kv: -kv[1])[:5]
    print("slowest operations (s in requests):", slowest)
    assert not report.failures, "\n\n".join(report.failures[:20])
    # Every operation was reached with a request it accepted: seeding worked.
    unreached = {
        label: sorted(codes)
        for label, codes in report.statuses.items()
        if not any(200 <= code < 300 for code in codes)
    }
    assert len(report.statuses) == report.operations, sorted(report.statuses)
    assert not unreached, unreached
