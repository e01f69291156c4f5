"""Who may do what, as client methods on top of the CLI's ``RivetClient``: pipeline
access lists and pools, runner pools, secret permissions, the audit trail.

Every request carries the client's token (see ``RivetClient``); the server answers
403 naming the missing permission, which reaches the caller as ``ApiError``.
"""

from __future__ import annotations

from urllib.parse import quote

from rivet.client.api import RivetClient, _parse
from rivet.protocol import AuditEvent, PipelineAccessView, RunnerPoolView, SecretAccessView

__all__ = ["AccessClient"]


def _segment(text: str) -> str:
    return quote(text, safe="")


class AccessClient(RivetClient):
    def __enter__(self) -> AccessClient:
        return self

    # --- pipelines ----------------------------------------------------------------

    def pipeline_access(self, ref: str) -> PipelineAccessView:
        return self._get(f"/api/pipelines/{_segment(ref)}/access", PipelineAccessView)

    def grant_pipeline(self, ref: str, subject: str, level: str) -> PipelineAccessView:
        body = {"subject": subject, "level": level}
        response = self._request("PUT", f"/api/pipelines/{_segment(ref)}/access", json_body=body)
        return _parse(response, PipelineAccessView)

    def revoke_pipeline(self, ref: str, subject: str) -> PipelineAccessView:
        path = f"/api/pipelines/{_segment(ref)}/access/{_segment(subject)}"
        return _parse(self._request("DELETE", path), PipelineAccessView)

    def set_pipeline_pools(self, ref: str, pools: list[str]) -> PipelineAccessView:
        path = f"/api/pipelines/{_segment(ref)}/pools"
        response = self._request("PUT", path, json_body={"pools": pools})
        return _parse(response, PipelineAccessView)

    # --- runner pools -------------------------------------------------------------

    def runner_pools(self) -> list[RunnerPoolView]:
        return self._get_list("/api/runner-pools", RunnerPoolView)

    def set_runner_pool(self, name: str, exclusive: bool) -> RunnerPoolView:
        path = f"/api/runner-pools/{_segment(name)}"
        response = self._request("PUT", path, json_body={"exclusive": exclusive})
        return _parse(response, RunnerPoolView)

    # --- secrets ------------------------------------------------------------------

    def secret_access(self, name: str) -> SecretAccessView:
        return self._get(f"/api/secrets/{_segment(name)}/access", SecretAccessView)

    def allow_secret(self, name: str, subject: str, level: str) -> SecretAccessView:
        body = {"subject": subject, "level": level}
        response = self._request("PUT", f"/api/secrets/{_segment(name)}/access", json_body=body)
        return _parse(response, SecretAccessView)

    def disallow_secret(self, name: str, subject: str) -> SecretAccessView:
        path = f"/api/secrets/{_segment(name)}/access/{_segment(subject)}"
        return _parse(self._request("DELETE", path), SecretAccessView)

    # --- audit --------------------------------------------------------------------

    def audit(self, limit: int = 50) -> list[AuditEvent]:
        return self._get_list("/api/audit", AuditEvent, params={"limit": limit})
