"""KMIP over HTTPS (``POST /kmip``) against a real ``kmipd serve``, over real TLS sockets.

Each encoding (TTLV, KMIP XML, KMIP JSON) round-trips a Create and a Get, on SQLite and on
PostgreSQL, and the key is the same one the KMIP port serves. The caller is its TLS client
certificate, as on port 5696: none, one no instance allows, one removed, and one nobody
trusts are each refused with a precise answer; a wrong Content-Type gets 415, a body that is
not what its Content-Type says gets 400 with a KMIP Invalid Message response in that
encoding, a body over ``https.max_body_bytes`` gets 413. The audit trail holds one record per
KMIP operation (channel ``kmip``, the certificate's fingerprint as actor, as on port 5696),
none of the API's own for those requests, and one ``https`` record for each refusal.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd.protocol import json_encoding, messages, ttlv, xml_encoding
from kmipd.protocol._generated import ObjectType, Operation, ResultReason, ResultStatus
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.payloads import CreateRequest, DiscoverVersionsRequest, GetAttributesRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, Item
from kmipd.transport.tls import fingerprint
from tests.support import kmip
from tests.support.admin import bearer, https_client
from tests.support.kmip_http import ENCODINGS, KmipHttpsClient
from tests.support.server import KmipdServer, init_server

ALL_ENCODINGS = tuple(ENCODINGS)


def _tree(request: bytes) -> Item:
    return ttlv.decode(request)


def _batch_item(response: Item) -> messages.ResponseBatchItem:
    decoded = messages.decode_response(ttlv.encode(response))
    assert len(decoded.batch_items) == 1
    return decoded.batch_items[0]


def _ok(response: Item) -> Any:
    item = _batch_item(response)
    assert item.result_status == ResultStatus.SUCCESS, (item.result_reason, item.result_message)
    return item.payload


def _fingerprint_of(certificate_pem: Path) -> str:
    certificate = x509.load_pem_x509_certificate(certificate_pem.read_bytes())
    return fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def _audit(server: KmipdServer, **filters: str) -> list[dict[str, Any]]:
    with https_client(server) as http:
        answer = http.get(
            "/admin/v1/audit",
            params={**filters, "limit": "1000"},
            headers=bearer(server.admin_api_key),
        )
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


def _no_traceback(server: KmipdServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-4000:]


def _kmipd_ca(server: KmipdServer) -> tuple[x509.Certificate, Any]:
    pki = server.data_dir / "pki"
    return (
        x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes()),
        serialization.load_pem_private_key((pki / "ca-key.pem").read_bytes(), None),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("kmip-https")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the encodings ---------------------------------------------------------------------------


@pytest.fixture
def store_server(tmp_path: Path, store_url: str) -> Iterator[KmipdServer]:
    server = init_server(tmp_path / "data", store_url=store_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_each_encoding_round_trips_create_and_get(store_server: KmipdServer) -> None:
    seen_over_kmip_port = {}
    with KmipHttpsClient.for_instance(store_server) as client:
        for encoding in ALL_ENCODINGS:
            created = _ok(client.send(_tree(kmip.create_aes()), encoding))
            uid = created.unique_identifier
            assert isinstance(uid, str) and uid
            got = _ok(client.send(_tree(kmip.get(uid)), encoding))
            assert got.unique_identifier == uid
            material = got.managed_object.key_block.key_value.key_material
            assert isinstance(material, bytes) and len(material) == 32
            # The same engine and instance as the KMIP port: it serves the same key.
            assert kmip.key_material(store_server.call(kmip.get(uid))) == material
            seen_over_kmip_port[encoding] = material
    assert len(set(seen_over_kmip_port.values())) == len(ALL_ENCODINGS)  # three keys
    _no_traceback(store_server)


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_the_reply_is_in_the_request_encoding_and_version(
    server: KmipdServer, encoding: str
) -> None:
    codec = ENCODINGS[encoding]
    request = kmip.request(Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest(), (2, 1))
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(codec.encode(_tree(request)), codec.content_type)
    assert answer.status_code == 200
    assert answer.headers["content-type"].partition(";")[0] == codec.content_type
    response = codec.decode(answer.content)
    version = messages.decode_response(ttlv.encode(response)).header.protocol_version
    assert (version.major, version.minor) == (2, 1)
    versions = _ok(response).protocol_versions
    assert (versions[0].major, versions[0].minor) == (2, 1)


def test_a_kmip_error_is_a_kmip_response_with_200(server: KmipdServer) -> None:
    """As on port 5696: the engine's refusal is a KMIP answer, not an HTTP error."""
    with KmipHttpsClient.for_instance(server) as client:
        item = _batch_item(client.send(_tree(kmip.get("no-such-object")), "json"))
    assert item.result_status == ResultStatus.OPERATION_FAILED
    assert item.result_reason == ResultReason.ITEM_NOT_FOUND


# -- who the caller is -----------------------------------------------------------------------


def test_no_client_certificate_is_refused_and_the_api_still_works(server: KmipdServer) -> None:
    body = ENCODINGS["ttlv"].encode(_tree(kmip.create_aes()))
    with https_client(server) as http:  # no client certificate
        answer = http.post(
            "/kmip", content=body, headers={"Content-Type": "application/octet-stream"}
        )
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert error["code"] == "client_certificate_required"
        assert "sent none" in error["message"]
        # The management API's callers still need no client certificate.
        instances = http.get("/admin/v1/instances", headers=bearer(server.admin_api_key))
        assert instances.status_code == 200
    _no_traceback(server)


def test_a_certificate_no_instance_allows_is_refused(server: KmipdServer, tmp_path: Path) -> None:
    """Issued by the kmipd CA (so the TLS handshake succeeds) but pinned on no instance."""
    cert, key = kmip.certificate("nobody's client", issuer=_kmipd_ca(server))
    credentials = kmip.write_credentials(tmp_path, "stranger", cert, key)
    context = server.tls_context(certificate=credentials)
    with KmipHttpsClient(server, context) as client:
        answer = client.post(kmip.create_aes(), "application/octet-stream")
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "client_certificate_not_allowed"
    assert _fingerprint_of(credentials[0]) in error["message"]
    # The KMIP port refuses it too (it closes the connection before any request).
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _kmip_call(server, credentials)
    _no_traceback(server)


def _kmip_call(server: KmipdServer, credentials: tuple[Path, Path]) -> bytes:
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        return connection.call(kmip.discover_versions())


def test_a_removed_certificate_is_refused_at_once(server: KmipdServer) -> None:
    credentials = server.allow_certificate("default", name="removed-later")
    context = server.tls_context(certificate=credentials)
    with KmipHttpsClient(server, context) as client:
        assert isinstance(_ok(client.send(_tree(kmip.create_aes()), "xml")).unique_identifier, str)
        assert server.remove_certificate(_fingerprint_of(credentials[0]))
        # The same keep-alive connection: the next request is looked up again.
        answer = client.post(kmip.create_aes(), "application/octet-stream")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "client_certificate_not_allowed"


def test_a_certificate_nobody_trusts_fails_the_handshake(
    server: KmipdServer, tmp_path: Path
) -> None:
    """Self-signed and pinned nowhere: refused by TLS, as on the KMIP port."""
    cert, key = kmip.certificate("self-signed stranger")
    credentials = kmip.write_credentials(tmp_path, "self-signed", cert, key)
    context = server.tls_context(certificate=credentials)
    with KmipHttpsClient(server, context) as client, pytest.raises(httpx.TransportError):
        client.post(kmip.create_aes(), "application/octet-stream")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _kmip_call(server, credentials)
    # The port keeps serving everyone else.
    with KmipHttpsClient.for_instance(server) as client:
        _ok(client.send(_tree(kmip.discover_versions()), "ttlv"))
    _no_traceback(server)


# -- what the body must be -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        ("text/plain", "Content-Type 'text/plain' is not a KMIP encoding"),
        ("application/xml; charset=utf-8", "'application/xml; charset=utf-8' is not a KMIP"),
        (None, "the request has no Content-Type"),
    ],
)
def test_a_content_type_that_is_no_kmip_encoding_gets_415(
    server: KmipdServer, content_type: str | None, says: str
) -> None:
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(kmip.create_aes(), content_type)
    assert answer.status_code == 415
    error = answer.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert says in error["message"]
    assert "send application/octet-stream (TTLV), text/xml (KMIP XML)" in error["message"]


def test_content_type_parameters_and_case_are_accepted(server: KmipdServer) -> None:
    body = xml_encoding.to_xml(_tree(kmip.create_aes())).encode()
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(body, "Text/XML; charset=UTF-8")
    assert answer.status_code == 200
    assert isinstance(_ok(xml_encoding.from_xml(answer.content)).unique_identifier, str)


MALFORMED = {
    "ttlv": (b"\x42\x00\x78\x01\x00\x00\x00\x10truncated", "longer than its parent"),
    "xml": (b"<RequestMessage><RequestHeader>", "malformed XML at line 1"),
    "json": (b'{"tag": "RequestMessage", "value": [', "malformed JSON"),
}


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_a_malformed_body_gets_400_and_a_kmip_invalid_message_in_its_encoding(
    server: KmipdServer, encoding: str
) -> None:
    body, says = MALFORMED[encoding]
    codec = ENCODINGS[encoding]
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(body, codec.content_type)
    assert answer.status_code == 400
    assert answer.headers["content-type"].partition(";")[0] == codec.content_type
    item = _batch_item(codec.decode(answer.content))
    assert item.result_status == ResultStatus.OPERATION_FAILED
    assert item.result_reason == ResultReason.INVALID_MESSAGE
    assert item.result_message is not None and says in item.result_message
    _no_traceback(server)


def test_xml_with_more_items_than_a_message_may_hold_is_refused_before_parsing(
    server: KmipdServer,
) -> None:
    """limits.max_items_per_message (20,000) holds for XML as for TTLV: 200,000 empty
    elements (800 KB) are counted, not parsed."""
    body = b"<RequestMessage>" + b"<a/>" * 200_000 + b"</RequestMessage>"
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(body, "text/xml")
    assert answer.status_code == 400
    item = _batch_item(xml_encoding.from_xml(answer.content))
    assert item.result_reason == ResultReason.INVALID_MESSAGE
    assert item.result_message is not None
    assert "more than 20000 items in one message" in item.result_message


def test_a_well_formed_body_that_is_no_request_gets_a_kmip_error(server: KmipdServer) -> None:
    """Valid JSON, valid KMIP JSON, but not a Request Message: the engine's answer (200)."""
    body = json.dumps({"tag": "ResponseMessage", "value": []}).encode()
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(body, "application/json")
    assert answer.status_code == 200
    item = _batch_item(json_encoding.from_json(answer.content))
    assert item.result_status == ResultStatus.OPERATION_FAILED
    assert item.result_reason == ResultReason.INVALID_MESSAGE


def test_a_stored_value_xml_cannot_carry_is_refused_in_xml_and_served_in_ttlv(
    server: KmipdServer,
) -> None:
    """A Name with a control character, registered over TTLV: XML 1.0 cannot hold it."""
    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", kmip.AES, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
            kmip.name_attribute("bell\x07name"),
        ]
    )
    create = CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template)
    uid = kmip.created_uid(server.call(kmip.request(Operation.CREATE, create)))
    get_attributes = _tree(
        kmip.request(Operation.GET_ATTRIBUTES, GetAttributesRequest(unique_identifier=uid))
    )
    with KmipHttpsClient.for_instance(server) as client:
        item = _batch_item(client.send(get_attributes, "xml"))
        assert item.result_status == ResultStatus.OPERATION_FAILED
        assert item.result_reason == ResultReason.GENERAL_FAILURE
        assert item.result_message is not None
        assert "cannot be written in KMIP XML" in item.result_message
        assert "ask for it in TTLV" in item.result_message
        names = [a for a in _ok(client.send(get_attributes, "ttlv")).attributes if a.name == "Name"]
    assert [a.value.value[0].value for a in names] == ["bell\x07name"]


def test_a_body_over_the_limit_gets_413(server: KmipdServer) -> None:
    with KmipHttpsClient.for_instance(server) as client:
        answer = client.post(b"\0" * ((1 << 20) + 1), "application/octet-stream")
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "https.max_body_bytes" in error["message"]
    _no_traceback(server)


# -- the audit trail -------------------------------------------------------------------------


def test_the_audit_trail_records_each_kmip_operation_once(server: KmipdServer) -> None:
    instance = "audited"
    credentials = server.add_instance(instance)
    actor = _fingerprint_of(credentials[0])
    with KmipHttpsClient.for_instance(server, instance) as client:
        uids = []
        for encoding in ALL_ENCODINGS:
            uid = _ok(client.send(_tree(kmip.create_aes()), encoding)).unique_identifier
            _ok(client.send(_tree(kmip.get(uid)), encoding))
            uids.append(uid)
        assert client.post(b"<not-closed>", "text/xml").status_code == 400
        assert client.post(b"{}", "text/plain").status_code == 415

    kmip_records = _audit(server, instance=instance, channel="kmip")
    operations = sorted((r["action"], r["uid"]) for r in kmip_records)
    assert operations == sorted([("Create", u) for u in uids] + [("Get", u) for u in uids])
    assert {r["actor"] for r in kmip_records} == {actor}
    assert {r["result"] for r in kmip_records} == {"success"}

    # The API's own records: only for the two requests the engine never saw.
    https_records = _audit(server, instance=instance, channel="https")
    assert sorted((r["action"], r["result"], r["reason"]) for r in https_records) == [
        ("kmip", "failure", "invalid_kmip_message"),
        ("kmip", "failure", "unsupported_media_type"),
    ]
    assert {r["actor"] for r in https_records} == {actor}


def test_a_refusal_without_a_certificate_is_audited_as_anonymous(server: KmipdServer) -> None:
    before = {r["seq"] for r in _audit(server, action="kmip", channel="https")}
    with https_client(server) as http:
        assert http.post("/kmip", content=b"x").status_code == 403
    new = [r for r in _audit(server, action="kmip", channel="https") if r["seq"] not in before]
    assert [(r["actor"], r["result"], r["reason"]) for r in new] == [
        ("anonymous", "failure", "client_certificate_required")
    ]
