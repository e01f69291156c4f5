"""Secrets: encryption at rest (``keyring``), naming and value rules (``rules``),
local sources for ``rivet run`` (``local``) and the admin API client (``client``).

Import the submodules directly: this package imports nothing itself, so the CLI can
use the light ``rules`` without loading ``cryptography`` or ``httpx``.

The orchestrator's use cases live in ``rivet.orchestrator.services.secrets``, the
rows in ``rivet.store.secrets``; the runtime side (``secret.get``, injection into
processes, redaction) in ``rivet.engine``.
"""
