"""``kmipd init --data-dir DIR``: create a working single-node setup."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kmipd import config, initialise
from kmipd.app import StartupError
from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.keys.keyring import KeyringError
from kmipd.store.store import StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser("init", help="create a working single-node setup in a directory")
    parser.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    parser.add_argument("--store", dest="store_url", help="object store URL (default: SQLite)")
    parser.add_argument("--kmip-port", type=int, help="KMIP port (default 5696)")
    parser.add_argument("--https-port", type=int, help="HTTPS port (default 8443)")
    parser.add_argument(
        "--server-name",
        action="append",
        dest="server_names",
        metavar="NAME",
        help=(
            "DNS name or IP address for the server certificate, added to localhost, 127.0.0.1,"
            " ::1 and the host name (repeatable; the first is the certificate's common name)"
        ),
    )
    parser.add_argument(
        "--exist-ok",
        action="store_true",
        help="succeed, changing nothing, when DIR already holds a setup",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if initialise.is_initialised(data_dir):
        if args.exist_ok:
            settings = config.load(data_dir)
            print(
                f"kmipd: {settings.data_dir} is already set up (left unchanged); "
                f"KMIP port {settings.kmip.port}, HTTPS port {settings.https.port}"
            )
            return 0
        raise CommandError(
            f"{data_dir.resolve()} already holds a kmipd setup; it was left "
            "unchanged (use --exist-ok to accept it)"
        )
    try:
        result = initialise.initialise(
            data_dir,
            store_url=args.store_url,
            kmip_port=args.kmip_port,
            https_port=args.https_port,
            server_names=args.server_names,
        )
    except initialise.AlreadyInitialised as exc:
        raise CommandError(str(exc)) from None
    except StartupError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except (StoreError, KeyringError) as exc:
        raise CommandError(f"nothing was set up: {exc}") from None
    s = result.settings
    print(
        f"kmipd: set up {result.data_dir}: CA {s.path(s.tls.ca)}, client certificate "
        f"{result.client_certificate}, Manager API key in {result.api_key_file}; "
        f"KMIP port {s.kmip.port}, HTTPS port {s.https.port}"
    )
    return 0
