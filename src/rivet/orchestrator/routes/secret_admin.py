"""``/api/secrets``: encrypted secrets, their grants to pipelines, and who may use
them (secret permissions: admins, and the subjects an admin allowed; see
docs/security.md).

No answer carries a value. The ``PUT`` body is parsed here rather than by FastAPI:
its validation errors would echo the submitted body (the value) back in ``details``.
A bad body, name, value or grant answers 422 ``invalid_request`` naming the field,
like every other invalid field.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from rivet.errors import InvalidRequest
from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.protocol import AccessEntry, SecretAccessView, SecretSet, SecretView

__all__ = ["router"]

router = APIRouter(prefix="/secrets", tags=["secrets"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SecretSet.model_json_schema()}},
    }
}


async def _secret_body(request: Request) -> SecretSet:
    raw = await request.body()
    try:
        return SecretSet.model_validate_json(raw)
    except ValidationError as exc:
        expected = ' (expected {"value": "...", "grants": [...]})'
        raise InvalidRequest(
            [
                (".".join(["body", *(str(p) for p in err["loc"])]), err["msg"] + expected)
                for err in exc.errors(include_input=False, include_url=False)
            ]
        ) from None


@router.get("", summary="Secrets the caller may use: names, timestamps, grants (never values)")
def list_secrets(services: ServicesDep, principal: PrincipalDep) -> list[SecretView]:
    return services.secrets.list_all(principal)


@router.get("/{name}", summary="One secret's metadata (never its value)")
def show_secret(name: str, services: ServicesDep, principal: PrincipalDep) -> SecretView:
    return services.secrets.show(principal, name)


@router.put(
    "/{name}",
    summary="Create (201) or replace (200) a secret, optionally granting it",
    openapi_extra=_BODY,
    responses={201: {"model": SecretView, "description": "created"}},
)
async def set_secret(
    name: str, request: Request, response: Response, services: ServicesDep, principal: PrincipalDep
) -> SecretView:
    """Needs ``write`` on the secret (admins have it)."""
    body = await _secret_body(request)
    view, created = await anyio.to_thread.run_sync(services.secrets.set, principal, name, body)
    response.status_code = 201 if created else 200
    return view


@router.delete("/{name}", status_code=204, summary="Delete a secret and its grants")
def delete_secret(name: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Needs ``write`` on the secret."""
    services.secrets.delete(principal, name)
    return Response(status_code=204)


@router.put("/{name}/grants/{pipeline:path}", summary="Grant a secret to a pipeline (by name)")
def grant_secret(
    name: str, pipeline: str, services: ServicesDep, principal: PrincipalDep
) -> SecretView:
    """Idempotent. Versions of that pipeline pushed from now on by someone entitled to
    the secret receive it. Needs ``grant`` on the secret and, when the pipeline
    exists, ``push`` on it."""
    return services.secrets.grant(principal, name, pipeline)


@router.delete("/{name}/grants/{pipeline:path}", summary="Revoke a secret from a pipeline")
def revoke_secret(
    name: str, pipeline: str, services: ServicesDep, principal: PrincipalDep
) -> SecretView:
    """404 when the secret is not granted to that pipeline. Needs ``grant`` on it."""
    return services.secrets.revoke(principal, name, pipeline)


@router.get("/{name}/access", summary="Who besides admins may use, grant or write a secret")
def secret_access(name: str, services: ServicesDep, principal: PrincipalDep) -> SecretAccessView:
    return services.secrets.access(principal, name)


@router.put("/{name}/access", summary="Allow a user or API key use/grant/write (admin)")
def allow_secret(
    name: str, body: AccessEntry, services: ServicesDep, principal: PrincipalDep
) -> SecretAccessView:
    """``subject``: ``user:<name>`` or ``api-key:<name>``; ``level``: use, grant or
    write (each includes the ones before). The secret need not exist yet."""
    return services.secrets.allow(principal, name, body)


@router.delete("/{name}/access/{subject}", summary="Remove a subject's permission (admin)")
def disallow_secret(
    name: str, subject: str, services: ServicesDep, principal: PrincipalDep
) -> SecretAccessView:
    return services.secrets.disallow(principal, name, subject)
