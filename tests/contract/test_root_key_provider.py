"""One contract for every root key provider (``kmipd.keys.providers``).

Parametrised in ``conftest.py`` over the built-in keyring adapter and the PKCS#11 provider on
a SoftHSM2 token (once per wrapping mechanism). Where providers differ, the test reads the
provider's ``Capabilities`` record; no test names a provider.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from kmipd.keys.providers.base import (
    MAGIC,
    KeyNotUsable,
    KeyState,
    NotSupported,
    ProviderError,
    RootKeyProvider,
    WrappedKeyInvalid,
    parse_blob,
)

T = TypeVar("T")
AAD = b"instance:test-instance|version:1"
SECRET = bytes(range(32))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_create_makes_an_active_key_with_one_version(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-create"))
    status = run(provider.status(key_id))
    assert (status.key_id, status.state, status.versions) == (key_id, KeyState.ACTIVE, 1)
    assert run(provider.create("contract-create")) != key_id


def test_wrap_unwrap_round_trip_and_header(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-round-trip"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    assert SECRET not in blob
    header, _ = parse_blob(blob)
    capabilities = provider.capabilities
    assert header.kind == capabilities.kind
    assert header.mechanism == capabilities.mechanism
    assert (header.key_id, header.version) == (key_id, 1)
    assert run(provider.unwrap(blob, AAD)) == SECRET
    other = bytes(reversed(SECRET))
    assert run(provider.unwrap(run(provider.wrap(key_id, other, b"")), b"")) == other


def test_aad_is_bound(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-aad"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    for wrong in (b"", AAD + b"x", AAD[:-1], b"instance:other|version:1"):
        with pytest.raises(WrappedKeyInvalid):
            run(provider.unwrap(blob, wrong))


def test_blob_of_another_key_does_not_open(provider: RootKeyProvider) -> None:
    first = run(provider.create("contract-a"))
    second = run(provider.create("contract-b"))
    blob = run(provider.wrap(first, SECRET, AAD))
    moved = blob.replace(first.encode(), second.encode())
    assert moved != blob
    with pytest.raises(WrappedKeyInvalid):
        run(provider.unwrap(moved, AAD))


def test_tampered_blob_fails_with_one_error(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-tamper"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    id_start = len(MAGIC) + 3
    id_end = id_start + len(key_id.encode())
    for index in range(len(blob)):
        if id_start <= index < id_end:
            continue  # another key id names another (missing) key: see the next test
        for mask in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[index] ^= mask
            with pytest.raises(WrappedKeyInvalid):
                run(provider.unwrap(bytes(tampered), AAD))
    for cut in (0, 1, len(MAGIC), id_end, id_end + 4, len(blob) - 1):
        with pytest.raises(WrappedKeyInvalid):
            run(provider.unwrap(blob[:cut], AAD))
    with pytest.raises(WrappedKeyInvalid):
        run(provider.unwrap(blob + b"\x00", AAD))


def test_blob_naming_an_unknown_key_fails(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-unknown"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    unknown = str(uuid.uuid4())
    with pytest.raises((WrappedKeyInvalid, KeyNotUsable)):
        run(provider.unwrap(blob.replace(key_id.encode(), unknown.encode()), AAD))


def test_rotate_then_old_blobs_still_open(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-rotate"))
    old = run(provider.wrap(key_id, SECRET, AAD))
    assert run(provider.rotate(key_id)) == 2
    new = run(provider.wrap(key_id, SECRET, AAD))
    assert parse_blob(new)[0].version == 2
    assert run(provider.status(key_id)).versions == 2
    assert run(provider.rotate(key_id)) == 3
    newest = run(provider.wrap(key_id, SECRET, AAD))
    for blob in (old, new, newest):
        assert run(provider.unwrap(blob, AAD)) == SECRET
    with pytest.raises(WrappedKeyInvalid):
        run(provider.unwrap(old, b"other"))


def test_disable_stops_wrap_and_unwrap_until_enabled(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-disable"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    if not provider.capabilities.disable:
        with pytest.raises(NotSupported):
            run(provider.disable(key_id))
        return
    run(provider.disable(key_id))
    assert run(provider.status(key_id)).state == KeyState.DISABLED
    with pytest.raises(KeyNotUsable) as wrapping:
        run(provider.wrap(key_id, SECRET, AAD))
    assert wrapping.value.state == KeyState.DISABLED
    with pytest.raises(KeyNotUsable):
        run(provider.unwrap(blob, AAD))
    run(provider.enable(key_id))
    assert run(provider.status(key_id)).state == KeyState.ACTIVE
    assert run(provider.unwrap(blob, AAD)) == SECRET


def test_delete_makes_unwrap_fail(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-delete"))
    run(provider.rotate(key_id))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    run(provider.delete(key_id))
    expected = KeyState.DELETED if provider.capabilities.reports_deleted else KeyState.MISSING
    assert run(provider.status(key_id)).state == expected
    with pytest.raises(KeyNotUsable) as unwrapping:
        run(provider.unwrap(blob, AAD))
    assert unwrapping.value.state == expected
    with pytest.raises(KeyNotUsable):
        run(provider.wrap(key_id, SECRET, AAD))
    with pytest.raises(KeyNotUsable):
        run(provider.rotate(key_id))


def test_unknown_key_is_missing(provider: RootKeyProvider) -> None:
    unknown = str(uuid.uuid4())
    status = run(provider.status(unknown))
    assert (status.state, status.versions) == (KeyState.MISSING, 0)
    with pytest.raises(KeyNotUsable) as wrapping:
        run(provider.wrap(unknown, SECRET, AAD))
    assert wrapping.value.state == KeyState.MISSING


def test_plaintext_sizes(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-size"))
    with pytest.raises(ValueError):
        run(provider.wrap(key_id, b"", AAD))
    with pytest.raises(ValueError):
        run(provider.wrap(key_id, bytes(provider.capabilities.max_plaintext + 1), AAD))
    for size in (1, 7, 16, 31, 32, 33, 48, 65, provider.capabilities.max_plaintext):
        plaintext = bytes((i * 7 + size) % 256 for i in range(size))
        blob = run(provider.wrap(key_id, plaintext, AAD))
        assert run(provider.unwrap(blob, AAD)) == plaintext, size


def test_errors_are_provider_errors_and_carry_no_material(provider: RootKeyProvider) -> None:
    key_id = run(provider.create("contract-errors"))
    blob = run(provider.wrap(key_id, SECRET, AAD))
    with pytest.raises(ProviderError) as failure:
        run(provider.unwrap(blob, b"wrong"))
    assert SECRET.hex() not in str(failure.value) and AAD.decode() not in str(failure.value)


def test_health(provider: RootKeyProvider) -> None:
    health = run(provider.health())
    assert health.ok, health.detail
    assert health.detail
