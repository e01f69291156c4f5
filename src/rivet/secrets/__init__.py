"""Secrets: encryption at rest (``keyring``), naming and value rules (``rules``),
local sources for ``rivet run`` (``local``) and the admin API client (``client``).

The orchestrator's use cases live in ``rivet.orchestrator.services.secrets``, the
rows in ``rivet.store.secrets``; the runtime side (``secret.get``, injection into
processes, redaction) in ``rivet.engine``.
"""

from __future__ import annotations

from rivet.secrets.keyring import Keyring, SecretDecryptError, generate_key, load_keyring
from rivet.secrets.rules import SecretRuleError, check_name, check_pipeline, check_value

__all__ = [
    "Keyring",
    "SecretDecryptError",
    "SecretRuleError",
    "check_name",
    "check_pipeline",
    "check_value",
    "generate_key",
    "load_keyring",
]
