"""Replay every vCenter request of the capture against a real kmipd over mutual TLS 1.2.

The capture (../shared/vcenter-capture, read at run time, never copied here) holds two
vCenter 7.0.3 sessions with PyKMIP. Each captured TCP connection becomes one TLS connection
here; its requests go out in ``seq_in_connection`` order, and all requests in capture order,
so the connections that overlapped in the capture (s52/s53, s54/s55) overlap here too. The
connections vCenter opened and closed without a KMIP byte are reopened and closed the same
way, and the 18 handshakes PyKMIP refused (vCenter's certificate not yet trusted) are replayed
with a certificate the server does not know.

PyKMIP's UIDs "1" and "2" are replaced by the UIDs our Create answered; nothing else in a
request changes. Every batch item must succeed, including the four AddAttribute batches that
PyKMIP failed to parse.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kmipd import pki
from kmipd.protocol import messages, ttlv
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    Operation,
    ResultStatus,
    State,
    Tag,
)
from kmipd.protocol.payloads import GetAttributesRequest, GetRequest
from kmipd.protocol.ttlv import Item
from tests.support.server import KmipConnection, KmipdServer, init_server
from tests.support.shared import VCENTER_CAPTURE, require
from tests.support.vcenter import KMIP_1_1, assert_kmip_1_1_only, batch_id, encode_1_1, walk

pytestmark = pytest.mark.shared

# What the capture README says about sessions that left no KMIP in conversation.json:
# vmware-2.log numbers its PyKMIP sessions 1-58, and 1-18 failed the TLS handshake
# (CERTIFICATE_VERIFY_FAILED); pykmip-vmware.log is an excerpt that starts at session 20.
# Every other session number in these ranges without a request is a connect-and-close.
SESSION_RANGES = {"vmware-2": (1, 58), "pykmip-vmware": (20, 64)}
REFUSED_SESSIONS = {"vmware-2": range(1, 19)}
# The captured Creates whose UIDs the later requests name: PyKMIP uid -> request seq.
CREATES = {"1": 55, "2": 64}

X_ATTRIBUTES = (
    "x-Product_Version",
    "x-Vendor",
    "x-Product",
    "x-Identifier",
    "x-Component",
    "x-Name",
)


@dataclass
class Captured:
    entry: dict[str, Any]
    response: dict[str, Any]

    @property
    def operations(self) -> list[str]:
        return list(self.entry["operation"])


@dataclass
class Connection:
    log: str
    session: int
    requests: list[Captured] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.log}/session-{self.session:08d}"


@dataclass
class Tally:
    connections: int = 0
    empty_connections: int = 0
    refused_handshakes: int = 0
    messages: int = 0
    items: int = 0
    add_attribute_batches: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)


def load_capture() -> list[dict[str, Any]]:
    path = require(VCENTER_CAPTURE / "conversation.json")
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


def connections(capture: list[dict[str, Any]]) -> list[Connection]:
    """Every captured connection, per log in session order, with its requests in order."""
    responses = {(e["log"], e["seq"]): e for e in capture if e["direction"] == "response"}
    found: dict[str, Connection] = {}
    for entry in capture:
        if entry["direction"] != "request":
            continue
        stem, session = entry["connection"].split("/session-")
        connection = found.setdefault(entry["connection"], Connection(stem, int(session)))
        reply = responses[(entry["log"], entry["reply_seq"])]
        connection.requests.append(Captured(entry, reply))
    for connection in found.values():
        connection.requests.sort(key=lambda c: c.entry["seq_in_connection"])
    result: list[Connection] = []
    for log in dict.fromkeys(c.log for c in found.values()):
        first, last = SESSION_RANGES[log]
        for session in range(first, last + 1):
            result.append(found.get(f"{log}/session-{session:08d}", Connection(log, session)))
    return result


def substitute_uids(item: Item, uids: dict[str, str]) -> Item:
    """The same tree with every Unique Identifier text that names a captured UID replaced."""
    if item.type == ttlv.STRUCTURE:
        return Item(item.tag, item.type, [substitute_uids(child, uids) for child in item.value])
    if item.tag == Tag.UNIQUE_IDENTIFIER and item.type == ttlv.TEXT_STRING:
        return Item(item.tag, item.type, uids.get(item.value, item.value))
    return item


def request_bytes(captured: Captured, uids: dict[str, str]) -> bytes:
    original = bytes.fromhex(captured.entry["hex"])
    tree = ttlv.decode(original)
    # The codec reproduces vCenter's bytes exactly, so a re-encoded request differs from the
    # captured one only in the substituted UIDs.
    assert ttlv.encode(tree) == original
    named = set(captured.entry["references_uid"])
    missing = named - uids.keys()
    assert not missing, f"{captured.entry['seq']} names UIDs not created yet: {missing}"
    return ttlv.encode(substitute_uids(tree, uids))


def shape(tree: Item) -> set[tuple[tuple[int, ...], int]]:
    """The (tag path, item type) pairs of a message, without the values."""
    return {(path, item.type) for path, item in walk(tree)}


def check_response(
    captured: Captured, request: bytes, raw: bytes, uids: dict[str, str], tally: Tally
) -> messages.ResponseMessage:
    seq = captured.entry["seq"]
    tree = assert_kmip_1_1_only(raw)
    sent = messages.decode_request(request)
    response = messages.decode_response(raw)
    assert response.version == KMIP_1_1
    assert response.header is not None
    assert response.header.batch_count == len(sent.batch_items), seq
    assert len(response.batch_items) == len(sent.batch_items), seq
    for asked, got in zip(sent.batch_items, response.batch_items, strict=True):
        name = Operation(asked.operation).name
        assert got.result_status == ResultStatus.SUCCESS, (
            f"seq {seq} {name}: {got.result_reason} {got.result_message}"
        )
        assert got.operation == asked.operation, seq
        # Verbatim, and absent where the request had none (vCenter's DV0).
        assert got.unique_batch_item_id == asked.unique_batch_item_id, seq
        tally.by_operation[name] = tally.by_operation.get(name, 0) + 1
        check_item(asked, got, uids, seq)
    if captured.response["pykmip_answer_is_valid_reference"]:
        # Shapes, not bytes: everything PyKMIP's answer had, ours has (ours may add optional
        # fields). DiscoverVersions lists may differ in length, which shapes ignore.
        reference = ttlv.decode(bytes.fromhex(captured.response["hex"]))
        missing = shape(reference) - shape(tree)
        assert not missing, f"seq {seq}: answer lacks {sorted(missing)}"
    else:
        # The four AddAttribute batches PyKMIP could not parse.
        assert captured.operations == ["AddAttribute"] * 3
        tally.add_attribute_batches += 1
    tally.messages += 1
    tally.items += len(sent.batch_items)
    return response


def check_item(
    asked: messages.RequestBatchItem,
    got: messages.ResponseBatchItem,
    uids: dict[str, str],
    seq: int,
) -> None:
    payload = got.payload
    operation = asked.operation
    if operation == Operation.DISCOVER_VERSIONS:
        assert KMIP_1_1 in [v.as_tuple() for v in payload.protocol_versions]
    elif operation == Operation.QUERY:
        assert payload.vendor_identification
    elif operation == Operation.CREATE:
        assert isinstance(payload.unique_identifier, str) and payload.unique_identifier
    elif operation == Operation.GET:
        assert payload.unique_identifier == asked.payload.unique_identifier
        block = payload.managed_object.key_block
        assert block.key_format_type == KeyFormatType.RAW
        assert block.cryptographic_algorithm == CryptographicAlgorithm.AES
        assert block.cryptographic_length == 256
        assert isinstance(block.key_value.key_material, bytes)
        assert len(block.key_value.key_material) == 32
    elif operation == Operation.GET_ATTRIBUTES:
        assert payload.unique_identifier == asked.payload.unique_identifier
        names = asked.payload.attribute_names
        if names == ["State"]:
            # vCenter Gets, then asks the State, then Activates a Pre-Active key.
            assert [(a.name, a.value) for a in payload.attributes] == [
                ("State", State.PRE_ACTIVE)
            ], seq
        else:
            # The probe before tagging: not set yet, so Success with no attribute.
            assert all(n.startswith("x-") for n in names)
            assert payload.attributes == [], seq
    elif operation == Operation.ADD_ATTRIBUTE:
        assert payload.unique_identifier == asked.payload.unique_identifier
        assert payload.attribute is not None
        wanted = asked.payload.attribute
        assert (payload.attribute.name, payload.attribute.value) == (wanted.name, wanted.value)
    elif operation == Operation.ACTIVATE:
        assert payload.unique_identifier == asked.payload.unique_identifier
    else:
        pytest.fail(f"seq {seq}: the capture has no {Operation(operation).name}")
    named = getattr(asked.payload, "unique_identifier", None)
    assert named is None or named in uids.values(), f"seq {seq} names {named!r}"


def untrusted_context(server: KmipdServer, directory: Path) -> ssl.SSLContext:
    """vCenter before the admin trusts it: a self-signed client certificate kmipd never saw."""
    stranger_ca = pki.create_ca("vCenter not yet trusted")
    client = pki.issue_client(stranger_ca, "kmipClient20250403095507")
    cert, key = directory / "untrusted.pem", directory / "untrusted-key.pem"
    cert.write_bytes(client.certificate_pem())
    key.write_bytes(client.private_key_pem())
    return server.tls_context(certificate=(cert, key))


def expect_refused(server: KmipdServer, context: ssl.SSLContext) -> None:
    """The TLS 1.2 handshake fails with an alert, not a hang; the server lives on."""
    with pytest.raises(ssl.SSLError):
        server.connect(context=context, timeout=5.0).close()


def tls12_context(server: KmipdServer) -> ssl.SSLContext:
    context = server.tls_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("replay")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_replay_every_vcenter_request(
    replay_server: KmipdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = load_capture()
    plan = connections(capture)
    server = replay_server
    context = tls12_context(server)
    refused_context = untrusted_context(server, tmp_path)
    refused_context.maximum_version = ssl.TLSVersion.TLSv1_2
    uids: dict[str, str] = {}
    tally = Tally()

    # Requests in capture order; each one on its own connection, opened at its first request
    # and closed after its last, so overlapping captured connections overlap here.
    order: list[tuple[int, Connection, Captured]] = []
    for connection in plan:
        for captured in connection.requests:
            order.append((capture.index(captured.entry), connection, captured))
    order.sort(key=lambda entry: entry[0])
    open_connections: dict[str, KmipConnection] = {}
    remaining = {c.name: len(c.requests) for c in plan}
    done: set[str] = set()

    def run_empty_before(connection: Connection) -> None:
        """Sessions without KMIP numbered below ``connection``, in session order."""
        for other in plan:
            if other.log != connection.log or other.session >= connection.session:
                continue
            if other.name in done or other.requests:
                continue
            done.add(other.name)
            if other.session in REFUSED_SESSIONS.get(other.log, ()):
                expect_refused(server, refused_context)
                tally.refused_handshakes += 1
            else:
                with server.connect(context=context) as empty:
                    assert empty.sock.version() == "TLSv1.2"
                tally.empty_connections += 1

    for _, connection, captured in order:
        if connection.name not in open_connections:
            run_empty_before(connection)
            open_connections[connection.name] = server.connect(context=context)
            assert open_connections[connection.name].sock.version() == "TLSv1.2"
            done.add(connection.name)
            tally.connections += 1
        request = request_bytes(captured, uids)
        raw = open_connections[connection.name].call(request)
        response = check_response(captured, request, raw, uids, tally)
        for pykmip_uid, seq in CREATES.items():
            if captured.entry["seq"] == seq and captured.entry["log"] == "vmware-2.log":
                uid = response.batch_items[0].payload.unique_identifier
                assert uid not in uids.values(), "two Creates gave the same UID"
                uids[pykmip_uid] = uid
        remaining[connection.name] -= 1
        if remaining[connection.name] == 0:
            open_connections.pop(connection.name).close()
    assert not open_connections
    for connection in plan:  # trailing empty sessions
        if connection.name not in done:
            run_empty_before(Connection(connection.log, connection.session + 1))

    # The tagging stuck: a GetAttributes of every x- name returns what vCenter set.
    with server.connect(context=context) as check:
        set_values: dict[str, dict[str, str]] = {}
        for captured in (c for conn in plan for c in conn.requests):
            if captured.operations == ["AddAttribute"] * 3:
                for item in messages.decode_request(request_bytes(captured, uids)).batch_items:
                    per_key = set_values.setdefault(item.payload.unique_identifier, {})
                    per_key[item.payload.attribute.name] = item.payload.attribute.value
        for uid, expected in set_values.items():
            assert get_x_attributes(check, uid) == expected, uid
        assert set(set_values) == set(uids.values())
        materials = [get_material(check, uid) for uid in uids.values()]

    # Nothing went wrong inside, and no key material reached the server's log.
    log = server.log()
    assert "Traceback" not in log
    for material in materials:
        assert material.hex() not in log.lower()
        assert base64.b64encode(material).decode() not in log

    capture_requests = sum(1 for e in capture if e["direction"] == "request")
    capture_items = sum(len(e["operation"]) for e in capture if e["direction"] == "request")
    assert tally.messages == capture_requests == 102
    assert tally.items == capture_items == 110
    assert tally.add_attribute_batches == 4
    assert tally.connections == 43
    assert tally.empty_connections == 19 + 23
    assert tally.refused_handshakes == 18
    with capsys.disabled():
        print(
            f"\nvCenter replay: {tally.messages} request messages, {tally.items} batch items "
            f"on {tally.connections} TLS connections, plus {tally.empty_connections} "
            f"connect-and-close and {tally.refused_handshakes} refused handshakes; "
            f"{tally.add_attribute_batches} AddAttribute batches; per operation "
            f"{dict(sorted(tally.by_operation.items()))}; UIDs {uids}"
        )


def get_x_attributes(connection: KmipConnection, uid: str) -> dict[str, str]:
    request = encode_1_1(
        [
            messages.RequestBatchItem(
                operation=Operation.GET_ATTRIBUTES,
                unique_batch_item_id=batch_id(1),
                payload=GetAttributesRequest(
                    unique_identifier=uid, attribute_names=list(X_ATTRIBUTES)
                ),
            )
        ]
    )
    raw = connection.call(request)
    assert_kmip_1_1_only(raw)
    item = messages.decode_response(raw).batch_items[0]
    assert item.result_status == ResultStatus.SUCCESS, item.result_message
    values = {a.name: a.value for a in item.payload.attributes}
    assert len(values) == len(item.payload.attributes), "an x- attribute was stored twice"
    return values


def get_material(connection: KmipConnection, uid: str) -> bytes:
    request = encode_1_1(
        [
            messages.RequestBatchItem(
                operation=Operation.GET,
                unique_batch_item_id=batch_id(1),
                payload=GetRequest(unique_identifier=uid),
            )
        ]
    )
    item = messages.decode_response(connection.call(request)).batch_items[0]
    assert item.result_status == ResultStatus.SUCCESS, item.result_message
    material: bytes = item.payload.managed_object.key_block.key_value.key_material
    return material
