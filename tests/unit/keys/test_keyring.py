"""The built-in keyring: wrap, rotate, delete (crypto-shred), file permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmipd.keys.keyring import Keyring, KeyringError


def test_wrap_unwrap_survives_reload_and_rotation(tmp_path: Path) -> None:
    ring = Keyring.in_data_dir(tmp_path)
    key_id = ring.create("root")
    wrapped_v1 = ring.wrap(key_id, b"secret", b"aad")
    assert ring.rotate(key_id) == 2
    wrapped_v2 = ring.wrap(key_id, b"secret", b"aad")
    reloaded = Keyring.in_data_dir(tmp_path)
    assert reloaded.unwrap(key_id, wrapped_v1, b"aad") == b"secret"
    assert reloaded.unwrap(key_id, wrapped_v2, b"aad") == b"secret"
    with pytest.raises(KeyringError):
        reloaded.unwrap(key_id, wrapped_v1, b"other aad")
    path = tmp_path / "keyring" / "root-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"secret" not in path.read_bytes()


def test_delete_shreds(tmp_path: Path) -> None:
    ring = Keyring.in_data_dir(tmp_path)
    key_id = ring.create("root")
    wrapped = ring.wrap(key_id, b"secret", b"aad")
    ring.delete(key_id)
    assert ring.info(key_id).deleted
    for keyring in (ring, Keyring.in_data_dir(tmp_path)):
        with pytest.raises(KeyringError):
            keyring.unwrap(key_id, wrapped, b"aad")


def test_refuses_a_world_readable_file(tmp_path: Path) -> None:
    Keyring.in_data_dir(tmp_path).create("root")
    path = tmp_path / "keyring" / "root-keys.json"
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        Keyring.in_data_dir(tmp_path)
