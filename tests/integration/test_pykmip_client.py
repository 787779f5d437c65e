"""PyKMIP's ProxyKmipClient against a real kmipd, in KMIP 1.1, 1.4 and 2.0.

PyKMIP is the client many KMIP tools and scripts are built on (and the server vCenter was
captured against). The client is configured as a user would: the server's CA, the default
instance's client certificate and key, host 127.0.0.1.

Hostname checks: ProxyKmipClient builds ``ssl.SSLContext(PROTOCOL_SSLv23)`` and wraps its
socket without ``server_hostname``, so it verifies the server's chain against ``ca`` but never
checks the host name. ``test_server_certificate_names_127_0_0_1`` checks the name with the
standard library, for the clients that do.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kmip.core import enums
from kmip.core.enums import KMIPVersion
from kmip.core.factories.attributes import AttributeFactory
from kmip.pie import objects
from kmip.pie.client import ProxyKmipClient
from kmip.pie.exceptions import KmipOperationFailure

from tests.support.pykmip import pykmip_client
from tests.support.server import KmipdServer

VERSIONS = [KMIPVersion.KMIP_1_1, KMIPVersion.KMIP_1_4, KMIPVersion.KMIP_2_0]


@pytest.fixture(scope="module")
def server(shared_server: KmipdServer) -> KmipdServer:
    return shared_server  # conftest's: one server for the module


@pytest.fixture(params=VERSIONS, ids=lambda v: f"kmip-{v.value}")
def client(
    request: pytest.FixtureRequest, server: KmipdServer, tmp_path: Path
) -> Iterator[ProxyKmipClient]:
    with pykmip_client(server, tmp_path, request.param) as client:
        yield client


def name_attribute(name: str) -> object:
    return AttributeFactory().create_attribute(enums.AttributeType.NAME, name)


def test_server_certificate_names_127_0_0_1(server: KmipdServer) -> None:
    context = ssl.create_default_context(cafile=str(server.ca))
    context.load_cert_chain(*server.credentials())
    with (
        socket.create_connection(("127.0.0.1", server.kmip_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_create_activate_get_revoke_destroy(client: ProxyKmipClient) -> None:
    name = f"pykmip-{uuid.uuid4()}"
    uid = client.create(enums.CryptographicAlgorithm.AES, 256, name=name)
    assert isinstance(uid, str) and uid

    key = client.get(uid)
    assert isinstance(key, objects.SymmetricKey)
    assert key.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
    assert key.cryptographic_length == 256
    assert len(key.value) == 32

    client.activate(uid)
    got_uid, attributes = client.get_attributes(uid, ["State", "Cryptographic Length"])
    assert got_uid == uid
    values = {a.attribute_name.value: a.attribute_value.value for a in attributes}
    assert values == {"State": enums.State.ACTIVE, "Cryptographic Length": 256}

    names = client.get_attribute_list(uid)
    assert {"State", "Cryptographic Algorithm", "Cryptographic Length", "Name"} <= set(names)

    assert client.locate(attributes=[name_attribute(name)]) == [uid]

    client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    _, attributes = client.get_attributes(uid, ["State"])
    assert attributes[0].attribute_value.value == enums.State.DEACTIVATED

    client.destroy(uid)
    with pytest.raises(KmipOperationFailure) as failure:
        client.get(uid)
    assert failure.value.status == enums.ResultStatus.OPERATION_FAILED
    assert client.locate(attributes=[name_attribute(name)]) == []


def test_register_symmetric_key(client: ProxyKmipClient) -> None:
    material = secrets.token_bytes(32)
    name = f"pykmip-registered-{uuid.uuid4()}"
    uid = client.register(
        objects.SymmetricKey(
            enums.CryptographicAlgorithm.AES,
            256,
            material,
            masks=[enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT],
            name=name,
        )
    )
    key = client.get(uid)
    assert isinstance(key, objects.SymmetricKey)
    assert key.value == material
    assert key.cryptographic_length == 256
    assert client.locate(attributes=[name_attribute(name)]) == [uid]
    client.destroy(uid)  # Pre-Active: may be destroyed


def test_register_secret_data(client: ProxyKmipClient) -> None:
    secret = secrets.token_bytes(24)
    uid = client.register(
        objects.SecretData(
            secret,
            enums.SecretDataType.PASSWORD,
            masks=[enums.CryptographicUsageMask.DERIVE_KEY],
            name=f"pykmip-secret-{uuid.uuid4()}",
        )
    )
    data = client.get(uid)
    assert isinstance(data, objects.SecretData)
    assert data.value == secret
    assert data.data_type == enums.SecretDataType.PASSWORD
    _, attributes = client.get_attributes(uid, ["Object Type"])
    assert attributes[0].attribute_value.value == enums.ObjectType.SECRET_DATA
    client.activate(uid)
    client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    client.destroy(uid)


def test_get_unknown_uid_fails_with_not_found(client: ProxyKmipClient) -> None:
    with pytest.raises(KmipOperationFailure) as failure:
        client.get(str(uuid.uuid4()))
    # KMIP 2.x has the more precise Object Not Found (the 2.1 Baseline test BL-M-4-21 expects
    # it); 1.x only Item Not Found.
    expected = (
        enums.ResultReason.OBJECT_NOT_FOUND
        if client.kmip_version == KMIPVersion.KMIP_2_0
        else enums.ResultReason.ITEM_NOT_FOUND
    )
    assert failure.value.reason == expected
