"""Online rotation and the re-wrap job against a real server: KMIP Gets keep working during
rotate + re-wrap; a kill -9 in the middle of the job loses nothing and the job resumes."""

from __future__ import annotations

import random
import sqlite3
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support import kmip
from tests.support.admin import bearer, https_client
from tests.support.server import KmipdServer

KEYS = 2000
# The root key issue's figure: rotation and re-wrap of 10,000 keys under a Get load.
LOAD_KEYS = 10_000
WRITERS = 8


def create_keys(server: KmipdServer, n: int) -> dict[str, bytes]:
    def work(count: int) -> dict[str, bytes]:
        made = {}
        with server.connect() as connection:
            for _ in range(count):
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                made[uid] = kmip.key_material(connection.call(kmip.get(uid)))
        return made

    keys: dict[str, bytes] = {}
    with ThreadPoolExecutor(WRITERS) as pool:
        for made in pool.map(work, [n // WRITERS] * WRITERS):
            keys.update(made)
    return keys


def sealed_versions(server: KmipdServer) -> dict[int, int]:
    db = sqlite3.connect(server.database)
    try:
        rows = db.execute(
            "SELECT sealed FROM objects WHERE instance = 'default' AND sealed IS NOT NULL"
        ).fetchall()
    finally:
        db.close()
    counts: dict[int, int] = {}
    for (blob,) in rows:
        version = struct.unpack_from(">I", blob, 1)[0]
        counts[version] = counts.get(version, 0) + 1
    return counts


def wait_done(server: KmipdServer, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with https_client(server) as client:
        while True:
            reply = client.get(
                "/admin/v1/instances/default/rewrap", headers=bearer(server.admin_api_key)
            )
            assert reply.status_code == 200, reply.text
            job: dict[str, Any] = reply.json()
            if job["state"] == "done" or time.monotonic() > deadline:
                return job
            time.sleep(0.2)


def rotate(server: KmipdServer) -> dict[str, Any]:
    with https_client(server) as client:
        reply = client.post(
            "/admin/v1/instances/default/rotate", headers=bearer(server.admin_api_key)
        )
    assert reply.status_code == 200, reply.text
    rotation: dict[str, Any] = reply.json()
    return rotation


def check_all(server: KmipdServer, keys: dict[str, bytes]) -> None:
    def work(uids: list[str]) -> None:
        with server.connect() as connection:
            for uid in uids:
                assert kmip.key_material(connection.call(kmip.get(uid))) == keys[uid]

    uids = list(keys)
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(work, [uids[i::WRITERS] for i in range(WRITERS)]))


def test_rotation_under_load(kmipd_server: KmipdServer) -> None:
    keys = create_keys(kmipd_server, LOAD_KEYS)
    assert sealed_versions(kmipd_server) == {1: LOAD_KEYS}
    stop = threading.Event()
    errors: list[str] = []
    gets = [0]

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        uids = list(keys)
        try:
            with kmipd_server.connect() as connection:
                while not stop.is_set():
                    uid = rng.choice(uids)
                    if kmip.key_material(connection.call(kmip.get(uid))) != keys[uid]:
                        errors.append(f"{uid}: other bytes")
                    gets[0] += 1
        except Exception as exc:  # any failure at all is the test's failure
            errors.append(repr(exc))

    readers = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(3)]
    for thread in readers:
        thread.start()
    time.sleep(0.3)
    rotation = rotate(kmipd_server)
    assert rotation["wrapping_key_version"] == 2 and rotation["root_key_version"] == 2
    # New seals use the new version at once.
    uid = kmip.created_uid(kmipd_server.call(kmip.create_aes()))
    keys[uid] = kmip.key_material(kmipd_server.call(kmip.get(uid)))
    job = wait_done(kmipd_server, 120)
    time.sleep(0.3)
    stop.set()
    for thread in readers:
        thread.join(10)
    assert errors == []
    assert gets[0] > 0
    assert job["state"] == "done" and job["error"] is None, job
    assert job["objects_remaining"] == 0 and job["objects_on_target"] == LOAD_KEYS + 1
    assert sealed_versions(kmipd_server) == {2: LOAD_KEYS + 1}
    check_all(kmipd_server, keys)
    # The old version is unused now, but retiring it waits for the grace period.
    with https_client(kmipd_server) as client:
        reply = client.delete(
            "/admin/v1/instances/default/wrapping-keys/1",
            headers=bearer(kmipd_server.admin_api_key),
        )
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "wrapping_key_recent"


def test_kill_during_rewrap_then_resume(kmipd_server: KmipdServer) -> None:
    server = kmipd_server
    keys = create_keys(server, KEYS)
    server.stop()
    server.configure(rewrap={"batch_size": 50, "pause": 0.05, "lease_seconds": 2.0})
    server.start()
    rotate(server)
    deadline = time.monotonic() + 30
    while True:  # kill -9 in the middle of the job
        versions = sealed_versions(server)
        if versions.get(2, 0) >= 200:
            break
        assert time.monotonic() < deadline, versions
        time.sleep(0.05)
    server.kill()
    before = sealed_versions(server)
    assert before.get(1, 0) > 0, "the job finished before the kill"
    server.start()
    job = wait_done(server, 60)
    assert job["state"] == "done" and job["error"] is None, job
    assert sealed_versions(server) == {2: KEYS}
    check_all(server, keys)
    # Idempotent: running it again changes nothing.
    with https_client(server) as client:
        reply = client.post(
            "/admin/v1/instances/default/rewrap", headers=bearer(server.admin_api_key)
        )
    assert reply.status_code == 202
    job = wait_done(server, 30)
    assert job["state"] == "done" and job["rewrapped"] == 0 and job["skipped"] == KEYS
    assert sealed_versions(server) == {2: KEYS}
    check_all(server, keys)
