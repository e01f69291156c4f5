"""The admin API for secrets as client methods, on top of the CLI's ``RivetClient``.

Values travel only in the body of ``PUT /api/secrets/{name}``; every answer is
metadata (:class:`~rivet.protocol.SecretView`). Errors are the client's
(``ApiError``, ``ServerUnreachableError``, ``ConfigError`` without an admin token).
"""

from __future__ import annotations

from urllib.parse import quote

from rivet.client import RivetClient
from rivet.protocol import SecretView

__all__ = ["SecretClient"]


def _segment(text: str, safe: str = "") -> str:
    return quote(text, safe=safe)


class SecretClient(RivetClient):
    def __enter__(self) -> SecretClient:
        return self

    def set_secret(self, name: str, value: str, grants: list[str] | None = None) -> SecretView:
        body = {"value": value, "grants": list(grants or [])}
        response = self._request(
            "PUT", f"/api/secrets/{_segment(name)}", json_body=body, headers=self._admin_headers()
        )
        return SecretView.model_validate_json(response.content)

    def list_secrets(self) -> list[SecretView]:
        return self._get_list("/api/secrets", SecretView, headers=self._admin_headers())

    def delete_secret(self, name: str) -> None:
        self._request("DELETE", f"/api/secrets/{_segment(name)}", headers=self._admin_headers())

    def grant_secret(self, name: str, pipeline: str) -> SecretView:
        # Slashes stay: the route takes the rest of the path as the pipeline name.
        path = f"/api/secrets/{_segment(name)}/grants/{_segment(pipeline, '/')}"
        response = self._request("PUT", path, headers=self._admin_headers())
        return SecretView.model_validate_json(response.content)

    def revoke_secret(self, name: str, pipeline: str) -> SecretView:
        path = f"/api/secrets/{_segment(name)}/grants/{_segment(pipeline, '/')}"
        response = self._request("DELETE", path, headers=self._admin_headers())
        return SecretView.model_validate_json(response.content)
