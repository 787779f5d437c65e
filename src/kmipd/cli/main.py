"""Entry point of the ``kmipd`` command: one sub-command module per job.

Exit codes: 0 success, 1 the work failed (or the server refused it), 2 bad usage or bad
input, 3 not found, 4 not authenticated or not allowed (administration commands).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kmipd import __version__
from kmipd.cli import (
    apikey_cmd,
    audit_cmd,
    backup_cmd,
    ca_cmd,
    cert_cmd,
    doctor_cmd,
    init_cmd,
    instance_cmd,
    key_cmd,
    migrate_cmd,
    rootkey_cmd,
    serve_cmd,
    ttlv_cmd,
)
from kmipd.cli.errors import EXIT_OK, CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmipd",
        description="KMIP key management server for VMware vSphere and vSAN encryption.",
    )
    parser.add_argument("--version", action="version", version=f"kmipd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init_cmd.register(commands)
    serve_cmd.register(commands)
    migrate_cmd.register(commands)
    doctor_cmd.register(commands)
    backup_cmd.register(commands)
    ttlv_cmd.register(commands)
    for module in (instance_cmd, cert_cmd, key_cmd, apikey_cmd, audit_cmd, ca_cmd, rootkey_cmd):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or EXIT_OK)
    except CommandError as exc:
        print(f"kmipd {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
