"""PyKMIP's ProxyKmipClient runs server-side cryptography against a real kmipd (TLS, a real
``kmipd serve``): encrypt, decrypt, sign, signature_verify and mac, in KMIP 1.4 and 2.0.

Every answer is checked independently of kmipd: ciphertext against ``cryptography`` with
the same key, signatures against the public key PyKMIP fetches with Get, MACs against
``hmac``. (Encrypt and friends are KMIP 1.2 operations; PyKMIP's 1.1 client cannot send them.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from kmip.core import enums
from kmip.core.enums import KMIPVersion
from kmip.pie import objects
from kmip.pie.client import ProxyKmipClient
from kmip.pie.exceptions import KmipOperationFailure

from tests.support.pykmip import pykmip_client
from tests.support.server import KmipdServer

Mask = enums.CryptographicUsageMask


@pytest.fixture(scope="module")
def server(shared_server: KmipdServer) -> KmipdServer:
    return shared_server  # conftest's: one server for the module


@pytest.fixture(
    params=[KMIPVersion.KMIP_1_4, KMIPVersion.KMIP_2_0], ids=lambda v: f"kmip-{v.value}"
)
def client(
    request: pytest.FixtureRequest, server: KmipdServer, tmp_path: Path
) -> Iterator[ProxyKmipClient]:
    with pykmip_client(server, tmp_path, request.param) as client:
        yield client


def _register_aes(client: ProxyKmipClient, material: bytes, masks: list[Mask]) -> str:
    uid = client.register(
        objects.SymmetricKey(
            enums.CryptographicAlgorithm.AES,
            len(material) * 8,
            material,
            masks,
            name=f"pykmip-crypto-{uuid.uuid4()}",  # PyKMIP's default Name is not unique
        )
    )
    client.activate(uid)
    return str(uid)


def test_encrypt_decrypt_cbc_with_a_server_chosen_iv(client: ProxyKmipClient) -> None:
    material = secrets.token_bytes(32)
    uid = _register_aes(client, material, [Mask.ENCRYPT, Mask.DECRYPT])
    parameters = {
        "block_cipher_mode": enums.BlockCipherMode.CBC,
        "padding_method": enums.PaddingMethod.PKCS5,
        "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
        "random_iv": True,
    }
    plaintext = b"pay the bearer forty-two coins"
    ciphertext, iv = client.encrypt(plaintext, uid=uid, cryptographic_parameters=parameters)
    assert iv is not None and len(iv) == 16
    decryptor = Cipher(algorithms.AES(material), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    assert padded == plaintext + bytes([16 - len(plaintext) % 16]) * (16 - len(plaintext) % 16)

    parameters["random_iv"] = False
    decrypted = client.decrypt(
        ciphertext, uid=uid, cryptographic_parameters=parameters, iv_counter_nonce=iv
    )
    assert decrypted == plaintext


def test_encrypt_refused_without_the_usage_mask_bit(client: ProxyKmipClient) -> None:
    uid = _register_aes(client, secrets.token_bytes(16), [Mask.DECRYPT])
    with pytest.raises(KmipOperationFailure) as refused:
        client.encrypt(
            bytes(16),
            uid=uid,
            cryptographic_parameters={"block_cipher_mode": enums.BlockCipherMode.ECB},
        )
    assert refused.value.reason in (
        enums.ResultReason.PERMISSION_DENIED,  # KMIP 1.4
        enums.ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,  # KMIP 2.0
    )


def test_sign_and_signature_verify_with_a_created_key_pair(client: ProxyKmipClient) -> None:
    public_uid, private_uid = client.create_key_pair(
        enums.CryptographicAlgorithm.RSA,
        2048,
        public_name=f"pykmip-public-{uuid.uuid4()}",
        private_name=f"pykmip-private-{uuid.uuid4()}",
        public_usage_mask=[Mask.VERIFY],
        private_usage_mask=[Mask.SIGN],
    )
    client.activate(public_uid)
    client.activate(private_uid)
    parameters = {
        "cryptographic_algorithm": enums.CryptographicAlgorithm.RSA,
        "padding_method": enums.PaddingMethod.PSS,
        "hashing_algorithm": enums.HashingAlgorithm.SHA_256,
    }
    message = b"release build 1.2.3"
    signature = client.sign(message, uid=private_uid, cryptographic_parameters=parameters)

    # Independently: the public key PyKMIP gets back verifies the signature.
    public = client.get(public_uid)
    key = serialization.load_der_public_key(public.value)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        signature,
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        hashes.SHA256(),
    )

    valid = client.signature_verify(
        message, signature, uid=public_uid, cryptographic_parameters=parameters
    )
    assert valid == enums.ValidityIndicator.VALID
    invalid = client.signature_verify(
        message + b"!", signature, uid=public_uid, cryptographic_parameters=parameters
    )
    assert invalid == enums.ValidityIndicator.INVALID


def test_mac(client: ProxyKmipClient) -> None:
    material = secrets.token_bytes(32)
    uid = client.register(
        objects.SymmetricKey(
            enums.CryptographicAlgorithm.HMAC_SHA256,
            256,
            material,
            [Mask.MAC_GENERATE],
            name=f"pykmip-hmac-{uuid.uuid4()}",
        )
    )
    client.activate(uid)
    got_uid, mac = client.mac(
        b"ledger line 7", uid=uid, algorithm=enums.CryptographicAlgorithm.HMAC_SHA256
    )
    assert got_uid == uid
    assert mac == hmac.new(material, b"ledger line 7", hashlib.sha256).digest()
