"""Secrets at rest: Fernet round trip, tamper and key-change detection, key file permissions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from finance.crypto import SecretBox, SecretError, load_or_create_key


def test_round_trip_hides_the_plaintext():
    box = SecretBox(Fernet.generate_key())
    token = "access-sandbox-6a1b2c3d-0000-4e5f-9a8b-7c6d5e4f3a2b"
    sealed = box.encrypt(token)
    assert token not in sealed
    assert box.decrypt(sealed) == token
    assert "key" in repr(box) and sealed not in repr(box)


def test_another_key_or_a_tampered_value_cannot_decrypt():
    sealed = SecretBox(Fernet.generate_key()).encrypt("secret")
    with pytest.raises(SecretError, match="encryption key changed"):
        SecretBox(Fernet.generate_key()).decrypt(sealed)
    box = SecretBox(Fernet.generate_key())
    good = box.encrypt("secret")
    with pytest.raises(SecretError):
        box.decrypt(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"))


def test_invalid_configured_key_says_how_to_make_one():
    with pytest.raises(SecretError, match="generate_key"):
        SecretBox(b"not-a-key")


def test_key_file_is_created_once_owner_only(tmp_path: Path):
    first = load_or_create_key(None, tmp_path)
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600
    assert load_or_create_key(None, tmp_path) == first
    assert load_or_create_key("configured-wins", tmp_path) == b"configured-wins"


def test_a_key_file_that_cannot_be_read_names_the_file_not_the_variable(tmp_path: Path):
    (tmp_path / "secret.key").mkdir()  # a folder where the key file should be
    with pytest.raises(SecretError) as info:
        load_or_create_key(None, tmp_path)
    message = str(info.value)
    assert "secret.key cannot be read (it is a folder)" in message and "Restore the file" in message
    assert "FINANCE_ENCRYPTION_KEY is not a valid key" not in message


def test_a_damaged_key_file_names_the_file_not_the_variable(tmp_path: Path):
    (tmp_path / "secret.key").write_bytes(b"\xff\xfe not a key")
    (tmp_path / "secret.key").chmod(0o600)  # private, as the app makes it: only its content is wrong
    with pytest.raises(SecretError) as info:
        load_or_create_key(None, tmp_path)
    message = str(info.value)
    assert "secret.key does not hold a valid key" in message and "backup" in message
    assert "FINANCE_ENCRYPTION_KEY is not a valid key" not in message and "not a key" not in message
