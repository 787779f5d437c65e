"""One kmipd node on SQLite and on PostgreSQL, measured in one run (not a test).

For each engine: ``kmipd init`` a new setup (PostgreSQL: a new database on the local server),
start ``kmipd serve``, then C clients, each on its own TLS connection, send KMIP 1.1 Creates
(AES-256, as vCenter does) for S seconds, then Gets of the keys they made for S seconds.
Prints operations per second and latency percentiles per engine, and PostgreSQL's ratio to
SQLite. The engines run one after the other on the same machine, so the ratio is fair;
absolute figures depend on the machine.

    python bench/store_engines.py [--clients 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kmipd.protocol import messages
from kmipd.protocol._generated import ObjectType, Operation
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import CreateRequest, GetRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER
from tests.support.postgres import fresh_database
from tests.support.server import KmipConnection, KmipdServer, init_server

CREATE = messages.encode_request(
    messages.RequestMessage(
        header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 1))),
        batch_items=[
            messages.RequestBatchItem(
                operation=Operation.CREATE,
                payload=CreateRequest(
                    object_type=ObjectType.SYMMETRIC_KEY,
                    template_attribute=TemplateAttribute(
                        attributes=[
                            Attribute("Cryptographic Algorithm", 3, None, ENUMERATION),
                            Attribute("Cryptographic Length", 256, None, INTEGER),
                            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
                        ]
                    ),
                ),
            )
        ],
    )
)


def get_request(uid: str) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 1))),
            batch_items=[
                messages.RequestBatchItem(
                    operation=Operation.GET, payload=GetRequest(unique_identifier=uid)
                )
            ],
        )
    )


def succeeded(response: bytes) -> messages.ResponseBatchItem:
    item = messages.decode_response(response).batch_items[0]
    if item.result_status != 0:
        raise RuntimeError(f"{item.operation}: {item.result_reason} {item.result_message}")
    return item


class Result:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.elapsed = 0.0

    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def run_clients(server: KmipdServer, clients: int, seconds: float) -> tuple[Result, Result]:
    """Creates for ``seconds``, then Gets of what each client created, for ``seconds``."""
    creates, gets = Result(), Result()
    lock = threading.Lock()
    made: list[list[str]] = [[] for _ in range(clients)]

    def loop(index: int, phase: str, deadline: float) -> None:
        connection: KmipConnection = server.connect()
        mine: list[float] = []
        uids = made[index]
        n = 0
        try:
            while (started := time.perf_counter()) < deadline:
                if phase == "create":
                    item = succeeded(connection.call(CREATE))
                    uids.append(item.payload.unique_identifier)  # type: ignore[union-attr]
                else:
                    succeeded(connection.call(get_request(uids[n % len(uids)])))
                    n += 1
                mine.append(time.perf_counter() - started)
        finally:
            connection.close()
        with lock:
            (creates if phase == "create" else gets).latencies.extend(mine)

    for phase, result in (("create", creates), ("get", gets)):
        deadline = time.perf_counter() + seconds
        threads = [threading.Thread(target=loop, args=(i, phase, deadline)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.elapsed = time.perf_counter() - started
    return creates, gets


@contextlib.contextmanager
def node(engine: str, workdir: Path) -> Iterator[KmipdServer]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database("bench")) if engine == "postgresql" else None
        server = init_server(workdir / engine, store_url=url)
        server.start()
        stack.callback(server.stop)
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, tuple[Result, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="kmipd-bench-") as workdir:
        for engine in ("sqlite", "postgresql"):
            with node(engine, Path(workdir)) as server:
                results[engine] = run_clients(server, args.clients, args.seconds)
    print(f"one kmipd node, {args.clients} clients, {args.seconds:g} s per operation")
    print(f"{'engine':<11} {'op':<7} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for engine, (creates, gets) in results.items():
        for op, result in (("Create", creates), ("Get", gets)):
            print(
                f"{engine:<11} {op:<7} {result.rate():>8,.0f} {result.pct(0.5):>8.2f} "
                f"{result.pct(0.99):>8.2f}"
            )
    sqlite_c, sqlite_g = results["sqlite"]
    pg_c, pg_g = results["postgresql"]
    print(
        f"PostgreSQL / SQLite: Create {pg_c.rate() / sqlite_c.rate():.2f}x, "
        f"Get {pg_g.rate() / sqlite_g.rate():.2f}x"
    )


if __name__ == "__main__":
    main()
