"""kmipd.crypto.symmetric on published vectors and against ``cryptography`` directly."""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from kmipd.crypto import symmetric
from kmipd.crypto.errors import CryptoError
from kmipd.crypto.params import CryptoParams, parse
from kmipd.protocol._generated import (
    BlockCipherMode,
    CryptographicAlgorithm,
    PaddingMethod,
    ResultReason,
    Tag,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item

A = CryptographicAlgorithm

# RFC 8439 §2.8.2: the ChaCha20-Poly1305 AEAD example.
RFC_KEY = bytes(range(0x80, 0xA0))
RFC_NONCE = bytes.fromhex("070000004041424344454647")
RFC_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
RFC_TEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC_TAG = bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691")


def test_chacha20_poly1305_rfc8439_vector_and_truncated_tags() -> None:
    params = CryptoParams(tag_length=16)
    sealed = symmetric.encrypt(A.CHACHA20POLY1305, RFC_KEY, params, RFC_TEXT, RFC_NONCE, RFC_AAD)
    assert sealed.tag == RFC_TAG
    assert sealed.data + sealed.tag == ChaCha20Poly1305(RFC_KEY).encrypt(
        RFC_NONCE, RFC_TEXT, RFC_AAD
    )
    # A 12-byte tag is the full tag cut short, and opens the same data.
    short = CryptoParams(tag_length=12)
    opened = symmetric.decrypt(
        A.CHACHA20POLY1305, RFC_KEY, short, sealed.data, RFC_NONCE, RFC_AAD, RFC_TAG[:12]
    )
    assert opened == RFC_TEXT
    with pytest.raises(CryptoError) as forged:
        symmetric.decrypt(A.CHACHA20POLY1305, RFC_KEY, params, sealed.data, RFC_NONCE, b"", RFC_TAG)
    assert forged.value.reason == ResultReason.CRYPTOGRAPHIC_FAILURE


def test_chacha20_zero_key_keystream() -> None:
    # RFC 8439 §A.1 test vector 1: the keystream of the zero key and nonce, block 0.
    out = symmetric.encrypt(A.CHACHA20, bytes(32), CryptoParams(), bytes(64), bytes(8), None)
    assert out.data.hex().startswith("76b8e0ada0f13d90405d6ae55386bd28")


def test_triple_des_cbc_matches_cryptography() -> None:
    key, iv, data = bytes(range(24)), bytes(8), b"sixteen  bytes!!"
    params = CryptoParams(block_cipher_mode=BlockCipherMode.CBC)
    sealed = symmetric.encrypt(A.DES3, key, params, data, iv, None)
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    assert sealed.data == encryptor.update(data) + encryptor.finalize()


def test_stream_in_parts_equals_one_shot() -> None:
    params = CryptoParams(block_cipher_mode=BlockCipherMode.CBC, padding_method=PaddingMethod.PKCS5)
    key, iv, data = bytes(range(16)), bytes(16), bytes(range(50))
    whole = symmetric.encrypt(A.AES, key, params, data, iv, None)
    stream = symmetric.begin(A.AES, key, params, iv, None, encrypting=True, multipart=True)
    parts = stream.update(data[:7]) + stream.update(data[7:33]) + stream.update(data[33:])
    assert parts + stream.finish(None).data == whole.data
    with pytest.raises(CryptoError) as xts:
        symmetric.begin(
            A.AES,
            bytes(64),
            CryptoParams(block_cipher_mode=BlockCipherMode.XTS),
            bytes(16),
            None,
            encrypting=True,
            multipart=True,
        )
    assert xts.value.reason == ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS


def test_gcm_tag_length_out_of_range_is_the_profile_reason() -> None:
    for length in (1, 3, 17, 32):
        with pytest.raises(CryptoError) as refused:
            symmetric.encrypt(
                A.AES,
                bytes(16),
                CryptoParams(block_cipher_mode=BlockCipherMode.GCM, tag_length=length),
                bytes(16),
                bytes(12),
                None,
            )
        # CS-BC-M-GCM-1 expects General Failure here; the message says what to fix.
        assert refused.value.reason == ResultReason.GENERAL_FAILURE
        assert "4 to 16 bytes" in refused.value.message


def test_parameters_parse_and_merge() -> None:
    given = Item(
        Tag.CRYPTOGRAPHIC_PARAMETERS,
        STRUCTURE,
        [
            Item(Tag.BLOCK_CIPHER_MODE, ENUMERATION, BlockCipherMode.GCM),
            Item(Tag.TAG_LENGTH, INTEGER, 12),
        ],
    )
    own = CryptoParams(block_cipher_mode=BlockCipherMode.CBC, padding_method=PaddingMethod.PKCS5)
    merged = parse(given).over(own)
    assert merged.block_cipher_mode == BlockCipherMode.GCM  # the request wins
    assert merged.padding_method == PaddingMethod.PKCS5  # the key fills in
    assert merged.tag_length == 12
    wrong_type = Item(
        Tag.CRYPTOGRAPHIC_PARAMETERS, STRUCTURE, [Item(Tag.TAG_LENGTH, TEXT_STRING, "12")]
    )
    with pytest.raises(CryptoError) as refused:
        parse(wrong_type)
    assert refused.value.reason == ResultReason.BAD_CRYPTOGRAPHIC_PARAMETERS
    unknown = Item(
        Tag.CRYPTOGRAPHIC_PARAMETERS, STRUCTURE, [Item(Tag.FIXED_FIELD_LENGTH, INTEGER, 32)]
    )
    with pytest.raises(CryptoError) as refused:
        parse(unknown)
    assert refused.value.reason == ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS
