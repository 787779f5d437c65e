"""``kmipd key list|show|delete``: the key inventory of an instance."""

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
    short,
    when,
)
from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.cli.instance_cmd import path as instance_path


def register(commands: Any) -> None:
    parser = commands.add_parser("key", help="the key inventory of an instance (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()

    listing = actions.add_parser("list", parents=[common], help="list keys with their tags")
    listing.add_argument("instance")
    listing.add_argument("--state", action="append", help="e.g. Active (repeatable)")
    listing.add_argument("--type", dest="object_type", action="append", help="e.g. SymmetricKey")
    listing.add_argument("--x-name", help="x-Name contains (any case)")
    listing.add_argument("--x-component", help="x-Component contains (any case)")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", parents=[common], help="show one key's metadata")
    show.add_argument("instance")
    show.add_argument("uid")
    show.set_defaults(run=run_show)

    delete = actions.add_parser(
        "delete",
        parents=[common],
        help="destroy one key for good, whatever its state (revoke a disk)",
    )
    delete.add_argument("instance")
    delete.add_argument("uid")
    delete.add_argument("--yes", action="store_true", help="confirm: the key cannot come back")
    delete.set_defaults(run=run_delete)


def _path(instance: str, uid: str | None = None) -> str:
    base = instance_path(instance) + "/keys"
    return base if uid is None else f"{base}/{quote(uid, safe='')}"


def _show(key: dict[str, Any]) -> None:
    pairs: list[tuple[str, Any]] = [
        ("uid", key["uid"]),
        ("type", key["object_type"]),
        ("state", key["state"]),
        ("algorithm", f"{key['algorithm'] or '-'} {key['length'] or ''}".strip()),
        ("name", key["name"]),
        ("created", when(key["created"])),
        ("updated", when(key["updated"])),
        ("last fetched", when(key["last_fetched"])),
        ("last fetched by", key["last_fetched_by"]),
        ("material", "present" if key["has_material"] else "destroyed"),
    ]
    pairs += [(tag, value) for tag, value in key["tags"].items()]
    pairs += [
        (name, ", ".join(str(v) for v in values))
        for name, values in key.get("attributes", {}).items()
        if name not in key["tags"]
    ]
    print_fields(pairs)


def run_list(args: argparse.Namespace) -> int:
    params = [("state", s) for s in args.state or []]
    params += [("object_type", t) for t in args.object_type or []]
    params += [
        ("x_name", args.x_name),
        ("x_component", args.x_component),
        ("limit", args.limit),
        ("offset", args.offset),
    ]
    reply = ApiClient.from_args(args).call("GET", _path(args.instance), params=params)
    if args.json:
        print_json(reply)
        return 0
    print_table(
        [
            [
                k["uid"],
                k["state"],
                k["tags"].get("x-Name", "-"),
                k["tags"].get("x-Component", "-"),
                when(k["created"]),
                when(k["last_fetched"]),
                short(k["last_fetched_by"]),
            ]
            for k in reply["keys"]
        ],
        ["UID", "STATE", "X-NAME", "X-COMPONENT", "CREATED", "LAST FETCHED", "BY"],
    )
    shown = len(reply["keys"])
    if reply["total"] > shown:
        print(
            f"({shown} of {reply['total']} from offset {reply['offset']}; "
            "use --offset and --limit for more)"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    key = ApiClient.from_args(args).call("GET", _path(args.instance, args.uid))
    if args.json:
        print_json(key)
    else:
        _show(key)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CommandError(
            f"this destroys key {args.uid} for good (what it encrypts cannot be opened "
            "again); add --yes to confirm",
            EXIT_USAGE,
        )
    key = ApiClient.from_args(args).call("DELETE", _path(args.instance, args.uid))
    if args.json:
        print_json(key)
    else:
        print(
            f"key {key['uid']} of instance {args.instance} is {key['state']}; its material is gone"
        )
    return 0
