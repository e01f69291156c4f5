"""``/api/secrets``: encrypted secrets and their grants to pipelines (admin only).

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
from rivet.orchestrator.deps import AdminDep, ServicesDep
from rivet.protocol import SecretSet, SecretView

__all__ = ["router"]

router = APIRouter(prefix="/secrets", tags=["secrets"], dependencies=[AdminDep])

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


@router.get("", summary="Secrets: names, timestamps and grants (never values)")
def list_secrets(services: ServicesDep) -> list[SecretView]:
    return services.secrets.list_all()


@router.get("/{name}", summary="One secret's metadata (never its value)")
def show_secret(name: str, services: ServicesDep) -> SecretView:
    return services.secrets.show(name)


@router.put(
    "/{name}",
    summary="Create (201) or replace (200) a secret, optionally granting it",
    openapi_extra=_BODY,
    responses={201: {"model": SecretView, "description": "created"}},
)
async def set_secret(
    name: str, request: Request, response: Response, services: ServicesDep
) -> SecretView:
    body = await _secret_body(request)
    view, created = await anyio.to_thread.run_sync(services.secrets.set, name, body)
    response.status_code = 201 if created else 200
    return view


@router.delete("/{name}", status_code=204, summary="Delete a secret and its grants")
def delete_secret(name: str, services: ServicesDep) -> Response:
    services.secrets.delete(name)
    return Response(status_code=204)


@router.put("/{name}/grants/{pipeline:path}", summary="Grant a secret to a pipeline (by name)")
def grant_secret(name: str, pipeline: str, services: ServicesDep) -> SecretView:
    """Idempotent. Jobs of that pipeline (any version) receive the secret."""
    return services.secrets.grant(name, pipeline)


@router.delete("/{name}/grants/{pipeline:path}", summary="Revoke a secret from a pipeline")
def revoke_secret(name: str, pipeline: str, services: ServicesDep) -> SecretView:
    """404 when the secret is not granted to that pipeline."""
    return services.secrets.revoke(name, pipeline)
