"""Latency and throughput of KMIP Get against a running kmipd (not a test).

Creates one AES-256 key, then sends vCenter-style KMIP 1.1 Get requests for it from C
concurrent clients, each on its own TLS connection, for S seconds; prints requests per second
and latency percentiles. Also times a fresh connection (TLS handshake + DiscoverVersions),
what vCenter pays per step.

Run against a server started with `kmipd serve --data-dir DIR`:
    python bench/kmip_get_latency.py --data-dir DIR [--clients 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import struct
import threading
import time
from pathlib import Path

from kmipd import config
from kmipd.protocol import messages
from kmipd.protocol._generated import ObjectType, Operation
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import CreateRequest, DiscoverVersionsRequest, GetRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER


def request(operation: Operation, payload: object) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 1))),
            batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
        )
    )


def read_message(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while len(data) < 8:
        data += sock.recv(8 - len(data))
    (length,) = struct.unpack(">I", data[4:8])
    while len(data) < 8 + length:
        data += sock.recv(8 + length - len(data))
    return data


class Client:
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection((host, port))
        self.sock = context.wrap_socket(raw, server_hostname="localhost")

    def call(self, message: bytes) -> bytes:
        self.sock.sendall(message)
        return read_message(self.sock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    settings = config.load(args.data_dir)
    context = ssl.create_default_context(cafile=str(settings.path(settings.tls.ca)))
    client_dir = args.data_dir / "clients" / "default"
    context.load_cert_chain(client_dir / "client.pem", client_dir / "client-key.pem")
    host, port = "127.0.0.1", settings.kmip.port

    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", 3, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
        ]
    )
    created = messages.decode_response(
        Client(host, port, context).call(
            request(
                Operation.CREATE,
                CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template),
            )
        )
    )
    uid = created.batch_items[0].payload.unique_identifier
    get = request(Operation.GET, GetRequest(unique_identifier=uid))
    discover = request(Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest())

    handshakes = []
    for _ in range(50):
        started = time.perf_counter()
        Client(host, port, context).call(discover)
        handshakes.append(time.perf_counter() - started)

    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + args.seconds

    def run() -> None:
        client = Client(host, port, context)
        mine = []
        while (now := time.perf_counter()) < deadline:
            client.call(get)
            mine.append(time.perf_counter() - now)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    handshakes.sort()
    print(
        f"new connection (TLS handshake + DiscoverVersions): median "
        f"{statistics.median(handshakes) * 1000:.1f} ms, p99 {pct(handshakes, 0.99):.1f} ms"
    )
    print(
        f"Get, {args.clients} clients, {args.seconds:.0f} s: {len(latencies) / elapsed:,.0f}/s, "
        f"p50 {pct(latencies, 0.5):.2f} ms, p99 {pct(latencies, 0.99):.2f} ms"
    )


if __name__ == "__main__":
    main()
