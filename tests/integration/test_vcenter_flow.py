"""Section 7 of vcenter-kmip.md: a client that behaves like vCenter 7.0.3 and its ESXi hosts.

KMIP 1.1 over mutual TLS 1.2, a new connection for every numbered step, each starting with
``DV0`` (DiscoverVersions, no batch item ID, empty payload), every other item numbered
``QLKC`` + LE32 and checked to be echoed. Every response must be 1.1 with 1.1 fields only.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from kmipd import pki
from kmipd.protocol import messages
from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultReason,
    ResultStatus,
    RevocationReasonCode,
    State,
)
from kmipd.protocol.objects import ProtocolVersion, RevocationReason
from kmipd.protocol.payloads import (
    GetAttributesRequest,
    GetRequest,
    RevokeRequest,
)
from kmipd.protocol.ttlv import TEXT_STRING
from tests.support.postgres import fresh_database
from tests.support.server import KmipdServer, init_server
from tests.support.vcenter import (
    KMIP_1_1,
    PRODUCT_TAGS,
    VCenterSession,
    assert_kmip_1_1_only,
    batch_id,
)

# vCenter's health check fails with "SSL handshake timeout" when the KMS is slow (KB 67115).
ROUND_TRIP_LIMIT = 1.0
HOSTS = 8  # ESXi hosts of a vSAN cluster
T = TypeVar("T")
X_NAMES = ("x-Product_Version", "x-Vendor", "x-Product", "x-Identifier", "x-Component", "x-Name")


@dataclass
class Key:
    uid: str
    material: bytes = b""
    tags: dict[str, str] = field(default_factory=dict)


def tls12(server: KmipdServer, certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = server.tls_context(certificate=certificate)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextmanager
def step(
    server: KmipdServer, certificate: tuple[Path, Path] | None = None
) -> Iterator[VCenterSession]:
    """One numbered step: a new TLS 1.2 connection, ``DV0`` first, closed at the end."""
    with server.connect(context=tls12(server, certificate)) as connection:
        assert connection.sock.version() == "TLSv1.2"
        session = VCenterSession(connection)
        session.dv0()
        yield session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    kmipd = init_server(Path(tmp_path_factory.mktemp("vcenter")) / "data")
    kmipd.start()
    try:
        yield kmipd
    finally:
        kmipd.stop()


# --- the steps, as vCenter runs them -----------------------------------------------------


def create_in_parallel(server: KmipdServer, count: int) -> list[str]:
    """Step 4: ``count`` Creates at once, each on its own connection (vCenter's threads)."""

    def one(_: int) -> str:
        with step(server) as session:
            return session.create_key()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def product_tags(server: KmipdServer, key: Key) -> None:
    """Step 5: probe x-Product_Version, x-Vendor, x-Product; then one 3-item AddAttribute."""
    with step(server) as session:
        session.tag(key.uid, PRODUCT_TAGS)
    key.tags.update(PRODUCT_TAGS)


def fetch_and_activate(server: KmipdServer, key: Key) -> None:
    """Step 6: Get with no format (works while Pre-Active), State, Activate if Pre-Active."""
    with step(server) as session:
        key.material = raw_aes_256(session.get(key.uid), key.uid)
        state = session.state(key.uid)
        assert state == State.PRE_ACTIVE, "vCenter's Create leaves the key Pre-Active"
        session.activate(key.uid)


def owner_tags(server: KmipdServer, key: Key, component: str, name: str) -> None:
    """Step 7: probe x-Identifier, x-Component, x-Name; then one 3-item AddAttribute."""
    tags = (("x-Identifier", str(uuid.uuid4())), ("x-Component", component), ("x-Name", name))
    with step(server) as session:
        session.tag(key.uid, tags)
    key.tags.update(tags)


def power_on(server: KmipdServer, key: Key, certificate: tuple[Path, Path] | None = None) -> None:
    """Step 8: Get, then State: the same bytes, and Active (else the VM stays locked)."""
    with step(server, certificate) as session:
        assert raw_aes_256(session.get(key.uid), key.uid) == key.material
        assert session.state(key.uid) == State.ACTIVE


def raw_aes_256(payload: object, uid: str) -> bytes:
    """The Get answer vCenter accepted from PyKMIP: Raw, 32 bytes, AES, 256, no wrapping."""
    assert payload.object_type == ObjectType.SYMMETRIC_KEY  # type: ignore[attr-defined]
    assert payload.unique_identifier == uid  # type: ignore[attr-defined]
    block = payload.managed_object.key_block  # type: ignore[attr-defined]
    assert block.key_format_type == KeyFormatType.RAW
    assert block.cryptographic_algorithm == CryptographicAlgorithm.AES
    assert block.cryptographic_length == 256
    assert block.key_wrapping_data is None
    assert block.key_compression_type is None
    material = block.key_value.key_material
    assert isinstance(material, bytes) and len(material) == 32
    return material


def provision(server: KmipdServer, vm: str, host: str) -> tuple[Key, Key]:
    """Steps 4-7 for a VM key K1 and a host key K2; checks that K1's x-Name reads back."""
    k1, k2 = (Key(uid) for uid in create_in_parallel(server, 2))
    assert k1.uid != k2.uid
    for key in (k1, k2):
        product_tags(server, key)
        fetch_and_activate(server, key)
    owner_tags(server, k2, "ESXi Server", host)
    owner_tags(server, k1, "Virtual Machine", vm)
    with step(server) as session:
        x_name = session.get_attributes(k1.uid, "x-Name")
    assert [(a.name, a.value) for a in x_name] == [("x-Name", vm)]
    return k1, k2


@pytest.fixture(scope="module")
def encrypted_vm(server: KmipdServer) -> tuple[Key, Key]:
    """A VM "test01" encrypted on host esx01: its key K1 and the host key K2."""
    return provision(server, "test01", "esx01")


# --- 1-3: probe, health, server information ----------------------------------------------


def test_1_probe_connect_and_close(server: KmipdServer, tmp_path: Path) -> None:
    for _ in range(3):
        with server.connect(context=tls12(server)) as connection:
            assert connection.sock.version() == "TLSv1.2"
    # Before the admin trusts vCenter: no client certificate, then an unknown one.
    anonymous = ssl.create_default_context(cafile=str(server.ca))
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    stranger = pki.issue_client(pki.create_ca("some other vCenter"), "kmipClient20250403095507")
    cert, key = tmp_path / "stranger.pem", tmp_path / "stranger-key.pem"
    cert.write_bytes(stranger.certificate_pem())
    key.write_bytes(stranger.private_key_pem())
    for context in (anonymous, tls12(server, (cert, key))):
        with pytest.raises(ssl.SSLError):
            server.connect(context=context, timeout=5.0).close()
    # The server took none of it badly.
    with step(server) as session:
        assert KMIP_1_1 in session.discover_versions()
    assert "Traceback" not in server.log()


def test_2_health_check(server: KmipdServer) -> None:
    for _ in range(3):
        started = time.monotonic()
        with step(server) as session:
            assert KMIP_1_1 in session.discover_versions()
        assert time.monotonic() - started < ROUND_TRIP_LIMIT


def test_3_server_information(server: KmipdServer) -> None:
    with step(server) as session:
        assert session.query_server_information()


# --- 4-8: encrypt a VM, power it on ------------------------------------------------------


def test_4_parallel_creates_give_distinct_uids(server: KmipdServer) -> None:
    uids = create_in_parallel(server, 8)
    assert len(set(uids)) == len(uids)


def test_4_to_7_encrypt_a_vm(server: KmipdServer, encrypted_vm: tuple[Key, Key]) -> None:
    k1, k2 = encrypted_vm
    assert k1.material != k2.material
    with step(server) as session:
        for key in (k1, k2):
            stored = session.get_attributes(key.uid, *X_NAMES)
            assert {a.name: a.value for a in stored} == key.tags
            assert len(stored) == len(X_NAMES), "each x- attribute once"


def test_8_power_on(server: KmipdServer, encrypted_vm: tuple[Key, Key]) -> None:
    k1, k2 = encrypted_vm
    power_on(server, k1)
    power_on(server, k2)


# --- 9: vSAN, with the hosts' own certificate ---------------------------------------------


def test_9_vsan_enable_and_host_boot(server: KmipdServer) -> None:
    kek, host_key = (Key(uid) for uid in create_in_parallel(server, 2))
    for key in (kek, host_key):
        product_tags(server, key)
        fetch_and_activate(server, key)
    # An ESXi host boots and fetches the KEK itself, with a second certificate that the
    # instance allows next to vCenter's.
    esxi = server.allow_certificate("default", "esxi-host")
    power_on(server, kek, esxi)
    power_on(server, host_key, esxi)


def test_9_hosts_boot_at_once(server: KmipdServer) -> None:
    """A vSAN cluster powers up: every host fetches the KEK and its State at the same time."""
    esxi = server.allow_certificate("default", "esxi-cluster")
    for _ in range(3):
        (kek,) = (Key(uid) for uid in create_in_parallel(server, 1))
        fetch_and_activate(server, kek)
        with ThreadPoolExecutor(max_workers=HOSTS) as pool:
            hosts = [pool.submit(power_on, server, kek, esxi) for _ in range(HOSTS)]
            for host in hosts:
                host.result()


def test_overlapping_steps_on_one_key(server: KmipdServer) -> None:
    """As captured (s54/s55): Get, State and Activate of a key while its tagging runs."""
    for _ in range(5):
        (key,) = (Key(uid) for uid in create_in_parallel(server, 1))
        with ThreadPoolExecutor(max_workers=2) as pool:
            steps = [
                pool.submit(fetch_and_activate, server, key),
                pool.submit(product_tags, server, key),
            ]
            for done in steps:
                done.result()
        power_on(server, key)


# --- 10: rekey ---------------------------------------------------------------------------


def test_10_rekey_keeps_the_old_key(server: KmipdServer, encrypted_vm: tuple[Key, Key]) -> None:
    old, _ = encrypted_vm
    # A shallow rekey is a new Create plus tagging; no ReKey, Revoke or Destroy is sent.
    (new,) = (Key(uid) for uid in create_in_parallel(server, 1))
    assert new.uid != old.uid
    product_tags(server, new)
    fetch_and_activate(server, new)
    owner_tags(server, new, "Virtual Machine", "test01")
    assert new.material != old.material
    power_on(server, old)
    power_on(server, new)


# --- 11: negative cases ------------------------------------------------------------------


def test_11_get_unknown_uid_is_item_not_found(server: KmipdServer) -> None:
    with step(server) as session:
        response = session.send(
            [session.item(Operation.GET, GetRequest(unique_identifier=str(uuid.uuid4())))],
            expect_success=False,
        )
    item = response.batch_items[0]
    assert item.result_status == ResultStatus.OPERATION_FAILED
    assert item.result_reason == ResultReason.ITEM_NOT_FOUND
    assert item.unique_batch_item_id == batch_id(1)


def failing_batch(session: VCenterSession, good: str) -> list[messages.RequestBatchItem]:
    return [
        session.item(
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=good, attribute_names=["State"]),
        ),
        session.item(Operation.GET, GetRequest(unique_identifier=str(uuid.uuid4()))),
        session.item(
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=good, attribute_names=["x-Name"]),
        ),
    ]


def test_11_batch_with_a_failing_item_has_per_item_results(
    server: KmipdServer, encrypted_vm: tuple[Key, Key]
) -> None:
    k1, _ = encrypted_vm
    with step(server) as session:
        # vCenter sends no Batch Error Continuation Option: Stop is the default, so the items
        # up to the failing one come back, each with its own result and echoed ID.
        response = session.send(failing_batch(session, k1.uid), expect_success=False)
    statuses = [(i.unique_batch_item_id, i.result_status) for i in response.batch_items]
    assert statuses == [
        (batch_id(1), ResultStatus.SUCCESS),
        (batch_id(2), ResultStatus.OPERATION_FAILED),
    ]
    assert response.batch_items[1].result_reason == ResultReason.ITEM_NOT_FOUND
    assert response.batch_items[0].payload.attributes[0].value == State.ACTIVE


def test_11_batch_with_continue_answers_every_item(
    server: KmipdServer, encrypted_vm: tuple[Key, Key]
) -> None:
    k1, _ = encrypted_vm
    with server.connect(context=tls12(server)) as connection:
        session = VCenterSession(connection)
        session.dv0()
        items = failing_batch(session, k1.uid)
        for position, item in enumerate(items, 1):
            item.unique_batch_item_id = batch_id(position)
        request = messages.encode_request(
            messages.RequestMessage(
                header=messages.RequestHeader(
                    protocol_version=ProtocolVersion.of(KMIP_1_1),
                    batch_error_continuation_option=BatchErrorContinuationOption.CONTINUE,
                ),
                batch_items=items,
            )
        )
        raw = connection.call(request)
    assert_kmip_1_1_only(raw)
    response = messages.decode_response(raw)
    assert [(i.unique_batch_item_id, i.result_status) for i in response.batch_items] == [
        (batch_id(1), ResultStatus.SUCCESS),
        (batch_id(2), ResultStatus.OPERATION_FAILED),
        (batch_id(3), ResultStatus.SUCCESS),
    ]
    assert response.batch_items[2].payload.attributes[0].value == "test01"
    assert response.batch_items[2].payload.attributes[0].type == TEXT_STRING


@pytest.mark.parametrize(
    ("reason", "state"),
    [
        (RevocationReasonCode.CESSATION_OF_OPERATION, State.DEACTIVATED),
        (RevocationReasonCode.KEY_COMPROMISE, State.COMPROMISED),
    ],
)
def test_11_key_revoked_out_of_band_locks_the_vm(
    server: KmipdServer, reason: RevocationReasonCode, state: State
) -> None:
    (key,) = (Key(uid) for uid in create_in_parallel(server, 1))
    fetch_and_activate(server, key)
    # A KMS administrator revokes the key with another client; vCenter is not involved.
    with step(server) as admin:
        admin.one(
            Operation.REVOKE,
            RevokeRequest(
                unique_identifier=key.uid,
                revocation_reason=RevocationReason(code=reason),
                compromise_occurrence_date=int(time.time())
                if reason == RevocationReasonCode.KEY_COMPROMISE
                else None,
            ),
        )
    # Power-on: vCenter asks the State and sees the key unusable: "VM would lock".
    with step(server) as session:
        found = session.state(key.uid)
    assert found == state
    print(f"VM would lock: key {key.uid} is {State(found).name} (step 11)")


def test_11_round_trips_stay_under_a_second(server: KmipdServer) -> None:
    for _ in range(5):
        started = time.monotonic()
        with server.connect(context=tls12(server)):
            pass
        probe = time.monotonic() - started
        started = time.monotonic()
        with step(server) as session:
            session.discover_versions()
        health = time.monotonic() - started
        assert probe < ROUND_TRIP_LIMIT and health < ROUND_TRIP_LIMIT, (probe, health)


def on_the_first_that_answers(
    servers: list[KmipdServer], action: Callable[[KmipdServer], T]
) -> tuple[KmipdServer, T]:
    """vCenter's failover: try each KMS of the key provider in turn ("Failed to generate key
    on KMS IP1 ... on KMS IP2", §4) until one answers; (the one that did, its answer)."""
    failures = []
    for kms in servers:
        try:
            return kms, action(kms)
        except (ConnectionError, OSError) as exc:  # refused, reset, TLS failure
            failures.append(f"{kms.host}:{kms.kmip_port}: {type(exc).__name__}")
    raise AssertionError(f"no KMS answered: {failures}")


def test_11_cluster_server_down_client_retries_on_the_other(tmp_path: Path) -> None:
    """A 2-server key provider (two kmipd nodes on one PostgreSQL): a VM encrypted through
    server 1 powers on through server 2 (step 8 against every server), and still does, and
    a new VM key is still made, when server 1 is down and the client retries on server 2."""
    with fresh_database("vcenter_cluster") as url:
        one = init_server(tmp_path / "data", store_url=url)
        one.node_name = "kms-1"
        two = one.another_node("kms-2")
        try:
            one.start()
            two.start()
            k1, k2 = provision(one, "test01", "esx01")  # steps 4-7 on server 1
            for kms in (one, two):  # step 8 against every server of the cluster
                power_on(kms, k1)
                power_on(kms, k2)
            with step(two) as session:  # the tags made through server 1, seen by server 2
                for key in (k1, k2):
                    stored = session.get_attributes(key.uid, *X_NAMES)
                    assert {a.name: a.value for a in stored} == key.tags

            one.stop()  # server 1 goes down
            with pytest.raises((ConnectionError, OSError)):
                power_on(one, k1)
            servers = [one, two]  # vCenter keeps server 1 first in its list
            for key in (k1, k2):
                answered, _ = on_the_first_that_answers(
                    servers, lambda kms, key=key: power_on(kms, key)
                )
                assert answered is two
            # A new VM encrypted meanwhile: Create and the rest of its steps go to server 2.
            answered, (uid,) = on_the_first_that_answers(
                servers, lambda kms: create_in_parallel(kms, 1)
            )
            assert answered is two
            new = Key(uid)
            product_tags(two, new)
            fetch_and_activate(two, new)
            owner_tags(two, new, "Virtual Machine", "test02")
            answered, _ = on_the_first_that_answers(servers, lambda kms: power_on(kms, new))
            assert answered is two

            one.start()  # server 1 back: it serves what was made while it was down
            power_on(one, new)
            power_on(one, k1)
            for kms in (one, two):
                assert "Traceback" not in kms.log(), kms.log()
        finally:
            one.stop()
            two.stop()
