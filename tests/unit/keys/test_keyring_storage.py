"""The keyring's document in a file or in PostgreSQL (a cluster of nodes): the same behaviour
on both; a root key deleted or disabled on one node is refused on another within a second and
after its restart; concurrent changes from two nodes lose nothing; a wrong master key is
refused; an unreachable database is a KeyringError, and a broken connection is re-made.

PostgreSQL is the machine's (``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth);
this module makes its own database and drops it afterwards. Without PostgreSQL these tests
fail, unless ``KMIPD_TEST_POSTGRES=skip``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmipd.keys import master_key
from kmipd.keys.keyring import (
    DAY,
    InvalidKeyState,
    KeyDeleted,
    Keyring,
    KeyringError,
    KeyRules,
    RestoreExpired,
)
from kmipd.keys.keyring_storage import (
    POSTGRES_KEYRING_DDL,
    FileKeyringStorage,
    KeyringStorage,
    PostgresKeyringStorage,
)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
STORAGES = ["file", "postgres"]


# --- PostgreSQL: one database for this module -------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database's URL; dropped afterwards."""
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = f"PostgreSQL at {ADMIN_DSN} is unreachable ({first_line[:200]})"
        if os.environ.get("KMIPD_TEST_POSTGRES") == "skip":
            pytest.skip(f"{reason}; KMIPD_TEST_POSTGRES=skip")
        pytest.fail(f"{reason}: start it, or set KMIPD_TEST_POSTGRES=skip to skip these tests")
    name = f"kmipd_test_keyring_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def pg_url(database: str) -> str:
    """The module's database with the keyring table made and empty."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(POSTGRES_KEYRING_DDL)
        conn.execute("DELETE FROM keyring_document")
    return database


def pg_document(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT document FROM keyring_document WHERE id = 1").fetchone()
    assert row is not None
    return json.loads(row[0])  # type: ignore[no-any-return]


# --- nodes: Keyrings sharing one document -----------------------------------------------------


def write_master(data_dir: Path, key: bytes) -> None:
    directory = data_dir / "keyring"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / master_key.MASTER_KEY_FILE
    path.write_text(base64.b64encode(key).decode() + "\n")
    path.chmod(0o600)


class Cluster:
    """Nodes sharing one keyring document: for "file", processes on one data directory; for
    "postgres", nodes each with its own data directory (and a copy of the master key) on one
    database."""

    def __init__(self, kind: str, tmp_path: Path, url: str) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.url = url
        self.master = os.urandom(32)
        self.opened: list[Keyring] = []

    def data_dir(self, node: str) -> Path:
        data_dir = self.tmp_path / ("shared" if self.kind == "file" else node)
        if not (data_dir / "keyring" / master_key.MASTER_KEY_FILE).exists():
            write_master(data_dir, self.master)
        return data_dir

    def node(self, name: str = "a", **options: Any) -> Keyring:
        ring = Keyring.in_data_dir(self.data_dir(name), store_url=self.url, **options)
        self.opened.append(ring)
        return ring

    def document(self) -> dict[str, Any]:
        if self.kind == "file":
            path = self.tmp_path / "shared" / "keyring" / "root-keys.json"
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        return pg_document(self.url)


@pytest.fixture(params=STORAGES)
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    monkeypatch.delenv(master_key.MASTER_KEY_ENV, raising=False)
    # A store URL that is not PostgreSQL keeps the document in the file.
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else "sqlite:///x.db"
    made = Cluster(request.param, tmp_path, url)
    yield made
    for ring in made.opened:
        ring.close()


def until_refused(action: Callable[[], object], limit: float = 1.0) -> float:
    """Seconds until ``action`` raises a KeyringError (fails past ``limit``)."""
    start = time.monotonic()
    while True:
        try:
            action()
        except KeyringError:
            return time.monotonic() - start
        elapsed = time.monotonic() - start
        assert elapsed < limit, f"still accepted after {elapsed:.2f} s"
        time.sleep(0.01)


# --- the same behaviour on both storages ------------------------------------------------------


def test_storage_kind_follows_the_store_url(cluster: Cluster) -> None:
    ring = cluster.node("a")
    ring.create("root")
    file = cluster.data_dir("a") / "keyring" / "root-keys.json"
    if cluster.kind == "file":
        assert isinstance(ring.storage, FileKeyringStorage)
        assert file.exists()
    else:
        assert isinstance(ring.storage, PostgresKeyringStorage)
        assert not file.exists()  # the document is in the database; the master key is here
        assert (cluster.data_dir("a") / "keyring" / "master.key").exists()
        assert "PostgreSQL" in ring.storage.describe()
    assert isinstance(ring.storage, KeyringStorage)


def test_a_key_made_on_one_node_is_usable_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    key_id = a.create("made on a")
    wrapped = b.wrap(key_id, b"dek", b"aad")
    assert a.unwrap(key_id, wrapped, b"aad") == b"dek"
    b.rotate(key_id)
    assert a.unwrap(key_id, b.wrap(key_id, b"dek2", b""), b"") == b"dek2"
    assert b.unwrap(key_id, wrapped, b"aad") == b"dek"
    made_on_b = b.create_key("made on b", aliases=["from-b"]).id
    assert a.get("from-b").id == made_on_b
    assert {k.id for k in a.list()} == {k.id for k in b.list()} == {key_id, made_on_b}


@pytest.mark.parametrize("change", ["delete", "disable"])
def test_a_root_key_deleted_or_disabled_on_a_is_refused_on_b_within_a_second(
    cluster: Cluster, change: str
) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    key_id = a.create("root")
    wrapped = b.wrap(key_id, b"dek", b"aad")
    b.check(key_id, for_wrap=True)  # b has read the document just now
    if change == "delete":
        a.delete(key_id)
    else:
        a.disable(key_id)
    assert until_refused(lambda: b.check(key_id, for_wrap=True)) < 1.0
    with pytest.raises((KeyDeleted, InvalidKeyState)):
        b.wrap(key_id, b"dek", b"aad")
    if change == "delete":
        with pytest.raises(InvalidKeyState):
            b.unwrap(key_id, wrapped, b"aad")
    # After a restart too.
    restarted = cluster.node("b")
    with pytest.raises(InvalidKeyState):
        restarted.check(key_id, for_wrap=True)
    info = restarted.info(key_id)
    assert info.deleted == (change == "delete")


def test_wrap_on_b_is_refused_within_a_second_of_the_delete_on_a(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    key_id = a.create("root")
    b.wrap(key_id, b"dek", b"aad")
    a.delete_key(key_id)
    assert until_refused(lambda: b.wrap(key_id, b"dek", b"aad")) < 1.0


def test_two_nodes_changing_at_once_lose_no_update(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    made: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(ring: Keyring, prefix: str) -> None:
        try:
            start.wait()
            for index in range(20):
                made.append(ring.create(f"{prefix}-{index}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r, p)) for r, p in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(made) == 40
    time.sleep(0.3)  # past the poll interval: each node has seen the other's last change
    for ring in (a, b, cluster.node("c")):
        assert {k.id for k in ring.list()} == set(made)
    assert set(cluster.document()["keys"]) == set(made)


def test_a_wrong_master_key_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.node("a").create("root")
    other = tmp_path / "other-node"
    write_master(other, os.urandom(32))
    if cluster.kind == "file":  # the same document, another master key
        with pytest.raises(KeyringError, match="does not open"):
            Keyring(cluster.data_dir("a") / "keyring" / "root-keys.json", master=os.urandom(32))
        return
    with pytest.raises(KeyringError, match="the keyring master key does not open the keyring"):
        Keyring.in_data_dir(other, store_url=cluster.url)
    # A node without its master key is never given a new one: it would not open the document.
    bare = tmp_path / "bare-node"
    with pytest.raises(KeyringError, match="missing"):
        Keyring.in_data_dir(bare, store_url=cluster.url)
    assert not (bare / "keyring" / "master.key").exists()


def test_no_material_in_plaintext_in_the_document(cluster: Cluster) -> None:
    ring = cluster.node("a")
    imported = os.urandom(32)
    ring.create_key("imported", payload=imported)
    ring.create_key("standard", extractable=True, payload=b"standard secret")
    text = json.dumps(cluster.document()).encode()
    for secret in (imported, b"standard secret"):
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in text
    assert base64.b64encode(cluster.master) not in text
    standard = next(k for k in ring.all_keys() if k.name == "standard")
    assert cluster.node("b").payload(standard.id) == b"standard secret"


def test_start_erases_what_outlived_its_restore_window(cluster: Cluster) -> None:
    now = [1_800_000_000.0]
    ring = cluster.node("a", clock=lambda: now[0])
    key_id = ring.create("root")
    ring.delete(key_id)
    assert cluster.document()["keys"][key_id]["versions"][0]["material"] is not None
    now[0] += 30 * DAY + 1
    restarted = cluster.node("b", clock=lambda: now[0])  # no change made, only a start
    versions = cluster.document()["keys"][key_id]["versions"]
    assert all(v["material"] is None for v in versions)
    with pytest.raises(RestoreExpired):
        restarted.restore(key_id)


def test_a_failed_change_leaves_the_document_and_the_node_as_they_were(cluster: Cluster) -> None:
    a, b = cluster.node("a", rules=KeyRules(action_delay=0)), cluster.node("b")
    key_id = a.create("root")
    before = cluster.document()
    a.delete(key_id)
    with pytest.raises(KeyDeleted):
        a.delete(key_id)
    after_delete = cluster.document()
    assert after_delete != before
    with pytest.raises(KeyDeleted):
        b.delete(key_id)
    assert cluster.document() == after_delete
    assert a.restore(key_id).state == 1
    time.sleep(0.3)  # past the poll interval
    b.check(key_id, for_wrap=True)


# --- PostgreSQL only --------------------------------------------------------------------------


def test_the_old_plaintext_format_is_migrated_in_the_database(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(master_key.MASTER_KEY_ENV, raising=False)
    material = os.urandom(32)
    key_id = "0d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a"
    old = {
        "format": 1,
        "keys": {
            key_id: {
                "name": "root",
                "created": 1_700_000_000,
                "versions": [base64.b64encode(material).decode()],
            }
        },
    }
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO keyring_document (id, revision, document, updated) VALUES (1, 1, %s, 0)",
            (json.dumps(old),),
        )
    nonce = os.urandom(12)
    wrapped = b"\x01\x00\x00\x00\x01" + nonce + AESGCM(material).encrypt(nonce, b"dek", b"aad")
    ring = Keyring.in_data_dir(tmp_path, store_url=pg_url)
    try:
        assert ring.unwrap(key_id, wrapped, b"aad") == b"dek"
    finally:
        ring.close()
    document = pg_document(pg_url)
    assert document["format"] == 2
    text = json.dumps(document).encode()
    assert base64.b64encode(material) not in text
    assert (tmp_path / "keyring" / "master.key").exists()


def test_changes_on_another_node_are_polled_not_looked_up_on_every_use(pg_url: str) -> None:
    a = PostgresKeyringStorage(pg_url, poll_interval=0.3)
    b = PostgresKeyringStorage(pg_url, poll_interval=0.3)
    try:
        with a.lock():
            assert a.read() is None
            a.write({"n": 1})
        assert not a.changed()  # its own write
        assert b.read() == {"n": 1}
        assert not b.changed()
        with a.lock():
            assert not a.changed()
            a.write({"n": 2})
        assert not b.changed()  # within the poll interval
        time.sleep(0.35)
        assert b.changed()
        assert b.read() == {"n": 2}
        with b.lock():  # inside the lock the revision is always looked at
            assert not b.changed()
            b.write({"n": 3})
        with a.lock():
            assert a.changed()
            assert a.read() == {"n": 3}
    finally:
        a.close()
        b.close()


def test_an_error_inside_the_lock_rolls_back(pg_url: str) -> None:
    storage = PostgresKeyringStorage(pg_url)
    try:
        with storage.lock():
            storage.write({"n": 1})
        with pytest.raises(RuntimeError), storage.lock():
            storage.write({"n": 2})
            raise RuntimeError("the keyring's change failed")
        assert storage.read() == {"n": 1}
        assert pg_document(pg_url) == {"n": 1}
    finally:
        storage.close()


def test_an_unreachable_database_is_a_keyring_error(tmp_path: Path) -> None:
    url = "postgresql://kmipd:s3cret-pw@127.0.0.1:1/kmipd"
    write_master(tmp_path, os.urandom(32))
    with pytest.raises(KeyringError, match="the keyring database is unreachable") as caught:
        Keyring.in_data_dir(tmp_path, store_url=url)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1/kmipd" in str(caught.value)
    assert not isinstance(caught.value, psycopg.Error)
    storage = PostgresKeyringStorage(url)
    for action in (storage.read, storage.changed, storage.ensure_schema):
        with pytest.raises(KeyringError, match="unreachable"):
            action()
    with pytest.raises(KeyringError, match="unreachable"), storage.lock():
        pass
    storage.close()


def test_a_missing_table_is_made_once(database: str, tmp_path: Path) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS keyring_document")
    write_master(tmp_path, os.urandom(32))
    ring = Keyring.in_data_dir(tmp_path, store_url=database)
    try:
        key_id = ring.create("root")
    finally:
        ring.close()
    assert key_id in pg_document(database)["keys"]
    storage = PostgresKeyringStorage(database, create_schema=False)
    try:
        storage.ensure_schema()  # again: nothing to do
        assert storage.read() is not None
    finally:
        storage.close()


def backend_pids(url: str) -> list[int]:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def terminate(pids: list[int]) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
def pg_cluster(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.delenv(master_key.MASTER_KEY_ENV, raising=False)
    made = Cluster("postgres", tmp_path, pg_url)
    yield made
    for ring in made.opened:
        ring.close()


def test_a_node_recovers_when_its_connection_was_ended(pg_cluster: Cluster) -> None:
    cluster = pg_cluster
    a = cluster.node("a")
    key_id = a.create("root")
    b = cluster.node("b")
    b.check(key_id, for_wrap=True)

    # Between uses: the next use makes a new connection by itself.
    terminate(backend_pids(cluster.url))
    time.sleep(0.3)  # past the poll interval: the next check reads the database
    b.check(key_id, for_wrap=True)
    assert b.wrap(key_id, b"dek", b"") and a.create("after the outage")

    # In the middle of a change: that change fails (a KeyringError, nothing written) ...
    before = cluster.document()

    def end_the_connection(data: dict[str, Any], now: float) -> None:
        terminate(backend_pids(cluster.url))
        data["keys"]["x"] = {"purged": now}

    with pytest.raises(KeyringError, match="unreachable"):
        a._mutate(end_the_connection)
    assert cluster.document() == before
    # ... and the next works.
    made = a.create("after the second outage")
    time.sleep(0.3)
    assert made in {k.id for k in b.list()}
    assert "x" not in cluster.document()["keys"]
