"""kmipd with many keys stored (not a test): server memory, and Get latency against a small
store, in one run.

Makes two data directories (``kmipd init``): one with 1,000 keys and one with ``--keys``
(default 1,000,000). The keys are written straight through kmipd's object repository, as a
Create writes them (sealed under the instance's wrapping key, vCenter's x- attributes, in
the text index), but without the KMIP round trip, which would take most of an hour. Then
for each directory it starts ``kmipd serve``, reads its resident memory (VmRSS) once it is
up and again after a Get cell (concurrency 8, Gets of 2,000 keys spread over the whole
store, every response checked), and prints both, with the large store's Get p50/p99 over
the small one's.

    python bench/million_keys.py [--keys 1000000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from loadgen import Target, Work  # noqa: E402

from kmipd import config  # noqa: E402
from kmipd.app import App  # noqa: E402
from kmipd.operations._common import new_attribute_set  # noqa: E402
from kmipd.protocol._generated import (  # noqa: E402
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
)
from kmipd.protocol.attributes import Attribute  # noqa: E402
from kmipd.protocol.objects import KeyBlock, KeyValue, SymmetricKey  # noqa: E402
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, TEXT_STRING  # noqa: E402
from kmipd.service.repository import ObjectRepository  # noqa: E402
from tests.support.server import KmipdServer, init_server  # noqa: E402

RESULTS = BENCH / "results"
BATCH = 500


def _attributes(n: int, now: int) -> Any:
    return new_attribute_set(
        [
            Attribute("Cryptographic Algorithm", CryptographicAlgorithm.AES, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
            Attribute("x-Name", f"vm-{n:07d}-disk", None, TEXT_STRING),
            Attribute("x-Vendor", "VMware, Inc.", None, TEXT_STRING),
            Attribute("x-Product", "VMware vSphere", None, TEXT_STRING),
            Attribute("x-Product_Version", "7.0.3", None, TEXT_STRING),
        ],
        now,
    )


def _key() -> SymmetricKey:
    return SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=os.urandom(32)),
            cryptographic_algorithm=CryptographicAlgorithm.AES,
            cryptographic_length=256,
        )
    )


async def _seed(data_dir: Path, count: int) -> list[str]:
    """``count`` keys in instance ``default``; their UIDs."""
    app = App.build(config.load(data_dir))
    await app.store.open()
    assert app.instance_keys is not None
    # Not durable one by one: the last write of the run is, and carries the rest.
    repository = ObjectRepository(app.store, app.instance_keys, durable=False)
    uids: list[str] = []
    now = int(time.time())
    started = time.monotonic()
    try:
        for first in range(0, count, BATCH):
            made = await asyncio.gather(
                *(
                    repository.create(
                        "default", ObjectType.SYMMETRIC_KEY, _key(), _attributes(n, now), now
                    )
                    for n in range(first, min(count, first + BATCH))
                )
            )
            uids.extend(obj.uid for obj in made)
            if len(uids) % 100_000 < BATCH:
                rate = len(uids) / (time.monotonic() - started)
                print(f"  {len(uids):,} keys stored ({rate:,.0f}/s)", flush=True)
        await app.store.database.write(lambda db: None)  # durable: everything before too
    finally:
        await app.store.close()
    return uids


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(server: KmipdServer, uids: list[str], seconds: float) -> dict[str, Any]:
    server.start()
    try:
        time.sleep(1.0)
        rss_start = _rss_mib(server.pid)
        cert, key = (str(p) for p in server.credentials())
        target = Target("kmipd", "127.0.0.1", server.kmip_port, str(server.ca), cert, key,
                        server.pid)  # fmt: skip
        sample = random.Random(1).sample(uids, min(2000, len(uids)))
        row = loadgen.run_cell(target, "get", 8, seconds, Work(get_uids=sample))
        row.pop("created", None)
        return {**row, "rss_start_mib": rss_start, "rss_after_mib": _rss_mib(server.pid)}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=RESULTS / "million_keys.json")
    args = parser.parse_args()
    rows: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="kmipd-million-") as tmp:
        for count in (1_000, args.keys):
            server = init_server(Path(tmp) / f"keys-{count}")
            server.log_level = None
            print(f"storing {count:,} keys in {server.data_dir}", flush=True)
            uids = asyncio.run(_seed(server.data_dir, count))
            size = (server.data_dir / "kmipd.db").stat().st_size / 2**20
            rows[count] = {**measure(server, uids, args.seconds), "database_mib": size}
            r = rows[count]
            print(
                f"{count:>9,} keys: database {size:,.0f} MiB; server RSS {r['rss_start_mib']:.0f}"
                f" MiB at start, {r['rss_after_mib']:.0f} MiB after the Gets; Get c=8 "
                f"{r['ops_per_s']:,.0f}/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"errors {r['errors']}",
                flush=True,
            )
    small, large = rows[1_000], rows[args.keys]
    p50 = large["p50_ms"] / small["p50_ms"]
    print(
        f"\nGet at {args.keys:,} keys over 1,000 keys: p50 {p50:.2f}x,"
        f" p99 {large['p99_ms'] / small['p99_ms']:.2f}x; server RSS with {args.keys:,} keys: "
        f"{large['rss_after_mib']:.0f} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    args.json.write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=2))
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
