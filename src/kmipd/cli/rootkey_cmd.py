"""``kmipd rootkey create|list|show|versions|rotate|disable|enable|delete|restore``: root keys,
over kmipd's Key Protect-compatible API (``/api/v2/keys``).

Connection settings are those of every administration command (``--data-dir``, ``--url``,
``--api-key``, ``--ca``); the ``Bluemix-Instance`` header is ``--kp-instance``, env
``KMIPD_KP_INSTANCE``, else the GUID in ``DIR/keyprotect-instance-id``. Key Protect's error
envelopes become one-line messages and the usual exit codes. Key material is never printed.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kmipd.cli.api_client import (
    ApiClient,
    connection_options,
    print_fields,
    print_json,
    print_table,
)
from kmipd.cli.errors import EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CommandError

INSTANCE_ID_FILE = "keyprotect-instance-id"
KEY_TYPE = "application/vnd.ibm.kms.key+json"
STATE_NAMES = {0: "PreActive", 1: "Active", 2: "Suspended", 3: "Deactivated", 5: "Destroyed"}
ROOT_KEY_SIZES = (16, 24, 32)
MAX_VERSIONS = 5000


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "rootkey", help="manage root keys (over the Key Protect-compatible API)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()
    common.add_argument(
        "--kp-instance",
        metavar="GUID",
        help="the Bluemix-Instance GUID (env KMIPD_KP_INSTANCE; else DIR/keyprotect-instance-id)",
    )

    create = actions.add_parser("create", parents=[common], help="create or import a root key")
    create.add_argument("name")
    create.add_argument("--description")
    create.add_argument(
        "--import-file",
        type=Path,
        metavar="FILE",
        help="import this material (raw 16, 24 or 32 bytes; - for standard input)",
    )
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", parents=[common], help="list root keys")
    listing.add_argument(
        "--all-states", action="store_true", help="also the deleted (Destroyed) keys"
    )
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", parents=[common], help="show one root key")
    show.add_argument("key", metavar="ID_OR_ALIAS")
    show.set_defaults(run=run_show)

    versions = actions.add_parser("versions", parents=[common], help="a root key's versions")
    versions.add_argument("key", metavar="ID")
    versions.set_defaults(run=run_versions)

    rotate = actions.add_parser("rotate", parents=[common], help="make a new key version")
    rotate.add_argument("key", metavar="ID")
    rotate.add_argument(
        "--import-file",
        type=Path,
        metavar="FILE",
        help="new material for an imported key (raw 16, 24 or 32 bytes; - for standard input)",
    )
    rotate.set_defaults(run=run_rotate)

    disable = actions.add_parser(
        "disable", parents=[common], help="suspend a root key (its KMIP instances stop serving)"
    )
    disable.add_argument("key", metavar="ID")
    disable.set_defaults(run=run_disable)

    enable = actions.add_parser("enable", parents=[common], help="make a suspended key Active")
    enable.add_argument("key", metavar="ID")
    enable.set_defaults(run=run_enable)

    delete = actions.add_parser(
        "delete", parents=[common], help="delete a root key (restorable for the restore window)"
    )
    delete.add_argument("key", metavar="ID")
    delete.add_argument("--yes", action="store_true", help="confirm the delete")
    delete.set_defaults(run=run_delete)

    restore = actions.add_parser("restore", parents=[common], help="restore a deleted root key")
    restore.add_argument("key", metavar="ID")
    restore.set_defaults(run=run_restore)


# -- the Key Protect API ---------------------------------------------------------------------


class KeyProtectClient:
    """``/api/v2`` calls with the ``Bluemix-Instance`` header; Key Protect errors mapped."""

    def __init__(self, api: ApiClient, instance: str) -> None:
        self.api = api
        self.instance = instance

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KeyProtectClient:
        api = ApiClient.from_args(args)
        return cls(api, _instance_id(args))

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: Sequence[tuple[str, Any]] = (),
        *,
        key: str | None = None,
        prefer: str | None = None,
    ) -> Any:
        """The reply's JSON (None for 204); CommandError on any failure."""
        headers = {"Bluemix-Instance": self.instance}
        if prefer:
            headers["Prefer"] = prefer
        return self.api.call(
            method,
            "/api/v2" + path,
            body,
            params,
            headers=headers,
            on_error=lambda status, payload: kp_error(status, payload, key),
        )

    def version_count(self, key_id: str) -> int:
        params = [("allKeyStates", "true"), ("totalCount", "true"), ("limit", 1)]
        reply = self.call("GET", f"/keys/{_q(key_id)}/versions", params=params, key=key_id)
        return int(reply["metadata"].get("totalCount", reply["metadata"]["collectionTotal"]))


def _instance_id(args: argparse.Namespace) -> str:
    value = args.kp_instance or os.environ.get("KMIPD_KP_INSTANCE")
    if not value and args.data_dir is not None:
        path = Path(args.data_dir) / INSTANCE_ID_FILE
        try:
            value = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(
                f"cannot read {path}: {exc}; pass --kp-instance GUID", EXIT_USAGE
            ) from None
    if not value:
        raise CommandError(
            "no Key Protect instance: pass --kp-instance GUID, set KMIPD_KP_INSTANCE, or use "
            f"--data-dir DIR (DIR/{INSTANCE_ID_FILE})",
            EXIT_USAGE,
        )
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise CommandError(
            f"{value!r} is not a GUID; pass the one in DIR/{INSTANCE_ID_FILE} as --kp-instance",
            EXIT_USAGE,
        ) from None


def kp_error(status: int, payload: bytes, key: str | None = None) -> CommandError:
    """A one-line error from Key Protect's envelope, with the exit code of its status."""
    code, message = "", ""
    try:
        resource = json.loads(payload)["resources"][0]
        message = str(resource.get("errorMsg") or "")
        reasons = resource.get("reasons") or []
        if reasons:
            code = str(reasons[0].get("code") or "")
            message = str(reasons[0].get("message") or message)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    message = message or f"the server answered HTTP {status}"
    what = f"root key {key}" if key else "the key"
    if status in (401, 403):
        if "role" in message:
            return CommandError(f"{message}; use an API key with that role", EXIT_AUTH)
        return CommandError(
            f"{message} (pass --api-key, set KMIPD_API_KEY, or use --data-dir DIR)", EXIT_AUTH
        )
    if status == 404:
        if code == "INSTANCE_NOT_FOUND_ERR":
            return CommandError(
                f"{message}; pass the GUID in DIR/{INSTANCE_ID_FILE} as --kp-instance, "
                "or use --data-dir DIR",
                EXIT_NOT_FOUND,
            )
        if code == "KEY_NOT_FOUND_ERR" and key:
            return CommandError(
                f"no root key {key}; see 'kmipd rootkey list --all-states'", EXIT_NOT_FOUND
            )
        return CommandError(message, EXIT_NOT_FOUND)
    hints = {
        "KEY_DELETED_ERR": f"{what} is deleted; 'kmipd rootkey restore' brings it back",
        "KEY_ACTION_INVALID_STATE_ERR": f"{message}; see its state with 'kmipd rootkey show'",
        "REQ_TOO_EARLY_ERR": f"{message} (keyprotect.action_delay seconds after the change)",
        "KEY_PAYLOAD_REQ_ERR": f"{what} was imported: pass --import-file FILE with new material",
        "KEY_ROOT_REQ_ERR": f"{what} is a standard key, not a root key",
    }
    text = hints.get(code, f"{message} ({code})" if code else message)
    return CommandError(text, EXIT_FAILED)


def _q(ref: str) -> str:
    return quote(ref, safe="")


def _first(reply: Any) -> dict[str, Any]:
    try:
        key = reply["resources"][0]
    except (TypeError, KeyError, IndexError):
        raise CommandError("the server's reply holds no key; is it kmipd?") from None
    return dict(key)


def _root(key: dict[str, Any], ref: str) -> dict[str, Any]:
    if key.get("extractable"):
        raise CommandError(f"{ref} is a standard key, not a root key", EXIT_FAILED)
    return key


def _without_material(value: Any) -> Any:
    """The API's JSON with any ``payload`` dropped (root keys have none; be sure)."""
    if isinstance(value, dict):
        return {k: _without_material(v) for k, v in value.items() if k != "payload"}
    if isinstance(value, list):
        return [_without_material(v) for v in value]
    return value


def _read_material(path: Path) -> str:
    """Base64 of a raw 16, 24 or 32-byte key file (``-``: standard input)."""
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except FileNotFoundError:
        raise CommandError(f"{path} does not exist", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    if len(data) not in ROOT_KEY_SIZES:
        raise CommandError(
            f"{path} holds {len(data)} bytes; a root key is raw 16, 24 or 32 bytes "
            "(not hex or base64 text)",
            EXIT_USAGE,
        )
    return base64.b64encode(data).decode("ascii")


# -- output ----------------------------------------------------------------------------------


def state_name(state: Any) -> str:
    return STATE_NAMES.get(state, str(state)) if isinstance(state, int) else "-"


def date(value: str | None) -> str:
    """An RFC 3339 date as the other commands print times."""
    if not value:
        return "-"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _show(key: dict[str, Any], versions: int) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", key["id"]),
        ("name", key["name"]),
        ("aliases", ", ".join(key.get("aliases") or [])),
        ("description", key.get("description")),
        ("state", state_name(key.get("state"))),
        ("imported", "yes" if key.get("imported") else "no"),
        ("versions", versions),
        ("current version", (key.get("keyVersion") or {}).get("id")),
        ("created", date(key.get("creationDate"))),
        ("created by", key.get("createdBy")),
        ("last rotated", date(key.get("lastRotateDate"))),
        ("last updated", date(key.get("lastUpdateDate"))),
    ]
    if key.get("deleted"):
        pairs += [
            ("deleted", date(key.get("deletionDate"))),
            ("deleted by", key.get("deletedBy")),
            ("restorable until", date(key.get("restoreExpirationDate"))),
        ]
    print_fields(pairs)


def _output(args: argparse.Namespace, client: KeyProtectClient, reply: Any, done: str) -> None:
    """Print the key after an action: the API's JSON, or ``done`` and its fields."""
    key = _first(reply)
    if args.json:
        print_json(_without_material(reply))
        return
    print(done)
    _show(key, client.version_count(key["id"]))


def _bound_instances(client: KeyProtectClient, key_id: str) -> list[str]:
    """The KMIP instances bound to ``key_id`` (best effort: [] if they cannot be listed)."""
    try:
        reply = client.api.call("GET", "/admin/v1/instances")
        return sorted(i["name"] for i in reply["instances"] if i["root_key_id"] == key_id)
    except (CommandError, KeyError, TypeError):
        return []


def _stopped(client: KeyProtectClient, key_id: str, undo: str) -> None:
    names = _bound_instances(client, key_id)
    if names:
        print(
            f"KMIP instance(s) {', '.join(names)} stop serving until 'kmipd rootkey {undo} "
            f"{key_id}'",
            file=sys.stderr,
        )


# -- commands --------------------------------------------------------------------------------


def run_create(args: argparse.Namespace) -> int:
    resource: dict[str, Any] = {"type": KEY_TYPE, "name": args.name, "extractable": False}
    if args.description:
        resource["description"] = args.description
    if args.import_file is not None:
        resource["payload"] = _read_material(args.import_file)
    body = {
        "metadata": {"collectionType": KEY_TYPE, "collectionTotal": 1},
        "resources": [resource],
    }
    client = KeyProtectClient.from_args(args)
    reply = client.call("POST", "/keys", body, prefer="return=representation")
    key = _first(reply)
    how = "imported" if key.get("imported") else "created"
    _output(args, client, reply, f"{how} root key {key['id']} ({key['name']})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    client = KeyProtectClient.from_args(args)
    params: list[tuple[str, Any]] = [("extractable", "false"), ("sort", "creationDate")]
    if args.all_states:
        params.append(("state", "0,1,2,3,5"))
    keys: list[dict[str, Any]] = []
    offset, limit = 0, 200
    while True:
        page = client.call("GET", "/keys", params=[*params, ("limit", limit), ("offset", offset)])
        keys += page["resources"]
        if len(page["resources"]) < limit:
            break
        offset += limit
    if args.json:
        total = len(keys)
        collection = {"metadata": {"collectionType": KEY_TYPE, "collectionTotal": total}}
        print_json(_without_material({**collection, "resources": keys}))
        return 0
    print_table(
        [
            [
                k["id"],
                k["name"],
                state_name(k.get("state")),
                str(client.version_count(k["id"])),
                date(k.get("creationDate")),
                date(k.get("lastRotateDate")),
            ]
            for k in keys
        ],
        ["ID", "NAME", "STATE", "VERSIONS", "CREATED", "LAST ROTATED"],
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    client = KeyProtectClient.from_args(args)
    reply = client.call("GET", f"/keys/{_q(args.key)}/metadata", key=args.key)
    key = _root(_first(reply), args.key)
    if args.json:
        print_json(_without_material(reply))
    else:
        _show(key, client.version_count(key["id"]))
    return 0


def run_versions(args: argparse.Namespace) -> int:
    client = KeyProtectClient.from_args(args)
    params = [("allKeyStates", "true"), ("totalCount", "true"), ("limit", MAX_VERSIONS)]
    reply = client.call("GET", f"/keys/{_q(args.key)}/versions", params=params, key=args.key)
    if args.json:
        print_json(reply)
        return 0
    rows = [
        [v["id"], date(v.get("creationDate")), "current" if i == 0 else "retired"]
        for i, v in enumerate(reply["resources"])
    ]
    print_table(rows, ["VERSION", "CREATED", "USE"])
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    body = None
    if args.import_file is not None:
        body = {"payload": _read_material(args.import_file)}
    client = KeyProtectClient.from_args(args)
    path = f"/keys/{_q(args.key)}/actions/rotate"
    reply = client.call("POST", path, body, key=args.key, prefer="return=representation")
    key = _first(reply)
    _output(args, client, reply, f"rotated root key {key['id']}: new version {_version(key)}")
    return 0


def _version(key: dict[str, Any]) -> str:
    return str((key.get("keyVersion") or {}).get("id") or "-")


def _state_action(args: argparse.Namespace, action: str, undo: str | None) -> int:
    client = KeyProtectClient.from_args(args)
    client.call("POST", f"/keys/{_q(args.key)}/actions/{action}", key=args.key)
    reply = client.call("GET", f"/keys/{_q(args.key)}/metadata", key=args.key)
    key = _first(reply)
    _output(args, client, reply, f"root key {key['id']} is {state_name(key.get('state'))}")
    if undo is not None:
        _stopped(client, key["id"], undo)
    return 0


def run_disable(args: argparse.Namespace) -> int:
    return _state_action(args, "disable", "enable")


def run_enable(args: argparse.Namespace) -> int:
    return _state_action(args, "enable", None)


def run_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CommandError(
            f"this deletes root key {args.key}: KMIP instances bound to it stop serving and "
            "nothing it protects can be unwrapped unless it is restored within the restore "
            "window; add --yes to confirm",
            EXIT_USAGE,
        )
    client = KeyProtectClient.from_args(args)
    reply = client.call(
        "DELETE", f"/keys/{_q(args.key)}", key=args.key, prefer="return=representation"
    )
    key = _first(reply)
    until = date(key.get("restoreExpirationDate"))
    _output(args, client, reply, f"deleted root key {key['id']} (restorable until {until})")
    _stopped(client, key["id"], "restore")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    client = KeyProtectClient.from_args(args)
    reply = client.call("POST", f"/keys/{_q(args.key)}/restore", key=args.key)
    key = _first(reply)
    _output(args, client, reply, f"restored root key {key['id']}: it is Active again")
    return 0
