"""``kmipd instance create|list|show|delete|rotate|rewrap|retire|schedule``: KMIP instances
(tenants), the rotation of their keys (now or on a schedule) and the re-wrap job."""

from __future__ import annotations

import argparse
import sys
import time
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
    create.add_argument(
        "--provider",
        help="the root key provider, a [root_key_providers.NAME] of kmipd.toml "
        "(default: builtin, the built-in keyring)",
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

    rotate = actions.add_parser(
        "rotate", parents=[common], help="rotate the instance's root key and wrapping key"
    )
    rotate.add_argument("name")
    rotate.set_defaults(run=run_rotate)

    rewrap = actions.add_parser(
        "rewrap",
        parents=[common],
        help="start or resume the re-wrap job (every object to the newest wrapping key)",
    )
    rewrap.add_argument("name")
    rewrap.add_argument("--wait", action="store_true", help="show progress until it is done")
    rewrap.add_argument(
        "--status", action="store_true", help="only show the job's progress; start nothing"
    )
    rewrap.set_defaults(run=run_rewrap)

    retire = actions.add_parser(
        "retire", parents=[common], help="delete a wrapping key version no object uses"
    )
    retire.add_argument("name")
    retire.add_argument("version", type=int)
    retire.set_defaults(run=run_retire)

    root_key = actions.add_parser(
        "root-key",
        parents=[common],
        help="disable, enable or delete (crypto-shred) the instance's root key, in whatever "
        "provider holds it",
    )
    root_key.add_argument("action", choices=("disable", "enable", "delete"))
    root_key.add_argument("name")
    root_key.add_argument("--yes", action="store_true", help="confirm delete")
    root_key.set_defaults(run=run_root_key)

    schedule = actions.add_parser(
        "schedule",
        parents=[common],
        help="rotate the instance's keys (and re-wrap its objects) every N days, or never",
    )
    schedule.add_argument("name")
    every = schedule.add_mutually_exclusive_group(required=True)
    every.add_argument(
        "--every-days", type=float, metavar="N", help="rotate every N days (a fraction works)"
    )
    every.add_argument("--off", action="store_true", help="turn the schedule off")
    schedule.set_defaults(run=run_schedule)


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
            ("rotation", _schedule(instance)),
        ]
    )


def _schedule(instance: dict[str, Any]) -> str:
    days = instance.get("rotation_days")
    text = f"every {days:g} days" if days is not None else "not scheduled"
    if instance.get("last_rotated") is not None:
        text += f" (last {when(int(instance['last_rotated']))})"
    return text


def run_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "root_key_id": args.root_key_id}
    if args.provider is not None:
        body["provider"] = args.provider
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


def run_rotate(args: argparse.Namespace) -> int:
    reply = ApiClient.from_args(args).call("POST", path(args.name) + "/rotate")
    if args.json:
        print_json(reply)
    else:
        print(
            f"rotated instance {reply['instance']}: root key {reply['root_key_id']} version "
            f"{reply['root_key_version']}, wrapping key version {reply['wrapping_key_version']}; "
            "the re-wrap job has started"
        )
    return 0


def progress_line(job: dict[str, Any], width: int = 30) -> str:
    done = int(width * job["percent"] / 100)
    bar = "#" * done + "." * (width - done)
    return (
        f"[{bar}] {job['percent']:6.2f}%  {job['objects_on_target']} on version "
        f"{job['target_version']}, {job['objects_remaining']} remaining  ({job['state']})"
    )


def run_rewrap(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    rewrap = path(args.name) + "/rewrap"
    job = client.call("GET" if args.status else "POST", rewrap)
    interactive = sys.stdout.isatty() and not args.json
    while args.wait and job["state"] == "running":
        if interactive:
            print("\r" + progress_line(job), end="", flush=True)
        time.sleep(0.5)
        job = client.call("GET", rewrap)
    if interactive and args.wait:
        print("\r", end="")
    if args.json:
        print_json(job)
        return 0
    print(progress_line(job))
    versions = ", ".join(
        f"v{k['version']}: {k['objects']}" + (" (current)" if k["current"] else "")
        for k in job["wrapping_keys"]
    )
    print(f"wrapping keys (objects): {versions}")
    if job.get("error"):
        print(f"error: {job['error']}")
    return 0


def run_retire(args: argparse.Namespace) -> int:
    ApiClient.from_args(args).call("DELETE", f"{path(args.name)}/wrapping-keys/{args.version}")
    if args.json:
        print_json({"retired": args.version, "instance": args.name})
    else:
        print(f"retired wrapping key version {args.version} of instance {args.name}")
    return 0


def run_root_key(args: argparse.Namespace) -> int:
    if args.action == "delete" and not args.yes:
        raise CommandError(
            f"deleting the root key of instance {args.name} makes every one of its keys "
            "unusable (crypto-shredding); add --yes to confirm",
            EXIT_USAGE,
        )
    client = ApiClient.from_args(args)
    if args.action == "delete":
        reply = client.call("DELETE", f"{path(args.name)}/root-key")
    else:
        reply = client.call("POST", f"{path(args.name)}/root-key/{args.action}")
    if args.json:
        print_json(reply)
    else:
        print(
            f"instance {reply['instance']}: root key {reply['root_key_id']} in provider "
            f"{reply['provider']} is now {reply['state']}"
        )
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    if args.every_days is not None and not args.every_days > 0:
        raise CommandError("--every-days must be more than 0", EXIT_USAGE)
    days = None if args.off else args.every_days
    instance = ApiClient.from_args(args).call("PATCH", path(args.name), {"rotation_days": days})
    if args.json:
        print_json(instance)
    elif days is None:
        print(f"instance {args.name}: scheduled rotation off")
    else:
        print(f"instance {args.name}: keys rotated every {days:g} days")
    return 0
