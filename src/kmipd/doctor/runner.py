"""Every check, in the order a support engineer would look, against one data directory."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from kmipd import config
from kmipd.doctor import certificates, database, network, permissions, root_keys, system
from kmipd.doctor.report import Finding, fail, warn
from kmipd.store.store import StoreError


async def run(settings: config.Settings) -> list[Finding]:
    now = dt.datetime.now(dt.UTC)
    findings = permissions.check(settings)
    findings += certificates.check_files(settings, now)
    store, found = await database.open_checked(settings)
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
            try:
                records = await store.certificates()
                instances = await store.instances()
            except StoreError as exc:
                findings.append(fail(f"the store cannot be read: {exc}", "check the database"))
            else:
                findings += certificates.check_allowed(records, settings, now)
                findings += await root_keys.check(settings, instances)
        findings += await system.check_clock(store)
    finally:
        if store is not None:
            await store.close()
    findings += system.check_disk(settings, _sqlite_file(settings))
    findings += await asyncio.to_thread(network.check, settings)
    return findings


def _sqlite_file(settings: config.Settings) -> Path | None:
    prefix = "sqlite:///"
    if not settings.store.url.startswith(prefix):
        return None
    path = Path(settings.store.url[len(prefix) :])
    return path if path.is_absolute() else settings.data_dir / path
