"""PyKMIP's ProxyKmipClient creates, registers and fetches asymmetric keys from a real kmipd
(KMIP 1.1, 1.4 and 2.0 over mutual TLS), and the keys it gets back work: the private key signs
locally (``cryptography``) and the public key verifies the signature.

The client is configured as in ``test_pykmip_client.py``. PyKMIP's client has no Query; the
Query answer is checked with kmipd's own codec.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from kmip.core import enums
from kmip.core.enums import KMIPVersion
from kmip.pie import objects
from kmip.pie.client import ProxyKmipClient
from kmip.pie.exceptions import KmipOperationFailure

from kmipd.protocol._generated import ObjectType, Operation, QueryFunction
from kmipd.protocol.payloads import QueryRequest
from tests.support.kmip import ok as kmip_ok
from tests.support.kmip import request as kmip_request
from tests.support.pykmip import pykmip_client
from tests.support.server import KmipdServer

VERSIONS = [KMIPVersion.KMIP_1_1, KMIPVersion.KMIP_1_4, KMIPVersion.KMIP_2_0]
MESSAGE = b"signed by a key kmipd generated"


@pytest.fixture(scope="module")
def server(shared_server: KmipdServer) -> KmipdServer:
    return shared_server  # conftest's: one server for the module


@pytest.fixture(params=VERSIONS, ids=lambda v: f"kmip-{v.value}")
def client(
    request: pytest.FixtureRequest, server: KmipdServer, tmp_path: Path
) -> Iterator[ProxyKmipClient]:
    with pykmip_client(server, tmp_path, request.param) as client:
        yield client


def attribute_values(client: ProxyKmipClient, uid: str, *names: str) -> dict[str, object]:
    _, attributes = client.get_attributes(uid, list(names))
    return {a.attribute_name.value: a.attribute_value.value for a in attributes}


def test_create_key_pair_rsa_signs_and_verifies(client: ProxyKmipClient) -> None:
    suffix = uuid.uuid4()
    public_uid, private_uid = client.create_key_pair(
        enums.CryptographicAlgorithm.RSA,
        2048,
        public_name=f"pykmip-public-{suffix}",
        public_usage_mask=[enums.CryptographicUsageMask.VERIFY],
        private_name=f"pykmip-private-{suffix}",
        private_usage_mask=[enums.CryptographicUsageMask.SIGN],
    )
    assert public_uid != private_uid

    public = client.get(public_uid)
    private = client.get(private_uid)
    assert isinstance(public, objects.PublicKey)
    assert isinstance(private, objects.PrivateKey)
    for key in (public, private):
        assert key.cryptographic_algorithm == enums.CryptographicAlgorithm.RSA
        assert key.cryptographic_length == 2048
        assert key.key_format_type == enums.KeyFormatType.PKCS_1

    private_key = serialization.load_der_private_key(private.value, password=None)
    public_key = serialization.load_der_public_key(public.value)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert isinstance(public_key, rsa.RSAPublicKey)
    signature = private_key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    public_key.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())

    assert attribute_values(client, private_uid, "Object Type", "Cryptographic Usage Mask") == {
        "Object Type": enums.ObjectType.PRIVATE_KEY,
        "Cryptographic Usage Mask": enums.CryptographicUsageMask.SIGN.value,
    }
    assert attribute_values(client, public_uid, "Object Type") == {
        "Object Type": enums.ObjectType.PUBLIC_KEY
    }
    client.destroy(private_uid)
    client.destroy(public_uid)
    with pytest.raises(KmipOperationFailure):
        client.get(private_uid)


def test_create_key_pair_ec_p256(client: ProxyKmipClient) -> None:
    public_uid, private_uid = client.create_key_pair(enums.CryptographicAlgorithm.EC, 256)
    public = client.get(public_uid)
    private = client.get(private_uid)
    assert private.key_format_type == enums.KeyFormatType.PKCS_8
    assert public.key_format_type == enums.KeyFormatType.X_509
    private_key = serialization.load_der_private_key(private.value, password=None)
    public_key = serialization.load_der_public_key(public.value)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(private_key.curve, ec.SECP256R1)
    signature = private_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_create_key_pair_with_an_unsupported_length_fails_precisely(
    client: ProxyKmipClient,
) -> None:
    with pytest.raises(KmipOperationFailure) as failure:
        client.create_key_pair(enums.CryptographicAlgorithm.RSA, 1024)
    assert failure.value.reason == enums.ResultReason.INVALID_FIELD
    assert "2048, 3072 or 4096" in str(failure.value)


def test_register_and_get_private_key(client: ProxyKmipClient) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    uid = client.register(
        objects.PrivateKey(
            enums.CryptographicAlgorithm.RSA,
            3072,
            der,
            enums.KeyFormatType.PKCS_8,
            masks=[enums.CryptographicUsageMask.SIGN],
            name=f"pykmip-registered-private-{uuid.uuid4()}",
        )
    )
    got = client.get(uid)
    assert isinstance(got, objects.PrivateKey)
    assert got.key_format_type == enums.KeyFormatType.PKCS_8
    assert got.value == der
    fetched = serialization.load_der_private_key(got.value, password=None)
    signature = fetched.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
    key.public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    client.destroy(uid)


def test_query_reports_create_key_pair_and_the_key_objects(server: KmipdServer) -> None:
    for version in ((1, 4), (2, 1)):
        request = kmip_request(
            Operation.QUERY,
            QueryRequest(
                query_functions=[QueryFunction.QUERY_OPERATIONS, QueryFunction.QUERY_OBJECTS]
            ),
            version,
        )
        answer = kmip_ok(server.call(request))
        assert Operation.CREATE_KEY_PAIR in answer.operations
        assert {ObjectType.PRIVATE_KEY, ObjectType.PUBLIC_KEY, ObjectType.CERTIFICATE} <= set(
            answer.object_types
        )
