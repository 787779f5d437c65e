"""``kmipd cert upload|trust-ca|issue|sign-csr|list|delete``: the client certificates an
instance allows (vCenter's "KMS client certificate")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kmipd.cli.api_client import (
    ApiClient,
    connection_options,
    print_json,
    print_table,
    read_input,
    short,
    when,
    write_output,
)
from kmipd.cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, CommandError
from kmipd.cli.instance_cmd import path as instance_path

FINGERPRINT_CHARS = 64
MIN_PREFIX = 8


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "cert", help="manage the client certificates an instance allows (over the REST API)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()

    upload = actions.add_parser(
        "upload", parents=[common], help="allow exactly this client certificate (PEM file)"
    )
    upload.add_argument("instance")
    upload.add_argument("file", type=Path, help="PEM certificate, or - for standard input")
    upload.set_defaults(run=run_upload)

    trust = actions.add_parser(
        "trust-ca", parents=[common], help="allow every certificate a CA issued (vCenter root CA)"
    )
    trust.add_argument("instance")
    trust.add_argument("file", type=Path, help="PEM CA certificate, or - for standard input")
    trust.set_defaults(run=run_trust_ca)

    issue = actions.add_parser(
        "issue",
        parents=[common],
        help="make a certificate + private key for vCenter, allowed on the instance",
    )
    issue.add_argument("instance")
    issue.add_argument("--common-name", required=True, help="its CN, e.g. the vCenter name")
    issue.add_argument("--days", type=int, default=730, help="validity (default 730)")
    issue.add_argument("--cert-out", type=Path, help="write the certificate here")
    issue.add_argument(
        "--key-out", type=Path, help="write the private key here (mode 0600; else printed)"
    )
    issue.set_defaults(run=run_issue)

    sign = actions.add_parser(
        "sign-csr", parents=[common], help="sign vCenter's CSR; the result is allowed"
    )
    sign.add_argument("instance")
    sign.add_argument("file", type=Path, help="PEM CSR, or - for standard input")
    sign.add_argument("--days", type=int, default=730, help="validity (default 730)")
    sign.add_argument("--out", type=Path, help="write the signed certificate here")
    sign.set_defaults(run=run_sign)

    listing = actions.add_parser("list", parents=[common], help="list allowed certificates")
    listing.add_argument("instance")
    listing.set_defaults(run=run_list)

    delete = actions.add_parser(
        "delete", parents=[common], help="stop allowing a certificate (at once)"
    )
    delete.add_argument("instance")
    delete.add_argument("fingerprint", help=f"SHA-256 fingerprint, or its first {MIN_PREFIX}+")
    delete.set_defaults(run=run_delete)


def _base(instance: str) -> str:
    return instance_path(instance) + "/certificates"


def _done(args: argparse.Namespace, verb: str, certificate: dict[str, Any]) -> None:
    if args.json:
        print_json(certificate)
        return
    kind = "CA" if certificate["kind"] == "ca" else "certificate"
    print(
        f"{verb} {kind} {certificate['subject']} on instance {certificate['instance']}\n"
        f"  SHA-256 {certificate['fingerprint']}, valid until {when(certificate['not_after'])}"
    )


def run_upload(args: argparse.Namespace) -> int:
    pem = read_input(args.file)
    certificate = ApiClient.from_args(args).call("POST", _base(args.instance), {"pem": pem})
    _done(args, "allowed", certificate)
    return 0


def run_trust_ca(args: argparse.Namespace) -> int:
    pem = read_input(args.file)
    client = ApiClient.from_args(args)
    certificate = client.call("POST", _base(args.instance) + "/trusted-ca", {"pem": pem})
    _done(args, "trusted", certificate)
    return 0


def _check_new(*paths: Path | None) -> None:
    for target in paths:
        if target is not None and target.exists():
            raise CommandError(f"{target} exists; choose another file", EXIT_USAGE)


def run_issue(args: argparse.Namespace) -> int:
    _check_new(args.cert_out, args.key_out)  # before the key is made: it is shown only once
    client = ApiClient.from_args(args)
    issued = client.call(
        "POST",
        _base(args.instance) + "/issue",
        {"common_name": args.common_name, "days": args.days},
    )
    certificate, key = issued["certificate"], issued["private_key_pem"]
    if args.key_out is not None:
        write_output(args.key_out, key, private=True)
    if args.cert_out is not None:
        write_output(args.cert_out, certificate["pem"])
    if args.json:
        print_json(issued if args.key_out is None else {"certificate": certificate})
        return 0
    _done(args, "issued and allowed", certificate)
    if args.cert_out is None:
        print(certificate["pem"], end="")
    if args.key_out is None:
        print("the private key is shown only now; keep it secret:", file=sys.stderr)
        print(key, end="")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    _check_new(args.out)
    csr = read_input(args.file)
    client = ApiClient.from_args(args)
    certificate = client.call(
        "POST", _base(args.instance) + "/sign", {"csr": csr, "days": args.days}
    )
    if args.out is not None:
        write_output(args.out, certificate["pem"])
    if args.json:
        print_json(certificate)
        return 0
    _done(args, "signed and allowed", certificate)
    if args.out is None:
        print(certificate["pem"], end="")
    return 0


def run_list(args: argparse.Namespace) -> int:
    reply = ApiClient.from_args(args).call("GET", _base(args.instance))
    if args.json:
        print_json(reply)
        return 0
    print_table(
        [
            [
                c["fingerprint"],
                c["kind"],
                c["subject"],
                when(c["not_after"]),
                when(c["last_seen"]),
            ]
            for c in reply["certificates"]
        ],
        ["SHA-256", "KIND", "SUBJECT", "NOT AFTER", "LAST SEEN"],
    )
    return 0


def _resolve(client: ApiClient, instance: str, prefix: str) -> str:
    wanted = prefix.lower().replace(":", "")
    if len(wanted) == FINGERPRINT_CHARS:
        return wanted
    if len(wanted) < MIN_PREFIX:
        raise CommandError(
            f"give the fingerprint, or at least its first {MIN_PREFIX} characters", EXIT_USAGE
        )
    found = [
        c["fingerprint"]
        for c in client.call("GET", _base(instance))["certificates"]
        if c["fingerprint"].startswith(wanted)
    ]
    if not found:
        raise CommandError(
            f"instance {instance} allows no certificate whose fingerprint starts with {prefix}",
            EXIT_NOT_FOUND,
        )
    if len(found) > 1:
        raise CommandError(
            f"{prefix} matches {len(found)} certificates: {', '.join(short(f) for f in found)}; "
            "give more of the fingerprint",
            EXIT_USAGE,
        )
    return str(found[0])


def run_delete(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    fingerprint = _resolve(client, args.instance, args.fingerprint)
    client.call("DELETE", f"{_base(args.instance)}/{fingerprint}")
    if args.json:
        print_json({"deleted": fingerprint, "instance": args.instance})
    else:
        print(f"certificate {fingerprint} is no longer allowed on instance {args.instance}")
    return 0
