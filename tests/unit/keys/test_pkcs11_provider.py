"""The PKCS#11 provider's own promises, on the test run's SoftHSM2 token (``tests.support``):
what the root key objects look like in the token, the PIN's handling, health, and that the
key wrap mechanism is RFC 5649 as the blob header says.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from kmipd.keys.providers.base import Mechanism, ProviderUnavailable, parse_blob
from tests.support import softhsm

pkcs11 = pytest.importorskip("pkcs11") if not softhsm.under_ci() else __import__("pkcs11")

from kmipd.keys.providers.pkcs11 import PIN_ENV, Pkcs11Config, Pkcs11Provider  # noqa: E402

Attribute = pkcs11.Attribute


@pytest.fixture
def token() -> softhsm.SoftHsmToken:
    return softhsm.token()


@pytest.fixture
def provider(token: softhsm.SoftHsmToken) -> Iterator[Pkcs11Provider]:
    provider = Pkcs11Provider(Pkcs11Config(token.module, token.label, pin=token.user_pin))
    yield provider
    asyncio.run(provider.close())


def _session(token: softhsm.SoftHsmToken) -> object:
    """A session of the test's own (logged in already if a provider's session is open)."""
    lib = pkcs11.lib(token.module)
    handle = lib.get_token(token_label=token.label)
    try:
        return handle.open(rw=True, user_pin=token.user_pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        return handle.open(rw=True)


def test_root_key_objects_are_sensitive_non_extractable_aes256(
    token: softhsm.SoftHsmToken, provider: Pkcs11Provider
) -> None:
    key_id = asyncio.run(provider.create("objects"))
    asyncio.run(provider.rotate(key_id))
    with _session(token) as session:  # type: ignore[attr-defined]
        for version in (1, 2):
            label = f"kmipd-root/{key_id}/v{version}"
            key = session.get_key(label=label)
            assert key.key_type == pkcs11.KeyType.AES and key.key_length == 256
            assert key[Attribute.TOKEN] and key[Attribute.PRIVATE] and key[Attribute.SENSITIVE]
            assert not key[Attribute.EXTRACTABLE] and key[Attribute.NEVER_EXTRACTABLE]
            assert key[Attribute.ID] == uuid.UUID(key_id).bytes + version.to_bytes(4, "big")
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[Attribute.VALUE]
    asyncio.run(provider.delete(key_id))
    with _session(token) as session:  # type: ignore[attr-defined]
        assert not list(session.get_objects({Attribute.LABEL: f"kmipd-root/{key_id}/v1"}))


def test_kwp_blob_is_rfc5649(token: softhsm.SoftHsmToken) -> None:
    """The token's CKM_AES_KEY_WRAP_PAD output of a payload as the provider pads it (a
    multiple of 8 bytes) is RFC 5649 (pyca) under the same key: checked with an extractable
    look-alike key, since root keys cannot be read. (For other lengths SoftHSM2 zero-pads the
    value before wrapping, so its output differs from RFC 5649; the provider pads itself.)"""
    with _session(token) as session:  # type: ignore[attr-defined]
        kek = session.generate_key(
            pkcs11.KeyType.AES,
            256,
            label="rfc5649-check",
            template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False},
        )
        payload = bytes(range(71)) + b"\x01"
        secret = session.create_object(
            {
                Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.GENERIC_SECRET,
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.VALUE: payload,
            }
        )
        wrapped = kek.wrap_key(secret, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        key = kek[Attribute.VALUE]
        assert aes_key_unwrap_with_padding(key, wrapped) == payload
        assert aes_key_wrap_with_padding(key, payload) == wrapped


def test_kwp_provider_records_mechanism(token: softhsm.SoftHsmToken) -> None:
    provider = Pkcs11Provider(
        Pkcs11Config(token.module, token.label, pin=token.user_pin, mechanism="aes-kwp")
    )
    try:
        key_id = asyncio.run(provider.create("kwp"))
        blob = asyncio.run(provider.wrap(key_id, bytes(32), b"aad"))
        assert parse_blob(blob)[0].mechanism == Mechanism.AES_KWP
        # A provider that wraps with GCM still opens KWP blobs.
        gcm = Pkcs11Provider(Pkcs11Config(token.module, token.label, pin=token.user_pin))
        assert gcm.capabilities.mechanism == Mechanism.AES_GCM
        assert asyncio.run(gcm.unwrap(blob, b"aad")) == bytes(32)
        asyncio.run(gcm.close())
    finally:
        asyncio.run(provider.close())


def test_pin_from_environment(token: softhsm.SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMIPD_TEST_PIN_VARIABLE", token.user_pin)
    config = Pkcs11Config(token.module, token.label, pin_env="KMIPD_TEST_PIN_VARIABLE")
    provider = Pkcs11Provider(config)
    try:
        assert asyncio.run(provider.health()).ok
    finally:
        asyncio.run(provider.close())
    assert PIN_ENV == "KMIPD_PKCS11_PIN"


def test_pin_is_never_shown(token: softhsm.SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Pkcs11Config(token.module, token.label, pin=token.user_pin)
    assert token.user_pin not in repr(config)
    wrong = Pkcs11Provider(Pkcs11Config(token.module, token.label, pin="wrong-pin-9876"))
    health = asyncio.run(wrong.health())
    assert not health.ok and "wrong-pin-9876" not in health.detail
    with pytest.raises(ProviderUnavailable) as refused:
        asyncio.run(wrong.create("never"))
    assert "wrong-pin-9876" not in str(refused.value)
    monkeypatch.delenv(PIN_ENV, raising=False)
    missing = Pkcs11Provider(Pkcs11Config(token.module, token.label))
    with pytest.raises(ProviderUnavailable, match=PIN_ENV):
        asyncio.run(missing.create("never"))


def test_health_reports_an_unreachable_token(token: softhsm.SoftHsmToken) -> None:
    absent = Pkcs11Provider(Pkcs11Config(token.module, "no-such-token", pin=token.user_pin))
    assert not asyncio.run(absent.health()).ok
    no_module = Pkcs11Provider(Pkcs11Config("/nonexistent/libp11.so", token.label, pin="x"))
    assert not asyncio.run(no_module.health()).ok


def test_absent_softhsm_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        softhsm.unavailable("SoftHSM2 is not installed")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        softhsm.unavailable("SoftHSM2 is not installed")
