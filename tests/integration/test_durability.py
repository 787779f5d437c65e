"""T1/T2: an acknowledged key survives kill -9, and no key material is at rest in the clear.

Several clients stream Creates, each followed at once by a Get; every Create that was
answered with Success is recorded with the bytes its Get returned. The server is SIGKILLed
at a random moment, restarted, and every recorded key must come back with identical bytes.
After the last kill the SQLite database, its WAL and its SHM are scanned for every key's
bytes (raw, hex, base64), and ``PRAGMA integrity_check`` must say ok.

The seed of each run is printed (``pytest -s``); set KMIPD_DURABILITY_SEED to replay it.
"""

from __future__ import annotations

import base64
import os
import random
import sqlite3
import ssl
import threading
import time
from pathlib import Path

from kmipd.protocol._generated import ResultStatus
from tests.support import kmip
from tests.support.server import KmipdServer, init_server

ROUNDS = 3
CLIENTS = 4
KILL_AFTER = (0.3, 1.5)  # seconds of load before the SIGKILL, uniform


class Acknowledged:
    """UID -> key bytes from the immediate Get (None when the Get did not come back)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.lock = threading.Lock()

    def add(self, uid: str, material: bytes | None) -> None:
        with self.lock:
            self.keys[uid] = material


def client_loop(server: KmipdServer, acked: Acknowledged, stop: threading.Event) -> None:
    """Create + Get until the server dies (or ``stop``); records only what was answered."""
    try:
        connection = server.connect(timeout=5.0)
    except (ssl.SSLError, OSError):
        return
    try:
        while not stop.is_set():
            try:
                created = connection.call(kmip.create_aes())
            except (ssl.SSLError, OSError):
                return
            uid = kmip.created_uid(created)  # a failure here is a test failure
            acked.add(uid, None)
            try:
                material = kmip.key_material(connection.call(kmip.get(uid)))
            except (ssl.SSLError, OSError):
                return
            acked.add(uid, material)
    finally:
        connection.close()


def load_then_kill(server: KmipdServer, acked: Acknowledged, rng: random.Random) -> float:
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(server, acked, stop), daemon=True)
        for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    delay = rng.uniform(*KILL_AFTER)
    time.sleep(delay)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a client hung after the server was killed"
    return delay


def verify(server: KmipdServer, acked: Acknowledged) -> None:
    missing, different = [], []
    with server.connect(timeout=10.0) as connection:
        for uid, material in acked.keys.items():
            answer = kmip.item(connection.call(kmip.get(uid)))
            if answer.result_status != ResultStatus.SUCCESS:
                missing.append(uid)
                continue
            got = answer.payload.managed_object.key_block.key_value.key_material
            assert isinstance(got, bytes) and len(got) == 32
            if material is not None and got != material:
                different.append(uid)
    assert not missing, f"{len(missing)} acknowledged keys lost, e.g. {missing[:3]}"
    assert not different, f"{len(different)} keys changed, e.g. {different[:3]}"


def forms(material: bytes) -> list[bytes]:
    """How key bytes could appear in a file."""
    b64 = base64.b64encode(material)
    return [
        material,
        material.hex().encode(),
        material.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(material).rstrip(b"="),
    ]


def test_acknowledged_keys_survive_sigkill_and_are_sealed_at_rest(tmp_path: Path) -> None:
    seed = int(os.environ.get("KMIPD_DURABILITY_SEED", random.randrange(1 << 32)))
    print(f"[measure] durability seed {seed}")
    rng = random.Random(seed)
    server = init_server(tmp_path / "data")
    acked = Acknowledged()
    try:
        for round_number in range(ROUNDS):
            server.start()
            if acked.keys:
                verify(server, acked)
            before = len(acked.keys)
            delay = load_then_kill(server, acked, rng)
            print(
                f"[measure] round {round_number}: SIGKILL after {delay:.2f}s, "
                f"{len(acked.keys) - before} keys acknowledged"
            )
            assert len(acked.keys) > before, "no Create was acknowledged before the kill"

        # The server is dead: its files are as a crash left them (WAL not checkpointed).
        database = server.database
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        contents = {path.name: path.read_bytes() for path in files if path.exists()}
        assert database.name in contents and f"{database.name}-wal" in contents
        print(
            "[measure] files after the last kill: "
            + ", ".join(f"{name} {len(data)} B" for name, data in contents.items())
        )
        keys = [material for material in acked.keys.values() if material is not None]
        assert len(keys) > 20
        leaks = [
            (name, uid)
            for uid, material in acked.keys.items()
            if material is not None
            for name, data in contents.items()
            for form in forms(material)
            if form in data
        ]
        assert not leaks, f"key material found at rest: {leaks[:5]}"

        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        finally:
            db.close()
        assert stored >= len(acked.keys)

        server.start()
        verify(server, acked)
        print(f"[measure] {len(acked.keys)} acknowledged keys verified after {ROUNDS} kills")
    finally:
        server.stop()
