"""``kmipd doctor --data-dir DIR``: check a setup and say what is wrong and how to fix it.

One line per check: ``OK``, ``WARN`` or ``FAIL``, what was checked, and for a problem the fix.
Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when kmipd.toml
cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.doctor import runner
from kmipd.doctor.report import Status


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check a setup (certificates, clock, ports, root keys, database, disk, file "
        "permissions, a KMIP conversation) and say how to fix what is wrong",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.data_dir)
    except config.ConfigError as exc:
        raise CommandError(f"{exc} (no other check was run)", EXIT_USAGE) from None
    # Libraries' own log lines (a database driver's retries) would interleave with the
    # report, which already says what failed.
    if not logging.getLogger().handlers:
        logging.getLogger().addHandler(logging.NullHandler())
    findings = asyncio.run(runner.run(settings))
    for finding in findings:
        print(finding.line(), flush=True)
    failed = sum(f.status == Status.FAIL for f in findings)
    warned = sum(f.status == Status.WARN for f in findings)
    print(f"{len(findings)} checks: {failed} failed, {warned} warnings", flush=True)
    return 1 if failed else 0
