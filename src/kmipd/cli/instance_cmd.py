"""``kmipd instance create|list|show|delete``: KMIP instances (tenants)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from kmipd.cli.api_client import (
    ApiClient,
    connection_options,
    print_fields,
    print_json,
    print_table,
    when,
)
from kmipd.cli.errors import EXIT_USAGE, CommandError


def register(commands: Any) -> None:
    parser = commands.add_parser("instance", help="manage KMIP instances (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()

    create = actions.add_parser("create", parents=[common], help="create an instance")
    create.add_argument("name")
    create.add_argument(
        "--root-key-id", help="bind it to this existing root key (default: make a new one)"
    )
    create.set_defaults(run=run_create)

    actions.add_parser("list", parents=[common], help="list instances").set_defaults(run=run_list)

    show = actions.add_parser("show", parents=[common], help="show one instance")
    show.add_argument("name")
    show.set_defaults(run=run_show)

    delete = actions.add_parser(
        "delete", parents=[common], help="delete an instance and its certificates"
    )
    delete.add_argument("name")
    delete.add_argument(
        "--force", action="store_true", help="also when it has keys: destroys them for good"
    )
    delete.add_argument("--yes", action="store_true", help="confirm --force")
    delete.set_defaults(run=run_delete)


def path(name: str) -> str:
    return f"/admin/v1/instances/{quote(name, safe='')}"


def _show(instance: dict[str, Any]) -> None:
    states = ", ".join(f"{s}: {n}" for s, n in instance["objects_by_state"].items())
    print_fields(
        [
            ("name", instance["name"]),
            ("root key", instance["root_key_id"]),
            ("created", when(instance["created"])),
            ("certificates", instance["certificates"]),
            ("keys", instance["keys"]),
            ("objects by state", states),
        ]
    )


def run_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "root_key_id": args.root_key_id}
    instance = ApiClient.from_args(args).call("POST", "/admin/v1/instances", body)
    if args.json:
        print_json(instance)
    else:
        made = " (new root key)" if instance["root_key_created"] else ""
        print(
            f"created instance {instance['name']} bound to root key {instance['root_key_id']}{made}"
        )
    return 0


def run_list(args: argparse.Namespace) -> int:
    reply = ApiClient.from_args(args).call("GET", "/admin/v1/instances")
    if args.json:
        print_json(reply)
        return 0
    print_table(
        [
            [
                i["name"],
                i["root_key_id"],
                str(i["certificates"]),
                str(i["keys"]),
                when(i["created"]),
            ]
            for i in reply["instances"]
        ],
        ["NAME", "ROOT KEY", "CERTIFICATES", "KEYS", "CREATED"],
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    instance = ApiClient.from_args(args).call("GET", path(args.name))
    if args.json:
        print_json(instance)
    else:
        _show(instance)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if args.force and not args.yes:
        raise CommandError(
            f"--force destroys every key of instance {args.name} for good; add --yes to confirm",
            EXIT_USAGE,
        )
    params = [("force", "true")] if args.force else []
    ApiClient.from_args(args).call("DELETE", path(args.name), params=params)
    if args.json:
        print_json({"deleted": args.name})
    else:
        print(f"deleted instance {args.name}")
    return 0
