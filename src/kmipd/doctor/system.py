"""The host: free disk space, and the clock (synchronised, and agreeing with the database's).

Certificate validity, token lifetimes and, in a cluster, the re-wrap job's leases and the
change feed all compare times taken on different machines.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import email.utils
import shutil
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from kmipd import config
from kmipd.doctor.report import Finding, fail, ok, warn
from kmipd.store.store import Store, StoreError

MIB = 1024 * 1024
FAIL_FREE_BYTES = 100 * MIB  # SQLite's WAL and a checkpoint need room; writes fail below
WARN_FREE_BYTES = 1024 * MIB
WARN_FREE_FRACTION = 0.05
SKEW_WARN_SECONDS = 2.0
SKEW_FAIL_SECONDS = 30.0
HTTP_TIMEOUT = 5.0
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def check_disk(settings: config.Settings, database: Path | None) -> list[Finding]:
    places = {settings.data_dir: "data directory"}
    if database is not None and database.parent != settings.data_dir:
        places[database.parent] = "database directory"
    findings = []
    for path, what in places.items():
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            findings.append(fail(f"disk space of {what} {path}: {exc.strerror}", "check it"))
            continue
        text = f"{usage.free / MIB:,.0f} MiB free of {usage.total / MIB:,.0f} MiB"
        fix = f"free space on the file system of {path} (or move the {what})"
        if usage.free < FAIL_FREE_BYTES:
            findings.append(fail(f"disk space of {what} {path}: only {text}", fix))
        elif usage.free < WARN_FREE_BYTES or usage.free < usage.total * WARN_FREE_FRACTION:
            findings.append(warn(f"disk space of {what} {path}: {text}", fix))
        else:
            findings.append(ok(f"disk space of {what} {path}: {text}"))
    return findings


async def check_clock(settings: config.Settings, store: Store | None) -> list[Finding]:
    findings = [_synchronised()]
    if store is not None and store.dialect != "sqlite":
        findings.append(await _against_database(store))
    for provider in settings.root_key_providers:
        if provider.kind == "keyprotect" and isinstance(provider.options.get("url"), str):
            findings.append(await _against_provider(settings, provider))
    return findings


def _synchronised() -> Finding:
    """The kernel's own view (adjtimex): is an NTP daemon keeping the clock in step?"""
    state = _adjtimex_state()
    if state is None:
        return ok("clock: synchronisation state not available on this system (not checked)")
    if state == _TIME_ERROR:
        return warn(
            "clock: the kernel reports the system clock as not synchronised (no NTP)",
            "enable time synchronisation: timedatectl set-ntp true, or run chronyd or ntpd",
        )
    return ok("clock: synchronised (NTP)")


def _adjtimex_state() -> int | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = ctypes.create_string_buffer(512)  # larger than struct timex; modes = 0: read only
    state = int(adjtimex(timex))
    return None if state < 0 else state


async def _against_database(store: Store) -> Finding:
    before = time.time()
    try:
        theirs = await store.database.read(_database_time)
    except (StoreError, OSError) as exc:
        return warn(f"clock: the database's time cannot be read: {exc}", "check the database")
    after = time.time()
    return _skew(theirs - (before + after) / 2, "the database server", SKEW_WARN_SECONDS)


async def _against_provider(
    settings: config.Settings, provider: config.ProviderSettings
) -> Finding:
    """A remote Key Protect's HTTP Date header (whole seconds): its IAM tokens and the
    certificates it presents are judged by the two clocks."""
    url = str(provider.options["url"])
    where = f"root key provider {provider.name!r} ({url})"
    verify: ssl.SSLContext | bool = provider.options.get("verify", True) is not False
    if verify and isinstance(provider.options.get("ca"), str):
        verify = ssl.create_default_context(cafile=str(settings.path(provider.options["ca"])))
    before = time.time()
    try:
        async with httpx.AsyncClient(verify=verify, timeout=HTTP_TIMEOUT) as http:
            response = await http.head(url)
        theirs = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
    except (httpx.HTTPError, OSError, KeyError, ValueError, TypeError) as exc:
        return warn(
            f"clock: not compared with {where}: no usable Date header ({type(exc).__name__})",
            "see the root key provider check",
        )
    after = time.time()
    # The header has whole seconds: up to one second of the difference is its rounding.
    return _skew(theirs + 0.5 - (before + after) / 2, where, SKEW_WARN_SECONDS + 1)


def _skew(skew: float, other: str, warn_at: float) -> Finding:
    what = f"clock: {abs(skew):.1f} s {'behind' if skew > 0 else 'ahead of'} {other}"
    fix = "synchronise both machines' clocks with NTP (timedatectl set-ntp true, chronyd)"
    if abs(skew) >= SKEW_FAIL_SECONDS:
        return fail(what, fix)
    if abs(skew) >= warn_at:
        return warn(what, fix)
    return ok(what)


def _database_time(conn: Any) -> float:
    return float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
