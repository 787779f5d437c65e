"""``kmipd audit list``: the audit trail, newest first (over the REST API);
``kmipd audit verify --data-dir DIR``: check the trail's hash chain in the database itself
(it needs the keyring master key of DIR, and no running server)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.audit.chain import PURPOSE, AuditChain, Verification, verify
from kmipd.cli.api_client import ApiClient, connection_options, print_json, print_table, when
from kmipd.cli.errors import EXIT_FAILED, EXIT_USAGE, CommandError
from kmipd.keys.keyring import Keyring, KeyringError
from kmipd.store.store import Store, StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="read the audit trail (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[connection_options()], help="list records")
    listing.add_argument("--actor", help="certificate fingerprint or service ID")
    listing.add_argument("--action", dest="audit_action", help="e.g. Get, delete_key")
    listing.add_argument("--instance")
    listing.add_argument("--uid")
    listing.add_argument("--result", choices=("started", "success", "failure", "undone"))
    listing.add_argument("--channel", choices=("kmip", "https"))
    listing.add_argument("--since", help="epoch seconds or ISO 8601 (2024-05-01T12:00:00Z)")
    listing.add_argument("--until", help="epoch seconds or ISO 8601")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(run=run_list)
    verify = actions.add_parser(
        "verify",
        help="check that no audit record was modified, removed, inserted or reordered",
    )
    verify.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.data_dir)
        store = Store.from_url(settings.store.url, base=settings.data_dir, pool_size=2)
        keyring = Keyring.in_data_dir(settings.data_dir, store_url=settings.store.url)
    except (config.ConfigError, StoreError, KeyringError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    try:
        chain = AuditChain(keyring.derive_key(PURPOSE))
    finally:
        keyring.close()

    async def check() -> Verification:
        await store.open()
        try:
            return await verify(store, chain)
        finally:
            await store.close()

    try:
        result = asyncio.run(check())
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json(dataclasses.asdict(result))
    elif result.ok:
        print(
            f"the audit trail is intact: {result.checked} chained records"
            + (f" (and {result.unchained} older ones before the chain)" if result.unchained else "")
            + f"; head {result.head}"
        )
    else:
        print(f"the audit trail was tampered with: {result.problem}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED


def run_list(args: argparse.Namespace) -> int:
    params = [
        ("actor", args.actor),
        ("action", args.audit_action),
        ("instance", args.instance),
        ("uid", args.uid),
        ("result", args.result),
        ("channel", args.channel),
        ("since", args.since),
        ("until", args.until),
        ("limit", args.limit),
        ("offset", args.offset),
    ]
    reply = ApiClient.from_args(args).call("GET", "/admin/v1/audit", params=params)
    if args.json:
        print_json(reply)
        return 0
    print_table(
        [
            [
                when(r["time"]),
                r["channel"],
                r["actor"] if len(r["actor"]) < 20 else r["actor"][:16] + "…",
                r["action"],
                r["instance"] or "-",
                r["uid"] or "-",
                r["result"] + (f" ({r['reason']})" if r["reason"] else ""),
            ]
            for r in reply["records"]
        ],
        ["TIME", "CHANNEL", "ACTOR", "ACTION", "INSTANCE", "UID", "RESULT"],
    )
    if reply["total"] > len(reply["records"]):
        print(f"({len(reply['records'])} of {reply['total']}; use --offset and --limit)")
    return 0
