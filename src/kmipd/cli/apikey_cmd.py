"""``kmipd apikey create|list|revoke``: API keys of service IDs (needs a Manager key)."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

from kmipd.cli.api_client import ApiClient, connection_options, print_json, print_table, when


def register(commands: Any) -> None:
    parser = commands.add_parser("apikey", help="manage API keys (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()

    create = actions.add_parser("create", parents=[common], help="make an API key")
    create.add_argument("--service-id", required=True, help="who it is for, e.g. vcenter-ops")
    create.add_argument("--role", required=True, choices=("Reader", "Writer", "Manager"))
    create.add_argument("--description", default="")
    create.set_defaults(run=run_create)

    actions.add_parser("list", parents=[common], help="list API keys").set_defaults(run=run_list)

    revoke = actions.add_parser("revoke", parents=[common], help="revoke an API key")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=run_revoke)


def run_create(args: argparse.Namespace) -> int:
    body = {"service_id": args.service_id, "role": args.role, "description": args.description}
    key = ApiClient.from_args(args).call("POST", "/admin/v1/apikeys", body)
    if args.json:
        print_json(key)
        return 0
    print(f"API key {key['id']} for {key['service_id']} ({key['role']})", file=sys.stderr)
    print("the secret is shown only now; keep it secret:", file=sys.stderr)
    print(key["api_key"])
    return 0


def run_list(args: argparse.Namespace) -> int:
    reply = ApiClient.from_args(args).call("GET", "/admin/v1/apikeys")
    if args.json:
        print_json(reply)
        return 0
    print_table(
        [
            [
                k["id"],
                k["service_id"],
                k["role"],
                when(k["created"]),
                when(k["revoked"]),
                k["description"],
            ]
            for k in reply["api_keys"]
        ],
        ["ID", "SERVICE ID", "ROLE", "CREATED", "REVOKED", "DESCRIPTION"],
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    ApiClient.from_args(args).call("DELETE", f"/admin/v1/apikeys/{quote(args.key_id, safe='')}")
    if args.json:
        print_json({"revoked": args.key_id})
    else:
        print(f"revoked API key {args.key_id}; its tokens stop working at once")
    return 0
