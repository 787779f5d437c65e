"""Root key provider contract plumbing: one fixture per provider, and a terminal summary of
which providers ran (and how their contract tests ended).

To add a provider, write a ``provider_<name>`` fixture that yields a ``RootKeyProvider`` and
add ``<name>`` to ``PROVIDERS``. ``keyprotect-remote`` is the Key Protect provider talking to
a second kmipd process (its Key Protect-compatible API) with a Manager API key.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.keys.providers.base import RootKeyProvider
from kmipd.keys.providers.builtin import KeyringProvider
from tests.support import softhsm
from tests.support.keyprotect import instance_id, keyprotect_server, new_api_key

PROVIDERS = ("keyring", "softhsm2-gcm", "softhsm2-kwp", "keyprotect-remote")

TALLY = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture
def provider_keyring(tmp_path: Path) -> Iterator[RootKeyProvider]:
    rules = KeyRules(action_delay=0.0, rotation_interval=0.0)
    keyring = Keyring(tmp_path / "keyring" / "root-keys.json", master=os.urandom(32), rules=rules)
    yield KeyringProvider(keyring)


def _softhsm(mechanism: str) -> Iterator[RootKeyProvider]:
    token = softhsm.token()  # skips (outside CI) before python-pkcs11 is imported
    from kmipd.keys.providers.pkcs11 import Pkcs11Config, Pkcs11Provider

    config = Pkcs11Config(
        library=token.module,
        token_label=token.label,
        pin=token.user_pin,
        mechanism=mechanism,  # type: ignore[arg-type]
    )
    provider = Pkcs11Provider(config)
    yield provider
    asyncio.run(provider.close())


@pytest.fixture
def provider_softhsm2_gcm() -> Iterator[RootKeyProvider]:
    yield from _softhsm("aes-gcm")


@pytest.fixture
def provider_softhsm2_kwp() -> Iterator[RootKeyProvider]:
    yield from _softhsm("aes-kwp")


@pytest.fixture(scope="session")
def remote_keyprotect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A second kmipd serving the Key Protect-compatible API: the provider's settings."""
    with keyprotect_server(tmp_path_factory.mktemp("remote-kp")) as server:
        yield {
            "url": server.https_url,
            "instance_id": instance_id(server),
            "api_key": new_api_key(server, "Manager"),
            "ca": str(server.ca),
        }


@pytest.fixture
def provider_keyprotect_remote(remote_keyprotect: dict[str, str]) -> Iterator[RootKeyProvider]:
    from kmipd.keys.providers.keyprotect import KeyProtectConfig, KeyProtectProvider

    provider = KeyProtectProvider(KeyProtectConfig(**remote_keyprotect))
    yield provider
    asyncio.run(provider.close())


@pytest.fixture(params=PROVIDERS)
def provider_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def provider(request: pytest.FixtureRequest, provider_name: str) -> RootKeyProvider:
    value = request.getfixturevalue("provider_" + provider_name.replace("-", "_"))
    assert isinstance(value, RootKeyProvider)
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("provider_name") if callspec is not None else None
    if name is not None and (report.when == "call" or report.outcome != "passed"):
        tally = item.config.stash.setdefault(TALLY, {})
        tally.setdefault(name, Counter())[report.outcome] += 1
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    tally = config.stash.get(TALLY, None)
    if not tally:
        return
    terminalreporter.section("Root key provider contract")
    for name in PROVIDERS:
        counts = tally.get(name)
        if counts is None:
            terminalreporter.write_line(f"{name}: not run")
            continue
        ran = "ran" if counts["passed"] or counts["failed"] else "did not run"
        detail = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped") if counts[k])
        terminalreporter.write_line(f"{name}: {ran} ({detail})")
