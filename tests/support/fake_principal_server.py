"""``python fake_principal_server.py [rivet server flags]``: the real ``rivet server``
(settings chain, migration, uvicorn, draining) with the FAKE principal tokens of
:mod:`fake_principals` accepted. For end-to-end permission tests only."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fake_principals

import rivet.cli.server as server_cli

_real_create_app = server_cli.create_app
server_cli.create_app = lambda settings: fake_principals.install(_real_create_app(settings))

if __name__ == "__main__":
    sys.exit(server_cli.main())
