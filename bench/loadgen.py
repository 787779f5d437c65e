"""A KMIP-over-TLS load generator for the benchmark (not a test).

``run_cell`` keeps ``concurrency`` client connections busy for ``seconds`` on one workload,
from several worker processes (forked; each runs its share of the connections in threads on
blocking TLS sockets). Requests are KMIP 1.2 (what PyKMIP speaks), encoded with kmipd's
codec. Every response is decoded and checked: Success status, the payload the operation
should return (a 32-byte key for Get, a State for GetAttributes, a match for Locate); a
failure or a broken connection is counted, by message, and never dropped silently.

Workloads:

- ``get``: Get of seeded keys on a persistent connection;
- ``create``: Create of an AES-256 key (vCenter's template) on a persistent connection;
- ``destroy``: Destroy of keys made beforehand (a worker stops when its share runs out);
- ``locate``: Locate by name (``x-Name`` by default) of one of the seeded keys;
- ``short_connection``: vCenter's step: new TLS connection + DiscoverVersions + Get +
  GetAttributes(State), then close; one op is the whole sequence;
- ``boot_storm``: a vCenter/ESXi boot storm: of every 10 ops, 6 are an ESXi host's fetch
  (new connection + Get), 3 a vCenter short connection, 1 a Get on a persistent connection.

Server CPU per request: utime+stime of the server process and its descendants, from
/proc/PID/stat, before and after the cell.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kmipd.protocol import messages
from kmipd.protocol._generated import ObjectType, Operation, State, Tag
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import (
    CreateRequest,
    DiscoverVersionsRequest,
    GetAttributesRequest,
    GetRequest,
    LocateRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item

VERSION = ProtocolVersion.of((1, 2))
WORKLOADS = ("get", "create", "destroy", "locate", "short_connection", "boot_storm")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- requests -------------------------------------------------------------------------------


def request(*items: tuple[Operation, Any]) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=VERSION),
            batch_items=[
                messages.RequestBatchItem(
                    operation=op,
                    # PyKMIP wants an ID on each item of a batch of several
                    unique_batch_item_id=struct.pack(">I", n) if len(items) > 1 else None,
                    payload=payload,
                )
                for n, (op, payload) in enumerate(items)
            ],
        )
    )


def name_attribute(kind: str, value: str) -> Attribute:
    """``x-Name`` (a custom Text String, as vCenter tags keys) or the standard ``Name``."""
    if kind == "x-Name":
        return Attribute("x-Name", value, None, TEXT_STRING)
    name = Item(
        Tag.NAME,
        STRUCTURE,
        [Item(Tag.NAME_VALUE, TEXT_STRING, value), Item(Tag.NAME_TYPE, ENUMERATION, 1)],
    )
    return Attribute("Name", name, None, STRUCTURE)


def create_payload(name: tuple[str, str] | None = None) -> CreateRequest:
    attributes = [
        Attribute("Cryptographic Algorithm", 3, None, ENUMERATION),
        Attribute("Cryptographic Length", 256, None, INTEGER),
        Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
    ]
    if name is not None:
        attributes.append(name_attribute(*name))
    return CreateRequest(
        object_type=ObjectType.SYMMETRIC_KEY,
        template_attribute=TemplateAttribute(attributes=attributes),
    )


CREATE = request((Operation.CREATE, create_payload()))
DISCOVER = request((Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest()))


def get_request(uid: str) -> bytes:
    return request((Operation.GET, GetRequest(unique_identifier=uid)))


def state_request(uid: str) -> bytes:
    return request(
        (
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=uid, attribute_names=["State"]),
        )
    )


def destroy_request(uid: str) -> bytes:
    return request((Operation.DESTROY, UidRequest(unique_identifier=uid)))


def locate_request(kind: str, value: str) -> bytes:
    return request((Operation.LOCATE, LocateRequest(attributes=[name_attribute(kind, value)])))


# -- checks ---------------------------------------------------------------------------------


class CheckError(Exception):
    """A response that is not what the operation should return."""


def check(response: bytes, operation: Operation, *, floor: bool = False) -> Any:
    """The batch item's payload if the response is a Success of the right shape, else raise."""
    if not response:
        raise ConnectionError("connection closed by the server")
    item = messages.decode_response(response).batch_items[0]
    if item.result_status != 0:
        reason = getattr(item.result_reason, "name", item.result_reason)
        raise CheckError(f"{operation.name}: {reason}: {(item.result_message or '')[:80]}")
    payload = item.payload
    if floor:
        # The floor answers every request with one fixed Get response: check that one.
        operation = Operation.GET
    elif item.operation != operation:
        raise CheckError(f"{operation.name}: response for {item.operation}")
    if operation == Operation.GET:
        block = payload.managed_object.key_block
        material = getattr(block.key_value, "key_material", None)
        if not isinstance(material, bytes) or len(material) != 32:
            raise CheckError("GET: no 32-byte key material")
    elif operation in (Operation.CREATE, Operation.DESTROY):
        if not payload.unique_identifier:
            raise CheckError(f"{operation.name}: no Unique Identifier")
    elif operation == Operation.LOCATE:
        if len(payload.unique_identifiers) != 1:
            raise CheckError(f"LOCATE: {len(payload.unique_identifiers)} matches, expected 1")
    elif operation == Operation.GET_ATTRIBUTES:
        states = [a.value for a in payload.attributes if a.name == "State"]
        if not states or states[0] not in tuple(State):
            raise CheckError("GET_ATTRIBUTES: no State")
    return payload


# -- connections ----------------------------------------------------------------------------


@dataclass
class Target:
    """One server under test, and how the clients reach it."""

    name: str
    host: str
    port: int
    ca: str
    cert: str
    key: str
    pid: int
    floor: bool = False
    name_kind: str = "x-Name"  # the attribute Locate searches (PyKMIP: "Name")
    max_tls: str = "1.2"

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        if self.max_tls == "1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context


def _read_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


class Connection:
    def __init__(self, target: Target, context: ssl.SSLContext, timeout: float = 120.0) -> None:
        raw = socket.create_connection((target.host, target.port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise

    def call(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        head = _read_exactly(self.sock, 8)
        if not head:
            return b""
        (length,) = struct.unpack(">I", head[4:])
        body = _read_exactly(self.sock, length)
        return head + body if len(body) == length else b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- one worker thread ----------------------------------------------------------------------


@dataclass
class Work:
    """What the cell needs: the keys to Get, the names to Locate, the keys to Destroy."""

    get_uids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    destroy_uids: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, target: Target, workload: str, work: Work, index: int, total: int) -> None:
        self.target = target
        self.workload = workload
        self.floor = target.floor
        self.context = target.context()
        self.random = random.Random(index)
        self.gets = [get_request(u) for u in work.get_uids[:2000]] or [get_request("missing")]
        self.states = [state_request(u) for u in work.get_uids[:2000]] or [state_request("x")]
        self.destroys = [destroy_request(u) for u in work.destroy_uids[index::total]]
        if self.floor:  # the floor made no keys: send the same Destroy, it answers anyway
            self.destroys = [destroy_request("floor")] * 1_000_000
        self.locates = [locate_request(target.name_kind, n) for n in work.names[:5000]]
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.created: list[str] = []
        self.connection: Connection | None = None
        self.step = index
        self.finished_at = 0.0

    def persistent(self) -> Connection:
        if self.connection is None:
            self.connection = Connection(self.target, self.context)
        return self.connection

    def prepare(self) -> None:
        if self.workload in ("get", "create", "destroy", "locate", "boot_storm"):
            try:
                self.persistent()
            except OSError as exc:
                self.errors[f"connect: {type(exc).__name__}: {exc}"[:100]] += 1

    def call(self, data: bytes, op: Operation) -> Any:
        return check(self.persistent().call(data), op, floor=self.floor)

    def one(self) -> bool:
        """One op of the workload; False when there is nothing left to do."""
        n = self.step
        self.step += 1
        kind = self.workload
        if kind == "boot_storm":
            kind = ("esxi", "esxi", "short_connection", "esxi", "get", "esxi", "short_connection",
                    "esxi", "short_connection", "esxi")[n % 10]  # fmt: skip
        if kind == "get":
            self.call(self.gets[n % len(self.gets)], Operation.GET)
        elif kind == "create":
            payload = self.call(CREATE, Operation.CREATE)
            if not self.floor:
                self.created.append(str(payload.unique_identifier))
        elif kind == "destroy":
            if n >= len(self.destroys):
                return False
            self.call(self.destroys[n], Operation.DESTROY)
        elif kind == "locate":
            self.call(self.locates[self.random.randrange(len(self.locates))], Operation.LOCATE)
        elif kind in ("short_connection", "esxi"):
            connection = Connection(self.target, self.context)
            try:
                if kind == "short_connection":
                    check(connection.call(DISCOVER), Operation.DISCOVER_VERSIONS, floor=self.floor)
                i = self.random.randrange(len(self.gets))
                check(connection.call(self.gets[i]), Operation.GET, floor=self.floor)
                if kind == "short_connection":
                    check(
                        connection.call(self.states[i]), Operation.GET_ATTRIBUTES, floor=self.floor
                    )
            finally:
                connection.close()
        return True

    def run(self, deadline: float) -> None:
        while (started := time.perf_counter()) < deadline:
            try:
                if not self.one():
                    break
                self.latencies.append(time.perf_counter() - started)
            except CheckError as exc:
                self.errors[str(exc)] += 1
            except (OSError, ConnectionError, ValueError) as exc:
                self.errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
                if self.connection is not None:
                    self.connection.close()
                    self.connection = None
        self.finished_at = time.perf_counter()
        if self.connection is not None:
            self.connection.close()


# -- one worker process ---------------------------------------------------------------------


def _process_main(
    target: Target,
    workload: str,
    work: Work,
    indices: list[int],
    total: int,
    seconds: float,
    barrier: Any,
    results: Any,
) -> None:
    workers = [Worker(target, workload, work, i, total) for i in indices]
    threads = [threading.Thread(target=w.prepare) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    barrier.wait()
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=w.run, args=(deadline,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors: Counter[str] = Counter()
    for w in workers:
        errors.update(w.errors)
    results.put(
        {
            "latencies": [x for w in workers for x in w.latencies],
            "errors": dict(errors),
            "created": [u for w in workers for u in w.created],
            "elapsed": max(w.finished_at for w in workers) - started,
        }
    )


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its descendants (live ones), in seconds."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        children.setdefault(ppid, []).append(int(entry))
        times[int(entry)] = (utime + stime) / CLK_TCK
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_cell(
    target: Target,
    workload: str,
    concurrency: int,
    seconds: float,
    work: Work,
    processes: int | None = None,
) -> dict[str, Any]:
    """Run one workload at one concurrency against one server; the measured figures."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload}")
    processes = max(1, min(concurrency, processes or os.cpu_count() or 1))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    shares = [list(range(concurrency))[p::processes] for p in range(processes)]
    children = [
        context.Process(
            target=_process_main,
            args=(target, workload, work, share, concurrency, seconds, barrier, results),
            daemon=True,
        )
        for share in shares
    ]
    for child in children:
        child.start()
    barrier.wait(timeout=120)
    cpu_before = cpu_seconds(target.pid)
    parts = [results.get(timeout=seconds + 900) for _ in children]
    cpu_after = cpu_seconds(target.pid)
    for child in children:
        child.join(30)
    latencies = [x for p in parts for x in p["latencies"]]
    errors: Counter[str] = Counter()
    for p in parts:
        errors.update(p["errors"])
    elapsed = max(p["elapsed"] for p in parts) or seconds
    ops = len(latencies)
    return {
        "server": target.name,
        "workload": workload,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "ops": ops,
        "ops_per_s": ops / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_ms_per_op": (cpu_after - cpu_before) * 1000 / ops if ops else None,
        "errors": sum(errors.values()),
        "error_messages": dict(errors.most_common(10)),
        "created": [u for p in parts for u in p["created"]],
    }
