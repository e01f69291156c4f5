"""Settings and the admin token: from RIVET_ADMIN_TOKEN, or generated into RIVET_HOME."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from live_rivet import rivet_settings

from rivet.defaults import DEFAULT_PORT
from rivet.orchestrator import create_app
from rivet.orchestrator.auth import load_admin_token
from rivet.orchestrator.state import database_url, uses_home
from rivet.settings import load_settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RIVET_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("RIVET_PORT", "9999")
    monkeypatch.delenv("RIVET_DATABASE_URL", raising=False)
    monkeypatch.delenv("RIVET_ADMIN_TOKEN", raising=False)
    settings = load_settings()
    assert settings.server.port == 9999 and settings.home == tmp_path / "h"
    assert database_url(settings) == f"sqlite:///{tmp_path / 'h' / 'rivet.db'}"
    assert settings.server.admin_token is None and uses_home(settings)
    monkeypatch.delenv("RIVET_PORT")
    assert load_settings().server.port == DEFAULT_PORT
    monkeypatch.setenv("RIVET_DATABASE_URL", "postgresql+psycopg://db/rivet")
    assert database_url(load_settings()) == "postgresql+psycopg://db/rivet"


def test_admin_token_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = rivet_settings(tmp_path / "home")
    token = load_admin_token(settings)
    path = tmp_path / "home" / "admin-token"
    assert path.read_text().strip() == token and len(token) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_admin_token(settings) == token  # reused, not regenerated
    explicit = rivet_settings(tmp_path / "home", admin_token="from-env")
    assert load_admin_token(explicit) == "from-env"


@pytest.mark.anyio
async def test_local_server_accepts_the_generated_token(tmp_path: Path) -> None:
    settings = rivet_settings(tmp_path / "home")  # embedded SQLite, no admin token set
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = (tmp_path / "home" / "admin-token").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            ok = await http.post(
                "/api/runner-tokens", headers={"Authorization": f"Bearer {token}"}, json={}
            )
            assert ok.status_code == 201
            wrong = await http.get("/api/runner-tokens", headers={"Authorization": "Bearer x"})
            assert wrong.status_code == 401
    assert (tmp_path / "home" / "rivet.db").exists()
