"""``kmipd audit list``: the audit trail, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from kmipd.cli.api_client import ApiClient, connection_options, print_json, print_table, when


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="read the audit trail (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[connection_options()], help="list records")
    listing.add_argument("--actor", help="certificate fingerprint or service ID")
    listing.add_argument("--action", dest="audit_action", help="e.g. Get, delete_key")
    listing.add_argument("--instance")
    listing.add_argument("--uid")
    listing.add_argument("--result", choices=("success", "failure", "undone"))
    listing.add_argument("--channel", choices=("kmip", "https"))
    listing.add_argument("--since", help="epoch seconds or ISO 8601 (2024-05-01T12:00:00Z)")
    listing.add_argument("--until", help="epoch seconds or ISO 8601")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(run=run_list)


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
