"""``kmipd ca download``: kmipd's CA certificate, to make vCenter trust the KMS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd.cli.api_client import ApiClient, connection_options, print_json, write_output
from kmipd.transport.tls import fingerprint


def register(commands: Any) -> None:
    parser = commands.add_parser("ca", help="kmipd's CA certificate (over the REST API)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    download = actions.add_parser(
        "download", parents=[connection_options()], help="print or save the CA certificate"
    )
    download.add_argument("--out", type=Path, help="write it to this file")
    download.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server (first contact); compare the printed fingerprint",
    )
    download.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    pem = client.call("GET", "/admin/v1/ca.pem", raw=True)
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    sha256 = fingerprint(certificate.public_bytes(serialization.Encoding.DER))
    if args.out is not None:
        write_output(args.out, pem)
    if args.json:
        print_json({"pem": pem, "fingerprint": sha256})
        return 0
    if args.out is None:
        print(pem, end="")
    print(f"kmipd CA {certificate.subject.rfc4514_string()}, SHA-256 {sha256}", file=sys.stderr)
    return 0
