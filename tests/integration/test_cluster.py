"""A kmipd cluster: two ``kmipd serve`` nodes on one PostgreSQL database serve the same keys.

Each test gets a fresh PostgreSQL database, ``kmipd init --store`` on it, and two nodes A and
B on the same data directory (so the same CA, certificates and keyring master key). It shows:

- a key made on one node is served by the other on the very next request, with the same
  bytes, and Locate on one node finds what the other made;
- Activate, Revoke and Destroy sent at once from both nodes on the same keys give a history
  that fits the KMIP state machine (one serial order of all of them explains every success
  and every refusal), the same final state on both nodes, and only proper KMIP refusals
  (no dropped connection, no General Failure from a lost compare-and-swap);
- deleting (or disabling) an instance's root key through node A's HTTPS API makes node B
  refuse the instance's keys within 1 second, and after B restarts; enabling it brings
  them back on B within 1 second;
- a client certificate removed through node A is refused by node B within 1 second, and
  B cuts a connection already open with it before serving its next request;
- a rotation made on node A is followed by node B: keys B creates afterwards are sealed
  under the new wrapping key version, and every key reads back unchanged on both nodes.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from kmipd.protocol._generated import (
    Operation,
    ResultReason,
    ResultStatus,
    RevocationReasonCode,
    State,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import RevocationReason
from kmipd.protocol.payloads import (
    CreateRequest,
    GetAttributesRequest,
    LocateRequest,
    RevokeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER
from tests.support import kmip
from tests.support.admin import bearer, https_client, kmip_refused, kmip_works, write_pair
from tests.support.keyprotect import FAST_RULES, KpClient
from tests.support.postgres import fresh_database
from tests.support.server import KmipConnection, KmipdServer, init_server

# What the cluster promises: a change made on one node holds on every other within a second.
PROPAGATION_LIMIT = 1.0
POLL = 0.05
# The documented answer to a Get of a key whose instance's root key is unusable (README).
ROOT_KEY_MESSAGE = "the instance's root key is unavailable; its keys cannot be served"
V1_4, V2_0 = (1, 4), (2, 0)


@dataclass
class Cluster:
    a: KmipdServer
    b: KmipdServer
    url: str

    def logs(self) -> str:
        return f"\n--- node A log ---\n{self.a.log()}\n--- node B log ---\n{self.b.log()}"

    def admin(self, node: KmipdServer) -> httpx.Client:
        client = https_client(node)
        client.headers.update(bearer(node.admin_api_key))
        return client


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A fresh PostgreSQL database, ``kmipd init`` on it, nodes A and B started."""
    with fresh_database(request.node.name) as url:
        a = init_server(tmp_path / "data", store_url=url)
        a.node_name = "node-a"
        # Key Protect's time rules off, so a disabled root key can be enabled at once.
        a.configure(keyprotect=FAST_RULES)
        b = a.another_node("node-b")
        try:
            a.start()
            b.start()
            yield Cluster(a, b, url)
            for node, name in ((a, "A"), (b, "B")):
                assert "Traceback" not in node.log(), f"node {name} logged a traceback" + (
                    Cluster(a, b, url).logs()
                )
        finally:
            a.stop()
            b.stop()


def request(operation: Operation, payload: object, version: tuple[int, int] = V1_4) -> bytes:
    return kmip.request(operation, payload, version)


def create_named(name: str) -> bytes:
    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", kmip.AES, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
            kmip.name_attribute(name),
        ]
    )
    return request(Operation.CREATE, CreateRequest(object_type=2, template_attribute=template))


def state_of(connection: KmipConnection, uid: str) -> State:
    payload = kmip.ok(
        connection.call(
            request(
                Operation.GET_ATTRIBUTES,
                GetAttributesRequest(unique_identifier=uid, attribute_names=["State"]),
            )
        )
    )
    (attribute,) = payload.attributes
    return State(attribute.value)


def make_keys(node: KmipdServer, count: int) -> dict[str, bytes]:
    """``count`` AES keys created on ``node``: UID -> material."""
    keys = {}
    with node.connect() as connection:
        for _ in range(count):
            uid = kmip.created_uid(connection.call(kmip.create_aes()))
            keys[uid] = kmip.key_material(connection.call(kmip.get(uid)))
    return keys


def materials(node: KmipdServer, uids: list[str]) -> dict[str, bytes]:
    with node.connect() as connection:
        return {uid: kmip.key_material(connection.call(kmip.get(uid))) for uid in uids}


def wait_until(condition: Callable[[], bool], limit: float) -> float | None:
    """Seconds until ``condition()`` held, checked every 50 ms; None if not within ``limit``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            return None
        time.sleep(POLL)


# --- a. replication -----------------------------------------------------------------------


def test_a_key_made_on_one_node_is_served_by_the_other_at_once(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    made: dict[str, bytes] = {}
    with a.connect() as on_a, b.connect() as on_b:
        for maker, reader in ((on_a, on_b), (on_b, on_a)) * 10:
            uid = kmip.created_uid(maker.call(kmip.create_aes()))
            material = kmip.key_material(reader.call(kmip.get(uid)))  # the very next request
            assert material == kmip.key_material(maker.call(kmip.get(uid)))
            assert len(material) == 32
            made[uid] = material
        # Locate on B finds what A made: by Name, and in the list of everything.
        named = kmip.created_uid(on_a.call(create_named("cluster-located")))
        found = kmip.ok(
            on_b.call(
                request(
                    Operation.LOCATE,
                    LocateRequest(attributes=[kmip.name_attribute("cluster-located")]),
                )
            )
        )
        assert list(found.unique_identifiers) == [named]
        everything = kmip.ok(on_b.call(request(Operation.LOCATE, LocateRequest())))
        assert set(made) | {named} <= set(everything.unique_identifiers)
    assert materials(a, list(made)) == made == materials(b, list(made))


# --- b. concurrent lifecycle changes ------------------------------------------------------

ACTIVATE, REVOKE_COMPROMISE, REVOKE_CESSATION, DESTROY = (
    "Activate",
    "Revoke (key compromise)",
    "Revoke (cessation of operation)",
    "Destroy",
)
# KMIP 1.4 §3.22 / 2.1 §4.57, written out here rather than taken from kmipd: (state, operation)
# -> the state after it. Anything else must be refused (Wrong Key Lifecycle State in KMIP 2.x,
# Permission Denied in 1.x). Revoke with a compromise reason is allowed from every state but
# Compromised and Destroyed Compromised (re-revoking a Compromised key is not a KMIP
# transition); a non-compromise Revoke deactivates a Pre-Active or Active key only; Destroy
# is refused for an Active key.
KMIP_TRANSITIONS = {
    (State.PRE_ACTIVE, ACTIVATE): State.ACTIVE,
    (State.PRE_ACTIVE, REVOKE_COMPROMISE): State.COMPROMISED,
    (State.PRE_ACTIVE, REVOKE_CESSATION): State.DEACTIVATED,
    (State.PRE_ACTIVE, DESTROY): State.DESTROYED,
    (State.ACTIVE, REVOKE_COMPROMISE): State.COMPROMISED,
    (State.ACTIVE, REVOKE_CESSATION): State.DEACTIVATED,
    (State.DEACTIVATED, REVOKE_COMPROMISE): State.COMPROMISED,
    (State.DEACTIVATED, DESTROY): State.DESTROYED,
    (State.COMPROMISED, DESTROY): State.DESTROYED_COMPROMISED,
    (State.DESTROYED, REVOKE_COMPROMISE): State.DESTROYED_COMPROMISED,
}
REFUSAL = {V1_4: ResultReason.PERMISSION_DENIED, V2_0: ResultReason.WRONG_KEY_LIFECYCLE_STATE}
LIFECYCLE_KEYS = 10
SEED = 20240611


def operations_for(rng: random.Random) -> list[str]:
    """A key's operations: duplicates of each, in a seeded random mix and order (so the keys
    end in different states), later spread over four connections (A and B, each once in
    KMIP 1.4 and once in 2.0) that all run at the same time."""
    operations = (
        [ACTIVATE] * rng.randint(1, 3)
        + [REVOKE_COMPROMISE] * rng.randint(0, 2)
        + [REVOKE_CESSATION] * rng.randint(1, 2)
        + [DESTROY] * rng.randint(1, 3)
    )
    rng.shuffle(operations)
    return operations


@dataclass
class Outcome:
    uid: str
    node: str
    version: tuple[int, int]
    operation: str
    started: float = 0.0
    ended: float = 0.0
    status: int | None = None
    reason: int | None = None
    message: str | None = None
    dropped: str | None = None  # the connection failed instead of answering

    def succeeded(self) -> bool:
        return self.status == ResultStatus.SUCCESS

    def __str__(self) -> str:
        result = (
            "success"
            if self.succeeded()
            else self.dropped or f"{ResultReason(self.reason).name if self.reason else None}"
        )
        return (
            f"[{self.started:.4f}-{self.ended:.4f}] {self.node} KMIP {self.version[0]}."
            f"{self.version[1]} {self.operation}: {result}"
        )


def lifecycle_request(operation: str, uid: str, version: tuple[int, int]) -> bytes:
    if operation == ACTIVATE:
        return request(Operation.ACTIVATE, UidRequest(unique_identifier=uid), version)
    if operation == DESTROY:
        return request(Operation.DESTROY, UidRequest(unique_identifier=uid), version)
    compromise = operation == REVOKE_COMPROMISE
    code = (
        RevocationReasonCode.KEY_COMPROMISE
        if compromise
        else RevocationReasonCode.CESSATION_OF_OPERATION
    )
    return request(
        Operation.REVOKE,
        RevokeRequest(
            unique_identifier=uid,
            revocation_reason=RevocationReason(code=code),
            compromise_occurrence_date=int(time.time()) - 60 if compromise else None,
        ),
        version,
    )


def run_connection(
    node: KmipdServer,
    name: str,
    version: tuple[int, int],
    work: list[tuple[str, str]],
    start: threading.Barrier,
    epoch: float,
) -> list[Outcome]:
    """One client connection sending its share of the operations, in order."""
    outcomes = []
    with node.connect(timeout=30.0) as connection:
        start.wait()
        for uid, operation in work:
            outcome = Outcome(uid, name, version, operation)
            outcome.started = time.monotonic() - epoch
            try:
                result = kmip.item(connection.call(lifecycle_request(operation, uid, version)))
                outcome.status = result.result_status
                outcome.reason = result.result_reason
                outcome.message = result.result_message
            except (ConnectionError, OSError) as exc:
                outcome.dropped = f"dropped: {type(exc).__name__}: {exc}"
            outcome.ended = time.monotonic() - epoch
            outcomes.append(outcome)
            if outcome.dropped:
                break
    return outcomes


def serial_order(history: list[Outcome], final: State) -> list[Outcome] | None:
    """One order of ``history`` that respects real time (an operation that ended before
    another began comes first), in which every success is an allowed KMIP transition,
    every refusal is a forbidden one (with the right reason), and which ends in ``final``;
    None if there is none."""
    count = len(history)
    before = [
        sum(1 << j for j in range(count) if history[j].ended < history[i].started)
        for i in range(count)
    ]

    @cache
    def search(placed: int, state: State) -> tuple[int, ...] | None:
        if placed == (1 << count) - 1:
            return () if state == final else None
        for i in range(count):
            if placed & (1 << i) or before[i] & ~placed:
                continue
            outcome = history[i]
            after = KMIP_TRANSITIONS.get((state, outcome.operation))
            if outcome.succeeded():
                if after is None:
                    continue
                rest = search(placed | (1 << i), after)
            else:
                if after is not None or outcome.reason != REFUSAL[outcome.version]:
                    continue
                rest = search(placed | (1 << i), state)
            if rest is not None:
                return (i, *rest)
        return None

    found = search(0, State.PRE_ACTIVE)
    return None if found is None else [history[i] for i in found]


def test_b_the_history_check_rejects_what_kmip_forbids() -> None:
    """The check below is not vacuous: histories KMIP forbids have no serial order."""

    def history(*steps: tuple[str, bool], overlapping: bool = True) -> list[Outcome]:
        return [
            Outcome(
                "k",
                "A",
                V2_0,
                operation,
                started=0.0 if overlapping else float(i),
                ended=10.0 if overlapping else i + 0.5,
                status=ResultStatus.SUCCESS if success else ResultStatus.OPERATION_FAILED,
                reason=None if success else ResultReason.WRONG_KEY_LIFECYCLE_STATE,
            )
            for i, (operation, success) in enumerate(steps)
        ]

    fine = history((ACTIVATE, True), (DESTROY, False), (REVOKE_CESSATION, True), (DESTROY, True))
    assert serial_order(fine, State.DESTROYED) is not None
    assert serial_order(fine, State.ACTIVE) is None  # the final state must fit too
    twice = history((ACTIVATE, True), (ACTIVATE, True))
    assert serial_order(twice, State.ACTIVE) is None
    # Destroy after Activate, in real time, while nothing revoked the key in between.
    active = history((ACTIVATE, True), (DESTROY, True), overlapping=False)
    assert serial_order(active, State.DESTROYED) is None
    # A refusal that no state explains: Revoke (cessation) refused on a Pre-Active key.
    refused = history((REVOKE_CESSATION, False), overlapping=False)
    assert serial_order(refused, State.PRE_ACTIVE) is None


def test_b_concurrent_lifecycle_changes_from_both_nodes(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    # First, one at a time: Destroy of a key activated on the other node is refused, with
    # Permission Denied in KMIP 1.x and Wrong Key Lifecycle State in 2.x.
    (active,) = make_keys(a, 1)
    with a.connect() as on_a, b.connect() as on_b:
        kmip.ok(on_a.call(lifecycle_request(ACTIVATE, active, V1_4)))
        for version in (V1_4, V2_0):
            refused = kmip.item(on_b.call(lifecycle_request(DESTROY, active, version)))
            assert (refused.result_status, refused.result_reason) == (
                ResultStatus.OPERATION_FAILED,
                REFUSAL[version],
            )
        assert state_of(on_a, active) == state_of(on_b, active) == State.ACTIVE

    uids = list(make_keys(a, LIFECYCLE_KEYS // 2)) + list(make_keys(b, LIFECYCLE_KEYS // 2))
    rng = random.Random(SEED)
    connections: list[tuple[KmipdServer, str, tuple[int, int], list[tuple[str, str]]]] = []
    for uid in uids:
        operations = operations_for(rng)
        lanes = [(a, "A", V1_4), (a, "A", V2_0), (b, "B", V1_4), (b, "B", V2_0)]
        rng.shuffle(lanes)
        for lane, (node, name, version) in enumerate(lanes):
            work = [(uid, op) for op in operations[lane :: len(lanes)]]
            connections.append((node, name, version, work))
    start = threading.Barrier(len(connections))
    epoch = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(connections)) as pool:
        futures = [
            pool.submit(run_connection, node, name, version, work, start, epoch)
            for node, name, version, work in connections
        ]
        outcomes = [outcome for future in futures for outcome in future.result()]
    assert len(outcomes) == sum(len(work) for *_, work in connections), cluster.logs()

    # Every answer is a KMIP answer: no dropped connection, and a refusal is a lifecycle
    # refusal, never a General Failure from a write lost to the other node.
    improper = [
        f"{o} {o.message!r}"
        for o in outcomes
        if o.dropped
        or (
            not o.succeeded()
            and (o.status != ResultStatus.OPERATION_FAILED or o.reason != REFUSAL[o.version])
        )
    ]
    assert not improper, "\n".join(improper) + cluster.logs()

    with a.connect() as on_a, b.connect() as on_b:
        finals = {uid: (state_of(on_a, uid), state_of(on_b, uid)) for uid in uids}
    summary = {}
    for uid in uids:
        history = sorted((o for o in outcomes if o.uid == uid), key=lambda o: o.started)
        story = "\n".join(map(str, history))
        on_a_state, on_b_state = finals[uid]
        assert on_a_state == on_b_state, f"{uid}: A says {on_a_state!r}, B {on_b_state!r}"
        successes = [o.operation for o in history if o.succeeded()]
        assert successes.count(ACTIVATE) <= 1, f"{uid} activated twice:\n{story}"
        assert successes.count(DESTROY) <= 1, f"{uid} destroyed twice:\n{story}"
        order = serial_order(history, on_a_state)
        assert order is not None, (
            f"{uid}: no serial order of these results fits the KMIP state machine and ends "
            f"{on_a_state.name}:\n{story}"
        )
        summary[uid] = on_a_state.name
    finished = {state: list(summary.values()).count(state) for state in set(summary.values())}
    successes = sum(o.succeeded() for o in outcomes)
    print(
        f"{len(outcomes)} concurrent lifecycle operations on {len(uids)} keys: {successes} "
        f"succeeded, {len(outcomes) - successes} refused; final states {finished}"
    )


# --- c. crypto-shredding across nodes -----------------------------------------------------


def root_key_id(node: KmipdServer, instance: str = "default") -> str:
    (record,) = [r for r in node.with_store(lambda s: s.instances()) if r.name == instance]
    return str(record.root_key_id)


def get_outcome(connection: KmipConnection, uid: str) -> tuple[int, int | None, str | None, Any]:
    result = kmip.item(connection.call(kmip.get(uid)))
    material = None
    if result.result_status == ResultStatus.SUCCESS:
        material = result.payload.managed_object.key_block.key_value.key_material
    return result.result_status, result.result_reason, result.result_message, material


REFUSED = (ResultStatus.OPERATION_FAILED, ResultReason.CRYPTOGRAPHIC_FAILURE, ROOT_KEY_MESSAGE)


def assert_refused(node: KmipdServer, keys: dict[str, bytes], logs: str) -> None:
    with node.connect() as connection:
        outcomes = {get_outcome(connection, uid) for uid in keys}
    assert outcomes == {(*REFUSED, None)}, f"{outcomes}{logs}"


def assert_served(node: KmipdServer, keys: dict[str, bytes]) -> None:
    assert materials(node, list(keys)) == keys


def refused_on_b_after(cluster: Cluster, action: Callable[[], None], uid: str) -> float:
    """Run ``action`` (a change through node A), then ask node B for ``uid`` every 50 ms;
    the seconds from ``action``'s return to B's first refusal. Fails if not within 1 s."""
    with cluster.b.connect() as on_b:
        assert get_outcome(on_b, uid)[0] == ResultStatus.SUCCESS  # B has it cached
        action()
        returned = time.monotonic()
        while True:
            outcome = get_outcome(on_b, uid)
            elapsed = time.monotonic() - returned
            if outcome[0] != ResultStatus.SUCCESS:
                assert outcome == (*REFUSED, None), outcome
                break
            assert elapsed < PROPAGATION_LIMIT, (
                f"node B still serves the key {elapsed:.3f} s later" + cluster.logs()
            )
            time.sleep(POLL)
    assert elapsed < PROPAGATION_LIMIT, f"{elapsed:.3f} s" + cluster.logs()
    return elapsed


def test_c_deleted_root_key_is_refused_by_the_other_node_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    keys = make_keys(a, 10) | make_keys(b, 10)
    assert_served(b, keys)
    root = root_key_id(a)

    def delete_on_a() -> None:
        kp = KpClient(a, a.admin_api_key)  # Key Protect-compatible API of node A
        try:
            deleted = kp.request("DELETE", f"/keys/{root}")
        finally:
            kp.close()
        assert deleted.status_code in (200, 204), deleted.text

    elapsed = refused_on_b_after(cluster, delete_on_a, next(iter(keys)))
    print(f"root key deleted on node A: node B refused its keys after {elapsed * 1000:.0f} ms")
    assert_refused(b, keys, cluster.logs())
    assert_refused(a, keys, cluster.logs())
    with b.connect() as on_b:  # no new keys under a deleted root key either
        created = kmip.item(on_b.call(kmip.create_aes()))
    assert (created.result_status, created.result_reason, created.result_message) == REFUSED
    b.stop()
    b.start()
    assert_refused(b, keys, cluster.logs())


def test_c_disabled_root_key_is_refused_by_the_other_node_until_enabled(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    keys = make_keys(a, 10) | make_keys(b, 10)
    first = next(iter(keys))

    def root_key_action(action: str) -> Callable[[], None]:
        def act() -> None:
            with cluster.admin(a) as http:
                reply = http.post(f"/admin/v1/instances/default/root-key/{action}")
            assert reply.status_code == 200, reply.text

        return act

    elapsed = refused_on_b_after(cluster, root_key_action("disable"), first)
    print(f"root key disabled on node A: node B refused its keys after {elapsed * 1000:.0f} ms")
    assert_refused(b, keys, cluster.logs())
    b.stop()
    b.start()
    assert_refused(b, keys, cluster.logs())

    root_key_action("enable")()
    enabled = time.monotonic()
    with b.connect() as on_b:
        while get_outcome(on_b, first)[0] != ResultStatus.SUCCESS:
            assert time.monotonic() - enabled < PROPAGATION_LIMIT, (
                "node B still refuses the keys after enable" + cluster.logs()
            )
            time.sleep(POLL)
    back = time.monotonic() - enabled
    print(f"root key enabled on node A: node B served its keys again after {back * 1000:.0f} ms")
    assert back < PROPAGATION_LIMIT
    assert_served(b, keys)
    assert_served(a, keys)


# --- d. certificate removal across nodes --------------------------------------------------


def test_d_certificate_removed_on_one_node_is_refused_by_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.a, cluster.b
    with cluster.admin(a) as http:
        reply = http.post(
            "/admin/v1/instances/default/certificates/issue", json={"common_name": "vc02"}
        )
        assert reply.status_code == 201, reply.text
        issued = reply.json()
        fingerprint = issued["certificate"]["fingerprint"]
        creds = write_pair(
            tmp_path, "vc02", issued["certificate"]["pem"], issued["private_key_pem"]
        )
        kmip_works(a, creds)
        # Added on A: B takes it too (README: changes made elsewhere within 2 seconds).
        took = wait_until(lambda: not kmip_refused(b, creds), 2.0)
        assert took is not None, "node B never accepted the new certificate" + cluster.logs()
        uid = kmip_works(b, creds)

        with b.connect(context=b.tls_context(certificate=creds)) as open_on_b:
            assert len(kmip.key_material(open_on_b.call(kmip.get(uid)))) == 32
            deleted = http.delete(f"/admin/v1/instances/default/certificates/{fingerprint}")
            assert deleted.status_code == 204, deleted.text
            removed = time.monotonic()
            refused = wait_until(lambda: kmip_refused(b, creds), PROPAGATION_LIMIT)
            assert refused is not None and refused < PROPAGATION_LIMIT, (
                "node B still accepts new connections with the removed certificate" + cluster.logs()
            )
            print(
                f"certificate removed on node A: node B refused new connections after "
                f"{refused * 1000:.0f} ms (added: accepted after {took * 1000:.0f} ms)"
            )
            # The connection opened before the removal is cut before its next request.
            try:
                answer = open_on_b.call(kmip.get(uid))
            except (ConnectionError, OSError, ssl.SSLError):
                answer = b""
            assert answer == b"", (
                f"node B served a request on a connection with a certificate removed "
                f"{time.monotonic() - removed:.3f} s earlier: {kmip.item(answer)}" + cluster.logs()
            )
    assert kmip_refused(a, creds)
    b.stop()
    b.start()
    assert kmip_refused(b, creds)
    kmip_works(b, b.credentials())  # the default certificate is untouched


# --- e. rotation on one node, followed by the other ---------------------------------------


def sealed_versions(node: KmipdServer) -> dict[int, int]:
    return node.with_store(lambda store: store.sealed_versions("default"))


def wait_rewrap_done(cluster: Cluster, timeout: float = 60.0) -> dict[str, Any]:
    """The re-wrap job's status once it is done with the newest wrapping key version."""
    deadline = time.monotonic() + timeout
    with cluster.admin(cluster.a) as http:
        while True:
            reply = http.get("/admin/v1/instances/default/rewrap")
            assert reply.status_code == 200, reply.text
            job: dict[str, Any] = reply.json()
            newest = max(v["version"] for v in job["wrapping_keys"])
            if (job["state"] == "done" and job["target_version"] == newest) or (
                time.monotonic() > deadline
            ):
                return job
            time.sleep(0.1)


def test_e_rotation_on_one_node_is_followed_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    keys = make_keys(a, 20) | make_keys(b, 20)
    assert sealed_versions(a) == {1: 40}
    with cluster.admin(a) as http:
        reply = http.post("/admin/v1/instances/default/rotate")
    assert reply.status_code == 200, reply.text
    rotated = time.monotonic()
    assert reply.json()["wrapping_key_version"] == 2
    time.sleep(max(0.0, PROPAGATION_LIMIT - (time.monotonic() - rotated)))
    job = wait_rewrap_done(cluster)
    assert job["state"] == "done" and job["error"] is None, f"{job}{cluster.logs()}"
    # The newest wrapping key version, not the one rotate answered: a node's background
    # check that follows root key rotations can race with rotate and make one more version
    # under the same root key version (a product bug, reported; harmless to the data).
    newest = max(v["version"] for v in job["wrapping_keys"])
    assert newest >= 2

    # Keys made on B (and A) since the rotation are sealed under the newest version; the
    # re-wrap job has moved every older one there.
    after = make_keys(b, 20) | make_keys(a, 5)
    versions = sealed_versions(b)
    assert versions == {newest: len(keys) + len(after)}, f"{versions}{cluster.logs()}"
    everything = keys | after
    assert materials(a, list(everything)) == everything
    assert materials(b, list(everything)) == everything
