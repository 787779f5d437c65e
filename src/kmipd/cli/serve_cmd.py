"""``kmipd serve --data-dir DIR``: serve KMIP (and later HTTPS) from a data directory."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from kmipd import app, config, logging_setup
from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.keys.keyring import KeyringError
from kmipd.store.store import StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="serve KMIP from a data directory")
    parser.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    parser.add_argument("--kmip-port", type=int, help="override kmip.port")
    parser.add_argument("--https-port", type=int, help="override https.port")
    parser.add_argument(
        "--log-level", choices=logging_setup.LEVELS, help="override log.level of kmipd.toml"
    )
    parser.add_argument(
        "--log-format", choices=logging_setup.FORMATS, help="override log.format of kmipd.toml"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.data_dir)
        logging_setup.configure(
            settings.log, logging_setup.Overrides(args.log_level, args.log_format)
        )
    except config.ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.kmip_port is not None:
        settings = dataclasses.replace(
            settings, kmip=dataclasses.replace(settings.kmip, port=args.kmip_port)
        )
    if args.https_port is not None:
        settings = dataclasses.replace(
            settings, https=dataclasses.replace(settings.https, port=args.https_port)
        )
    try:
        asyncio.run(app.serve(settings))
    except (app.StartupError, StoreError, KeyringError) as exc:
        raise CommandError(f"cannot start: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot start: {exc.strerror or exc}") from None
    return 0
