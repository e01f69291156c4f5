"""The key ring: AES-256-GCM round trips, bound to the secret's name; key sources,
the 0600 key file, rotation, and errors that never echo key material."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rivet.errors import ConfigError
from rivet.orchestrator.keyring import Keyring, SecretDecryptError, generate_key, load_keyring

VALUE = "correct horse battery staple"


def test_round_trip_and_fresh_nonce_per_encryption() -> None:
    ring = Keyring.from_text(generate_key(), "test")
    first, second = ring.encrypt("TOKEN", VALUE), ring.encrypt("TOKEN", VALUE)
    assert first != second  # a new nonce each time
    assert first.startswith(f"v1.{ring.current_id}.")
    assert VALUE not in first and VALUE.encode().hex() not in first
    assert ring.decrypt("TOKEN", first) == VALUE == ring.decrypt("TOKEN", second)


def test_a_ciphertext_moved_to_another_name_or_tampered_does_not_decrypt() -> None:
    ring = Keyring.from_text(generate_key(), "test")
    sealed = ring.encrypt("TOKEN", VALUE)
    with pytest.raises(SecretDecryptError, match="moved from another secret"):
        ring.decrypt("OTHER", sealed)
    head, _, body = sealed.rpartition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SecretDecryptError, match="does not decrypt"):
        ring.decrypt("TOKEN", f"{head}.{flipped}")
    with pytest.raises(SecretDecryptError, match="unknown format"):
        ring.decrypt("TOKEN", "plaintext!")


def test_rotation_ring_decrypts_old_values_and_names_missing_keys() -> None:
    old, new = generate_key(), generate_key()
    sealed_old = Keyring.from_text(old, "old").encrypt("T", VALUE)
    ring = Keyring.from_text(f"{new}, {old}", "RIVET_SECRET_KEY")
    assert ring.decrypt("T", sealed_old) == VALUE
    assert Keyring.key_id_of(ring.encrypt("T", VALUE)) == ring.current_id != ring.key_ids[1]
    stranger = Keyring.from_text(generate_key(), "RIVET_SECRET_KEY")
    with pytest.raises(SecretDecryptError, match="every orchestrator needs the same"):
        stranger.decrypt("T", sealed_old)


def test_malformed_keys_are_refused_without_echo() -> None:
    for text in ("hunter2hunter2", generate_key()[:-4], "!!!" * 15):
        with pytest.raises(ConfigError) as caught:
            Keyring.from_text(f"# comment\n{text}\n", "keyfile")
        assert "line 2: not a secret key" in str(caught.value)
        assert text not in str(caught.value)
    with pytest.raises(ConfigError, match="no secret key given"):
        Keyring.from_text("# only a comment\n", "keyfile")


def test_key_file_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secret-key"
    ring = load_keyring(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keyring(None, path)
    assert again.current_id == ring.current_id
    assert load_keyring("  ", path).current_id == ring.current_id  # blank env: the file
    from_env = load_keyring(generate_key(), tmp_path / "unused")
    assert from_env.source == "RIVET_SECRET_KEY" and not (tmp_path / "unused").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret-key"
    path.write_text(generate_key() + "\n")
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600"):
        load_keyring(None, path)
