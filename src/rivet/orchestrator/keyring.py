"""Encryption of secret values at rest: AES-256-GCM with a key ring.

Keys are 32 random bytes, written as URL-safe base64 (44 characters). They come from
``RIVET_SECRET_KEY`` (one key, or several separated by commas or whitespace) or else
from the key file ``$RIVET_HOME/secret-key`` (one key per line, ``#`` comments),
which the first start creates with mode 0600. The *first* key encrypts; every key
decrypts, so a key is rotated by putting a new one first and restarting the servers
(they re-encrypt every value with it), then removing the old one.

Stored format (one text value, see docs/secrets.md)::

    v1.<key id>.<nonce>.<ciphertext and tag>

``key id`` is the first 16 hex digits of SHA-256 over the key (it names the key
without revealing it); nonce (12 bytes) and ciphertext are URL-safe base64 without
padding. The secret's name is the associated data: a ciphertext copied onto another
name does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rivet.errors import ConfigError, RivetError
from rivet.home import create_private_file, read_private_file

__all__ = ["FORMAT", "Keyring", "SecretDecryptError", "generate_key", "load_keyring"]

log = logging.getLogger(__name__)

FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_SPLIT = re.compile(r"[\s,]+")


class SecretDecryptError(RivetError):
    """A stored value cannot be decrypted with the configured keys."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"rivet-secret-key:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class _Key:
    id: str
    aead: AESGCM


class Keyring:
    """Encrypts with the first key, decrypts with any; thread-safe (immutable)."""

    def __init__(self, keys: Sequence[bytes], source: str) -> None:
        if not keys:
            raise ConfigError(f"{source}: no secret key given")
        self.source = source
        self._keys = [_Key(_key_id(k), AESGCM(k)) for k in keys]
        self._by_id = {k.id: k for k in self._keys}

    @classmethod
    def from_text(cls, text: str, source: str) -> Keyring:
        keys: list[bytes] = []
        for number, line in enumerate(text.splitlines(), start=1):
            content = line.split("#", 1)[0]
            for word in _SPLIT.split(content.strip()):
                if not word:
                    continue
                try:
                    key = _unb64(word)
                except (binascii.Error, ValueError):
                    key = b""
                if len(key) != KEY_BYTES:
                    # Never echo the word: it may be a real key with a typo.
                    raise ConfigError(
                        f"{source}: line {number}: not a secret key (expected 32 bytes as "
                        "URL-safe base64, 44 characters; generate one with "
                        "`python -c 'import secrets,base64;"
                        "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'`)"
                    )
                keys.append(key)
        return cls(keys, source)

    @property
    def current_id(self) -> str:
        return self._keys[0].id

    @property
    def key_ids(self) -> list[str]:
        return [k.id for k in self._keys]

    def encrypt(self, name: str, value: str) -> str:
        key = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, value.encode("utf-8"), _aad(name))
        return f"{FORMAT}.{key.id}.{_b64(nonce)}.{_b64(sealed)}"

    def decrypt(self, name: str, stored: str) -> str:
        parts = stored.split(".")
        if len(parts) != 4 or parts[0] != FORMAT:
            raise SecretDecryptError(f"secret '{name}': stored value has an unknown format")
        key = self._by_id.get(parts[1])
        if key is None:
            raise SecretDecryptError(
                f"secret '{name}' was encrypted with key {parts[1]}, which is not among the "
                f"keys of {self.source} ({', '.join(self.key_ids)}); every orchestrator "
                "needs the same RIVET_SECRET_KEY (or key file)"
            )
        try:
            plain = key.aead.decrypt(_unb64(parts[2]), _unb64(parts[3]), _aad(name))
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretDecryptError(
                f"secret '{name}': stored value does not decrypt (corrupted, or moved from "
                "another secret)"
            ) from None
        return plain.decode("utf-8")

    @staticmethod
    def key_id_of(stored: str) -> str | None:
        parts = stored.split(".")
        return parts[1] if len(parts) == 4 else None


def _aad(name: str) -> bytes:
    return f"rivet-secret:{FORMAT}:{name}".encode()


def load_keyring(env_value: str | None, key_file: Path) -> Keyring:
    """The key ring from ``RIVET_SECRET_KEY`` when set, else from ``key_file`` (created
    with one fresh key, mode 0600, when missing). A key file that others can read is
    refused: whoever reads it can decrypt every stored secret."""
    if env_value is not None and env_value.strip():
        return Keyring.from_text(env_value, "RIVET_SECRET_KEY")
    try:
        return _read_key_file(key_file)
    except FileNotFoundError:
        pass
    text = (
        "# Rivet secret encryption key (first line encrypts, all lines decrypt).\n"
        "# Losing it loses every stored secret; keep a backup somewhere safe.\n"
        f"{generate_key()}\n"
    )
    # Another server starting on the same home may write it first: both read that one.
    if create_private_file(key_file, text):
        log.info("generated the secret encryption key in %s", key_file)
    return _read_key_file(key_file)


def _read_key_file(path: Path) -> Keyring:
    return Keyring.from_text(read_private_file(path, "the secret key file"), str(path))
