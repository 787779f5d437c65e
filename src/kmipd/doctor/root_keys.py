"""Root key providers reachable, and each instance's root key usable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from kmipd import config
from kmipd.doctor.report import Finding, fail, ok, warn
from kmipd.keys.keyring import Keyring, KeyringError
from kmipd.keys.providers.base import KeyState, ProviderError, RootKeyProvider
from kmipd.keys.providers.registry import build_providers
from kmipd.store.records import InstanceRecord

# Seconds one provider call may take before it counts as unreachable.
PROVIDER_TIMEOUT = 15.0

T = TypeVar("T")


async def check(settings: config.Settings, instances: list[InstanceRecord]) -> list[Finding]:
    toml = settings.data_dir / config.CONFIG_FILE
    try:
        keyring = await asyncio.to_thread(
            Keyring.in_data_dir, settings.data_dir, store_url=settings.store.url
        )
    except KeyringError as exc:
        return [fail(f"the built-in keyring cannot be opened: {exc.message}", "see the message")]
    try:
        try:
            providers = build_providers(settings, keyring)
        except config.ConfigError as exc:
            return [fail(f"root key providers: {exc}", f"fix {toml}")]
        try:
            return await _check_providers(providers, instances, toml)
        finally:
            for provider in providers.values():
                with contextlib.suppress(Exception):
                    await provider.close()
    finally:
        keyring.close()


async def _check_providers(
    providers: dict[str, RootKeyProvider], instances: list[InstanceRecord], toml: Path
) -> list[Finding]:
    users: dict[str, list[InstanceRecord]] = {name: [] for name in providers}
    findings: list[Finding] = []
    for record in instances:
        if record.provider not in providers:
            findings.append(
                fail(
                    f"instance {record.name} uses root key provider {record.provider!r}, which "
                    f"{toml} does not configure",
                    f"add a [root_key_providers.{record.provider}] table",
                )
            )
            continue
        users[record.provider].append(record)
    for name, provider in providers.items():
        used_by = users[name]
        names = ", ".join(r.name for r in used_by) or "no instance"
        what = f"root key provider {name!r} (used by {names})"
        try:
            health = await _bounded(provider.health())
            reachable, detail = health.ok, health.detail
        except (ProviderError, TimeoutError) as exc:
            reachable, detail = False, str(exc) or f"no answer within {PROVIDER_TIMEOUT:.0f} s"
        if not reachable:
            fix = (
                f"check [root_key_providers.{name}] in {toml} (url, credentials, CA) and that "
                "the service is up and reachable from this host"
            )
            findings.append(
                fail(f"{what} is unreachable: {detail}", fix)
                if used_by
                else warn(f"{what} is unreachable: {detail}", fix)
            )
            continue
        findings.append(ok(f"{what}: reachable ({detail})"))
        for record in used_by:
            findings.append(await _root_key(provider, record))
    return findings


async def _root_key(provider: RootKeyProvider, record: InstanceRecord) -> Finding:
    what = f"root key {record.root_key_id} of instance {record.name}"
    try:
        status = await _bounded(provider.status(record.root_key_id))
    except (ProviderError, TimeoutError) as exc:
        return fail(
            f"{what}: its state cannot be read from provider {record.provider!r}: {exc}",
            "check the provider's credentials (they need at least Reader)",
        )
    state = status.state
    if state == KeyState.ACTIVE:
        return ok(f"{what}: active, {status.versions} version(s)")
    if state == KeyState.DEACTIVATED:
        return warn(
            f"{what} is past its expiration date: existing keys open, new ones cannot be made",
            f"kmipd instance rotate {record.name}",
        )
    if state == KeyState.DISABLED:
        return fail(
            f"{what} is disabled: the instance's keys cannot be served",
            f"if that was not intended: kmipd instance root-key enable {record.name}",
        )
    if state == KeyState.DELETED:
        return fail(
            f"{what} is deleted: the instance's keys are crypto-shredded",
            f"if that was not intended: kmipd rootkey restore {record.root_key_id} (within "
            "keyprotect.restore_window; another provider: restore it there); otherwise delete "
            f"the instance: kmipd instance delete {record.name} --force --yes",
        )
    return fail(
        f"{what} does not exist in provider {record.provider!r}: the instance's keys cannot "
        "be served",
        f"restore the key in the provider, or check [root_key_providers.{record.provider}] "
        "points at the right one",
    )


async def _bounded(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, PROVIDER_TIMEOUT)
