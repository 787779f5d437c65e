"""The client certificate matrix on the KMIP port: each certificate is accepted or refused
exactly as configured, and a refused one runs no operation.

Instance ``matrix`` is the target. Every client tries a Create; for a refused client the
number of objects of every instance and the length of the audit trail stay as they were.
The same refusals, with a good client served during each, are in test_hostile_clients.py
(no certificate, other CA, expired and not yet valid, removed) and the instance isolation
in test_ownership.py (every UID operation, foreign UID = missing UID).
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kmipd.protocol._generated import ResultReason, ResultStatus
from kmipd.store.records import AuditQuery
from kmipd.store.store import Store
from tests.support import kmip
from tests.support.server import KmipdServer, init_server

TARGET = "matrix"
OTHER = "matrix-other"
TRUST_WAIT = 6.0  # the server re-reads the trusted certificates every 2 s


@dataclass
class Matrix:
    server: KmipdServer
    directory: Path
    target_uid: str  # an object of TARGET, made by its own certificate

    def context(self, credentials: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.server.ca))
        if credentials is not None:
            context.load_cert_chain(*credentials)
        return context

    def write(self, name: str, cert_and_key: tuple) -> tuple[Path, Path]:
        return kmip.write_credentials(self.directory, name, *cert_and_key)


def snapshot(server: KmipdServer) -> tuple[dict[str, int], int]:
    """Objects per instance, and the number of audit records."""

    async def read(store: Store) -> tuple[dict[str, int], int]:
        counts = await store.count_objects()
        _, total = await store.audit_records(AuditQuery(limit=1))
        return counts, total

    return server.with_store(read)


def accepted(server: KmipdServer, context: ssl.SSLContext) -> bool:
    try:
        with server.connect(context=context, timeout=5.0) as connection:
            kmip.ok(connection.call(kmip.discover_versions()))
        return True
    except (ssl.SSLError, ConnectionError):
        return False


def wait_for(server: KmipdServer, context: ssl.SSLContext, *, accept: bool) -> None:
    deadline = time.monotonic() + TRUST_WAIT
    while accepted(server, context) != accept:
        assert time.monotonic() < deadline, f"still {'refused' if accept else 'accepted'}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    base = Path(tmp_path_factory.mktemp("matrix"))
    server = init_server(base / "data")
    server.start()
    try:
        own = server.add_instance(TARGET)
        server.add_instance(OTHER)
        m = Matrix(server, base / "clients", "")
        context = m.context(own)
        wait_for(server, context, accept=True)
        with server.connect(context=context) as connection:
            m.target_uid = kmip.created_uid(connection.call(kmip.create_aes()))
        yield m
    finally:
        server.stop()


# -- the cases: each returns the client's context once the configuration is in effect ----------


def no_certificate(m: Matrix) -> ssl.SSLContext:
    return m.context(None)


def self_signed(m: Matrix) -> ssl.SSLContext:
    """Self-signed with the subject of a real client, pinned nowhere."""
    return m.context(m.write("self-signed", kmip.certificate(f"test client {TARGET}")))


def other_ca(m: Matrix) -> ssl.SSLContext:
    ca = kmip.certificate("an unrelated CA", ca=True)
    leaf = kmip.certificate(f"test client {TARGET}", issuer=ca, eku=kmip.CLIENT_AUTH)
    return m.context(m.write("other-ca", leaf))


def _dated(m: Matrix, name: str, start: dt.datetime, end: dt.datetime) -> ssl.SSLContext:
    """Pinned on TARGET, but outside its validity; a valid control pinned afterwards is
    accepted first, so the refusal is the dates and not a trust store not yet refreshed."""
    cert = kmip.certificate(f"{name} client", not_before=start, not_after=end)
    m.server.pin_certificate(TARGET, cert[0])
    control = kmip.certificate(f"{name} control")
    m.server.pin_certificate(TARGET, control[0])
    wait_for(m.server, m.context(m.write(f"{name}-control", control)), accept=True)
    return m.context(m.write(name, cert))


def expired(m: Matrix) -> ssl.SSLContext:
    now = kmip.now()
    return _dated(m, "expired", now - dt.timedelta(days=30), now - dt.timedelta(days=1))


def not_yet_valid(m: Matrix) -> ssl.SSLContext:
    now = kmip.now()
    return _dated(m, "not-yet-valid", now + dt.timedelta(days=1), now + dt.timedelta(days=30))


def deleted(m: Matrix) -> ssl.SSLContext:
    """Pinned, used (a Create succeeds), then removed."""
    cert = kmip.certificate("deleted client", eku=kmip.CLIENT_AUTH)
    pinned = m.server.pin_certificate(TARGET, cert[0])
    context = m.context(m.write("deleted", cert))
    wait_for(m.server, context, accept=True)
    with m.server.connect(context=context) as connection:
        kmip.created_uid(connection.call(kmip.create_aes()))
    assert m.server.remove_certificate(pinned)
    wait_for(m.server, context, accept=False)
    return context


def wrong_instance(m: Matrix) -> ssl.SSLContext:
    """A valid certificate of another instance: it connects, and sees only its own keys."""
    return m.context(m.server.credentials(OTHER))


def ca_trusted(m: Matrix) -> ssl.SSLContext:
    """A leaf issued by a CA trusted for TARGET (add_trusted_ca); not pinned itself."""
    ca = kmip.certificate("VMCA of matrix", ca=True, rsa_key=True)
    m.server.add_trusted_ca(TARGET, ca[0])
    context = m.context(m.write("ca-trusted", kmip.certificate("esx07", issuer=ca, eku=None)))
    wait_for(m.server, context, accept=True)
    return context


REFUSED = "refused"
OWN_KEYS_ONLY = "accepted, sees only its own instance's keys"
ACCEPTED = "accepted in the target instance"

CASES: dict[str, tuple[Callable[[Matrix], ssl.SSLContext], str]] = {
    "none": (no_certificate, REFUSED),
    "self-signed": (self_signed, REFUSED),
    "other CA": (other_ca, REFUSED),
    "expired": (expired, REFUSED),
    "not yet valid": (not_yet_valid, REFUSED),
    "wrong instance": (wrong_instance, OWN_KEYS_ONLY),
    "deleted": (deleted, REFUSED),
    "CA-trusted": (ca_trusted, ACCEPTED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_client_certificate(matrix: Matrix, case: str) -> None:
    setup, expected = CASES[case]
    context = setup(matrix)
    {REFUSED: refused, OWN_KEYS_ONLY: own_keys_only, ACCEPTED: accepted_in_target}[expected](
        matrix, context, case
    )


def refused(matrix: Matrix, context: ssl.SSLContext, case: str) -> None:
    before = snapshot(matrix.server)
    outcome: object = None
    try:
        with matrix.server.connect(context=context, timeout=5.0) as connection:
            outcome = connection.call(kmip.create_aes())
    except (ssl.SSLError, ConnectionError) as exc:
        outcome = exc
    assert isinstance(outcome, ssl.SSLError | ConnectionError), (
        f"{case}: the server answered: {kmip.item(outcome)}"  # type: ignore[arg-type]
    )
    time.sleep(0.2)  # anything a refused connection might still do would show by now
    assert snapshot(matrix.server) == before, f"{case}: an operation ran"
    # The server still serves the target's own client.
    with matrix.server.connect(context=matrix.context(matrix.server.credentials(TARGET))) as c:
        assert len(kmip.key_material(c.call(kmip.get(matrix.target_uid)))) == 32


def own_keys_only(matrix: Matrix, context: ssl.SSLContext, case: str) -> None:
    before_counts, _ = snapshot(matrix.server)
    with matrix.server.connect(context=context) as connection:
        foreign = kmip.item(connection.call(kmip.get(matrix.target_uid)))
        missing = kmip.item(connection.call(kmip.get(str(uuid.uuid4()))))
        made = kmip.created_uid(connection.call(kmip.create_aes()))
    assert foreign.result_status == ResultStatus.OPERATION_FAILED
    assert foreign.result_reason == ResultReason.ITEM_NOT_FOUND
    # The same answer as for a UID that does not exist anywhere.
    assert (foreign.result_reason, foreign.result_message) == (
        missing.result_reason,
        missing.result_message,
    )
    after_counts, _ = snapshot(matrix.server)
    # Its Create landed in its own instance, not the target's.
    assert after_counts[TARGET] == before_counts[TARGET]
    assert after_counts[OTHER] == before_counts[OTHER] + 1
    with matrix.server.connect(context=matrix.context(matrix.server.credentials(TARGET))) as c:
        assert kmip.item(c.call(kmip.get(made))).result_reason == ResultReason.ITEM_NOT_FOUND
        assert len(kmip.key_material(c.call(kmip.get(matrix.target_uid)))) == 32


def accepted_in_target(matrix: Matrix, context: ssl.SSLContext, case: str) -> None:
    before_counts, before_audit = snapshot(matrix.server)
    with matrix.server.connect(context=context) as connection:
        uid = kmip.created_uid(connection.call(kmip.create_aes()))
        material = kmip.key_material(connection.call(kmip.get(uid)))
        # It is the target's: it sees the target's existing key too.
        assert len(kmip.key_material(connection.call(kmip.get(matrix.target_uid)))) == 32
    after_counts, after_audit = snapshot(matrix.server)
    assert after_counts[TARGET] == before_counts[TARGET] + 1
    assert after_audit == before_audit + 3  # Create, Get, Get: one audit record each
    with matrix.server.connect(context=matrix.context(matrix.server.credentials(TARGET))) as c:
        assert kmip.key_material(c.call(kmip.get(uid))) == material
