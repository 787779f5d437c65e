"""Every check, in the order a support engineer would look, against one data directory.

A check group that breaks (a bug, or something no check foresaw) is reported as a FAIL line
of its own and the others still run: a report with a hole beats no report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from pathlib import Path

from kmipd import config
from kmipd.doctor import certificates, database, network, permissions, root_keys, system
from kmipd.doctor.report import Finding, fail, warn
from kmipd.store.store import Store, StoreError


async def run(settings: config.Settings) -> list[Finding]:
    now = dt.datetime.now(dt.UTC)
    findings = await _guarded("file permissions", asyncio.to_thread(permissions.check, settings))
    findings += await _guarded(
        "CA and server certificate",
        asyncio.to_thread(certificates.check_files, settings, now),
    )
    try:
        store, found = await database.open_checked(settings)
    except Exception as exc:  # as in _guarded
        store, found = None, [_broken("database", exc)]
    findings += found
    try:
        if store is None:
            findings.append(
                warn(
                    "allowed client certificates and root keys: not checked, the database is "
                    "not usable",
                    "fix the database first",
                )
            )
        else:
            findings += await _guarded(
                "allowed client certificates and root keys", _stored(settings, store, now)
            )
        findings += await _guarded("clock", system.check_clock(settings, store))
    finally:
        if store is not None:
            await store.close()
    findings += await _guarded(
        "disk space", asyncio.to_thread(system.check_disk, settings, _sqlite_file(settings))
    )
    findings += await _guarded("ports", asyncio.to_thread(network.check, settings))
    return findings


async def _stored(settings: config.Settings, store: Store, now: dt.datetime) -> list[Finding]:
    try:
        records = await store.certificates()
        instances = await store.instances()
    except StoreError as exc:
        return [fail(f"the store cannot be read: {exc}", "check the database")]
    findings = certificates.check_allowed(records, settings, now)
    return findings + await root_keys.check(settings, instances)


async def _guarded(group: str, checks: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await checks
    except Exception as exc:  # report, never raise, from a health check
        return [_broken(group, exc)]


def _broken(group: str, exc: Exception) -> Finding:
    # The exception's type only: its text could hold what a report must not (a DSN).
    return fail(
        f"{group}: the check itself failed ({type(exc).__name__})",
        "report it to the kmipd maintainers with this output",
    )


def _sqlite_file(settings: config.Settings) -> Path | None:
    prefix = "sqlite:///"
    if not settings.store.url.startswith(prefix):
        return None
    path = Path(settings.store.url[len(prefix) :])
    return path if path.is_absolute() else settings.data_dir / path
