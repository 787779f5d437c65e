"""Where a request's server time goes, without TLS (not a test).

Builds kmipd exactly as ``kmipd serve`` does (``App.build`` on a fresh ``kmipd init`` data
directory: SQLite, the built-in keyring, the audit trail on) and sends KMIP 1.2 requests
straight to the engine (``handle_ttlv``: decode, dispatch, store, audit, encode) from
``--concurrency`` tasks on one event loop. Prints server CPU per request for Get and Create;
with ``--profile``, writes a pyinstrument profile of each path to bench/results/.

    python bench/profile_paths.py [--requests 4000] [--concurrency 8] [--profile]
                                  [--paths get,create] [--data-dir DIR]

Instruction counts, steady whatever else the machine runs (valgrind counts, not times): run
it under ``valgrind --tool=callgrind`` twice with different ``--requests`` on one data
directory, and divide the difference of the totals by the difference of the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from loadgen import check, create_payload, request  # noqa: E402

from kmipd import config  # noqa: E402
from kmipd.app import App  # noqa: E402
from kmipd.cli.main import main as kmipd_main  # noqa: E402
from kmipd.protocol._generated import Operation  # noqa: E402
from kmipd.protocol.payloads import GetRequest  # noqa: E402
from kmipd.service.identity import ClientIdentity  # noqa: E402

RESULTS = BENCH / "results"


async def _run(
    send: Callable[[int], Awaitable[None]], total: int, concurrency: int
) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``total`` calls of ``send`` from tasks."""
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            await send(n)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    app = App.build(config.load(data_dir))
    await app.store.open()
    client = ClientIdentity("default", "bench-fingerprint", "CN=bench")
    engine = app.engine
    create_frame = request((Operation.CREATE, create_payload()))

    uids: list[str] = []

    async def create(_: int) -> None:
        payload = check(await engine.handle_ttlv(create_frame, client), Operation.CREATE)
        if len(uids) < 200:
            uids.append(payload.unique_identifier)

    await _run(create, 200, args.concurrency)  # warm up; keys for Get
    get_frames = [request((Operation.GET, GetRequest(unique_identifier=u))) for u in uids]

    async def get(n: int) -> None:
        check(await engine.handle_ttlv(get_frames[n % 200], client), Operation.GET)

    paths = {name: {"get": get, "create": create}[name] for name in args.paths.split(",")}
    RESULTS.mkdir(exist_ok=True)
    for name, send in paths.items():
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
        wall, cpu = await _run(send, args.requests, args.concurrency)
        if profiler is not None:
            profiler.stop()
            out = RESULTS / f"profile-{name}-{args.label}.txt"
            out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            print(f"  profile written to {out}")
        print(
            f"{name:7s} {args.requests / wall:8.0f} req/s (one loop, no TLS)   "
            f"{cpu / args.requests * 1e6:7.0f} us CPU/request"
        )
    if app.audit is not None:
        await app.audit.close()
    await app.store.close()
    with contextlib.suppress(Exception):
        app.keyring.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--label", default="now", help="suffix of the profile files")
    parser.add_argument("--paths", default="get,create")
    parser.add_argument(
        "--data-dir", type=Path, help="a kmipd init'ed directory to use (default: a new one)"
    )
    args = parser.parse_args()
    if args.data_dir is not None:
        asyncio.run(measure(args, args.data_dir))
        return
    with tempfile.TemporaryDirectory(prefix="kmipd-profile-") as tmp:
        data_dir = Path(tmp) / "data"
        if kmipd_main(["init", "--data-dir", str(data_dir)]) != 0:
            raise SystemExit("kmipd init failed")
        asyncio.run(measure(args, data_dir))


if __name__ == "__main__":
    main()
