"""kmipd against PyKMIP and a bare TLS floor, on the same KMIP work, in one run (not a test).

Starts three servers on this machine: kmipd (``kmipd init`` + ``kmipd serve``, the embedded
default: SQLite), PyKMIP 0.11.0's server (from PyPI, in its own virtual environment under
/tmp, with a server certificate of its own) and bench/floor_server.py (reads a message, writes
a fixed Get response: TLS and framing only). Then, for each workload and concurrency, runs the
load generator (bench/loadgen.py: KMIP 1.2 over TLS 1.2 from several processes) against each
server in turn (interleaved, so that drift on the machine hits all three alike), and prints
ops/s, p50/p99 latency, server CPU per op and errors, with kmipd/PyKMIP and kmipd/floor.

Workloads: get, create, destroy (the keys the create cell made), locate (by x-Name among
1,000 seeded keys; PyKMIP cannot store x-Name, so it is searched by Name), short_connection
(vCenter: handshake + DiscoverVersions + Get + GetAttributes State), boot_storm (a mix, see
loadgen.py); with ``--large``, locate among 100,000 keys too.

    python bench/compare.py [--seconds 5] [--concurrency 1,8,64] [--quick] [--large]
                            [--servers kmipd,pykmip,floor] [--json bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from loadgen import Connection, Target, Work, check, create_payload, request  # noqa: E402
from pykmip_server import PyKmipServer, free_port  # noqa: E402

from kmipd import pki  # noqa: E402
from kmipd.protocol import messages  # noqa: E402
from kmipd.protocol._generated import Operation  # noqa: E402
from tests.support.server import KmipdServer, init_server  # noqa: E402

SERVERS = ("kmipd", "pykmip", "floor")
SMALL, LARGE = 1_000, 100_000
SEED_BATCH = 50
PYKMIP_LARGE_BUDGET_S = 300.0


# -- servers --------------------------------------------------------------------------------


@contextlib.contextmanager
def floor_server(workdir: Path, ca: pki.Issued) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    workdir.mkdir(parents=True, exist_ok=True)
    issued = pki.issue_server(ca, ["localhost", "127.0.0.1"])
    cert, key, ca_path = workdir / "server.pem", workdir / "server-key.pem", workdir / "ca.pem"
    pki.write_public(cert, issued.certificate_pem())
    pki.write_private(key, issued.private_key_pem())
    pki.write_public(ca_path, ca.certificate_pem())
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "floor_server.py"),
            "--port",
            str(port),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--ca",
            str(ca_path),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the floor server did not start")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield process, port
    finally:
        process.terminate()
        process.wait(10)


# -- seeding --------------------------------------------------------------------------------


def seed(target: Target, count: int, prefix: str, threads: int = 4) -> tuple[list[str], list[str]]:
    """``count`` AES-256 keys named ``prefix-N`` (x-Name or Name), in batches; (uids, names)."""
    names = [f"{prefix}-{i}" for i in range(count)]
    uids: list[str | None] = [None] * count
    failures: list[str] = []

    def run(part: int) -> None:
        connection = Connection(target, target.context(), timeout=120)
        try:
            for start in range(part * SEED_BATCH, count, SEED_BATCH * threads):
                chunk = range(start, min(count, start + SEED_BATCH))
                data = request(
                    *[
                        (Operation.CREATE, create_payload((target.name_kind, names[i])))
                        for i in chunk
                    ]
                )
                response = connection.call(data)
                items = messages.decode_response(response).batch_items
                for i, item in zip(chunk, items, strict=True):
                    if item.result_status != 0:
                        failures.append(f"{item.result_reason}: {item.result_message}")
                        return
                    uids[i] = str(item.payload.unique_identifier)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(p,)) for p in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"seeding {target.name} failed: {failures[0]}")
    return [u for u in uids if u is not None], names


def probe(target: Target, work: Work) -> None:
    """One Get of a seeded key, checked: fail early and loudly if a server is misconfigured."""
    connection = Connection(target, target.context())
    try:
        check(connection.call(loadgen.get_request(work.get_uids[0])), Operation.GET,
              floor=target.floor)  # fmt: skip
    finally:
        connection.close()


def settle(pids: list[int], limit: float = 120.0) -> None:
    """Wait until no server burns CPU any more (requests a timed-out client abandoned still
    run), so that one cell's leftovers do not slow the next server's cell."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(loadgen.cpu_seconds(pid) for pid in pids)
        time.sleep(0.25)
        if sum(loadgen.cpu_seconds(pid) for pid in pids) - before < 0.05:
            return


# -- output ---------------------------------------------------------------------------------


def fmt_row(row: dict[str, Any]) -> str:
    cpu = row["cpu_ms_per_op"]
    return (
        f"{row['server']:<7} {row['workload']:<17} {row['concurrency']:>4} "
        f"{row['ops_per_s']:>10,.1f} {row['p50_ms']:>9.2f} {row['p99_ms']:>9.2f} "
        f"{'-' if cpu is None else f'{cpu:.3f}':>9} {row['errors']:>7}"
    )


HEADER = (
    f"{'server':<7} {'workload':<17} {'conc':>4} {'ops/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
    f"{'CPU ms/op':>9} {'errors':>7}"
)


def print_summary(rows: list[dict[str, Any]]) -> None:
    print()
    print(HEADER)
    print("-" * len(HEADER))
    for row in rows:
        print(fmt_row(row))
    print()
    print(f"{'workload':<17} {'conc':>4} {'kmipd/PyKMIP':>13} {'kmipd/floor':>12}")
    cells: dict[tuple[str, int], dict[str, float]] = {}
    for row in rows:
        cells.setdefault((row["workload"], row["concurrency"]), {})[row["server"]] = row[
            "ops_per_s"
        ]
    for (workload, concurrency), rates in cells.items():
        k = rates.get("kmipd")

        def ratio(other: str, k: float | None = k, rates: dict[str, float] = rates) -> str:
            o = rates.get(other)
            return f"{k / o:.2f}x" if k is not None and o else "-"

        print(f"{workload:<17} {concurrency:>4} {ratio('pykmip'):>13} {ratio('floor'):>12}")
    errors = [r for r in rows if r["errors"]]
    if errors:
        print("\nerrors:")
        for row in errors:
            for message, n in row["error_messages"].items():
                print(
                    f"  {row['server']} {row['workload']} c={row['concurrency']}: {n} x {message}"
                )
    else:
        print("\nerrors: none (every response checked)")


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell (default 5)")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--workloads", default=",".join(loadgen.WORKLOADS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--quick", action="store_true", help="1 s per cell")
    parser.add_argument("--large", action="store_true", help="also Locate among 100,000 keys")
    parser.add_argument("--processes", type=int, default=None, help="load generator processes")
    parser.add_argument("--tls", choices=("1.2", "max"), default="1.2")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    levels = [int(c) for c in args.concurrency.split(",")]
    workloads = args.workloads.split(",")
    servers = args.servers.split(",")
    notes: list[str] = []
    rows: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory(prefix="kmipd-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        kmipd: KmipdServer = init_server(workdir / "kmipd")
        kmipd.log_level = None  # kmipd's default level, not the test suite's debug
        kmipd.start()
        stack.callback(kmipd.stop)
        ca = pki.load_ca(kmipd.ca, kmipd.data_dir / "pki" / "ca-key.pem")
        cert, key = (str(p) for p in kmipd.credentials())
        common = {"host": "127.0.0.1", "ca": str(kmipd.ca), "cert": cert, "key": key,
                  "max_tls": args.tls}  # fmt: skip
        targets: dict[str, Target] = {}
        if "kmipd" in servers:
            targets["kmipd"] = Target("kmipd", port=kmipd.kmip_port, pid=kmipd.pid, **common)
        if "pykmip" in servers:
            py = PyKmipServer(workdir / "pykmip", ca)
            py.start()
            stack.callback(py.stop)
            targets["pykmip"] = Target("pykmip", port=py.port, pid=py.pid, name_kind="Name",
                                       **common)  # fmt: skip
            notes.append("PyKMIP cannot store the custom x-Name attribute: its keys are named, "
                         "and located, by the standard Name attribute")  # fmt: skip
        if "floor" in servers:
            process, port = stack.enter_context(floor_server(workdir / "floor", ca))
            targets["floor"] = Target("floor", port=port, pid=process.pid, floor=True, **common)

        works: dict[str, Work] = {}
        seed_rates: dict[str, float] = {}
        for name, target in targets.items():
            if target.floor:
                works[name] = Work(get_uids=["floor"], names=["floor"])
            else:
                started = time.perf_counter()
                uids, names = seed(target, SMALL, "bench-key")
                seed_rates[name] = SMALL / (time.perf_counter() - started)
                print(f"seeded {SMALL:,} keys on {name} ({seed_rates[name]:,.0f} keys/s)")
                works[name] = Work(get_uids=uids, names=names)
            probe(target, works[name])

        def cell(workload: str, concurrency: int, label: str | None = None) -> None:
            for name, target in targets.items():
                work = works[name]
                if label == "locate_100k" and not target.floor:
                    if f"{name}_large" not in works:
                        continue
                    work = works[f"{name}_large"]
                if workload == "destroy":
                    made = created.get((name, concurrency), [])
                    work = Work(get_uids=work.get_uids, names=work.names, destroy_uids=made)
                row = loadgen.run_cell(target, workload, concurrency, seconds, work,
                                       processes=args.processes)  # fmt: skip
                if workload == "create":
                    created[(name, concurrency)] = row["created"]
                row.pop("created")
                if label:
                    row["workload"] = label
                rows.append(row)
                print(fmt_row(row), flush=True)
                settle([t.pid for t in targets.values()])

        created: dict[tuple[str, int], list[str]] = {}
        print(f"\n{seconds:g} s per cell, KMIP 1.2, TLS {args.tls}; concurrency {levels}")
        print(HEADER)
        for workload in workloads:
            for concurrency in levels:
                cell(workload, concurrency)

        if args.large:
            for name in ("kmipd", "pykmip"):
                if name not in targets:
                    continue
                rate = seed_rates.get(name, 1.0)
                needed = (LARGE - SMALL) / rate
                if needed > PYKMIP_LARGE_BUDGET_S and name == "pykmip":
                    notes.append(f"PyKMIP skipped for Locate among {LARGE:,} keys: seeding would "
                                 f"take ~{needed / 60:.0f} min at {rate:.0f} keys/s")  # fmt: skip
                    continue
                started = time.perf_counter()
                seed(targets[name], LARGE - SMALL, "bench-large")
                print(f"seeded {LARGE - SMALL:,} more keys on {name} in "
                      f"{time.perf_counter() - started:.0f} s")  # fmt: skip
                works[f"{name}_large"] = works[name]
            for concurrency in levels:
                cell("locate", concurrency, "locate_100k")

    print_summary(rows)
    for note in notes:
        print(f"note: {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "seconds_per_cell": seconds,
                "concurrency": levels,
                "kmip_version": "1.2",
                "tls": args.tls,
                "notes": notes,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
