"""Re-wrap throughput: seal N objects (default 10,000) under wrapping key version 1, rotate
the instance's root key, and time the re-wrap job moving them all to version 2.

Runs the real job (``kmipd.service.rewrap``) on a real SQLite store (WAL, synchronous=FULL)
and keyring in a temporary directory; no server. ``python bench/rewrap_throughput.py
[--keys N] [--batch-size B]``. Prints keys/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from kmipd.keys import envelope
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring
from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol._generated import ObjectType
from kmipd.service.rewrap import BATCH_SIZE, RewrapService
from kmipd.store.records import InstanceRecord, ObjectRecord
from kmipd.store.store import Store


async def bench(directory: Path, keys: int, batch_size: int) -> None:
    store = Store.sqlite(directory / "kmipd.db")
    await store.open()
    try:
        ring = Keyring.in_data_dir(directory)
        instance_keys = InstanceKeys(store, ring)
        root = ring.create("bench")
        await store.add_instance(InstanceRecord("bench", root, 0))
        version, key = await instance_keys.current("bench", root)
        attributes = AttributeSet().to_bytes()
        started = time.perf_counter()
        for i in range(keys):
            uid = f"bench-{i:06d}"
            await store.insert_object(
                ObjectRecord(
                    uid=uid,
                    instance="bench",
                    object_type=int(ObjectType.SYMMETRIC_KEY),
                    state=2,
                    attributes=attributes,
                    # A body of the size of an AES-256 key's KMIP structure.
                    sealed=envelope.seal(key, version, "bench", uid, os.urandom(120)),
                    created=0,
                    updated=0,
                )
            )
        print(f"sealed {keys} objects in {time.perf_counter() - started:.1f} s")
        service = RewrapService(store, ring, instance_keys, batch_size=batch_size)
        await service.rotate("bench")
        started = time.perf_counter()
        job = await service.run_job("bench")
        elapsed = time.perf_counter() - started
        assert job is not None and job.state == "done" and job.rewrapped == keys, job
        assert await store.sealed_versions("bench") == {2: keys}
        print(
            f"re-wrapped {keys} objects in {elapsed:.2f} s: {keys / elapsed:,.0f} keys/s "
            f"(batch size {batch_size})"
        )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(bench(args.dir, args.keys, args.batch_size))
        return
    with tempfile.TemporaryDirectory(prefix="kmipd-bench-") as directory:
        asyncio.run(bench(Path(directory), args.keys, args.batch_size))


if __name__ == "__main__":
    main()
