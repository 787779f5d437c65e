"""Misconfiguration fails closed: ``kmipd serve`` refuses to start and says what to fix.

Each case starts ``python -m kmipd serve --data-dir DIR`` on a copy of one ``kmipd init``
data directory with one thing broken, and expects, within START_BOUND seconds: a non-zero
exit, a message on stderr that names the setting or file and the fix, no Python traceback,
and nothing listening on the ports it was given.

There is no setting that turns TLS off, and attempts to write one are refused (an unknown
setting name) or caught by the start-up checks (``kmipd.startup_checks``, an empty TLS file).
The same unreachable-provider refusal, against a real remote Key Protect that is stopped, is
in test_provider_outage.py; the keyring, master key and API signing key mode checks have unit
tests in tests/unit/keys/ and tests/unit/api/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kmipd import config
from kmipd.app import open_store
from kmipd.store.records import InstanceRecord
from tests.support import kmip
from tests.support.server import KmipdServer, free_port, init_server

START_BOUND = 20.0  # seconds for `kmipd serve` to give up (it takes ~1.5 s here)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised data directory, copied (modes kept) for each case."""
    return init_server(Path(tmp_path_factory.mktemp("misconfig")) / "data").data_dir


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def refused_start(data_dir: Path, *expected: str) -> str:
    """Run `kmipd serve`; it must fail within START_BOUND with ``expected`` on stderr."""
    ports = free_port(), free_port()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kmipd",
            "serve",
            "--data-dir",
            str(data_dir),
            "--kmip-port",
            str(ports[0]),
            "--https-port",
            str(ports[1]),
        ],
        capture_output=True,
        timeout=START_BOUND,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    elapsed = time.monotonic() - started
    stderr = result.stderr.decode(errors="replace")
    output = stderr + result.stdout.decode(errors="replace")
    print(f"[measure] refused in {elapsed:.2f} s: {stderr.strip()}")
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "cannot start" in stderr or "kmipd serve:" in stderr, output
    for text in expected:
        assert text in stderr, f"{text!r} not in {stderr!r}"
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is served"
    return stderr


def set_toml(data_dir: Path, edit: Callable[[str], str]) -> None:
    path = data_dir / config.CONFIG_FILE
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")


def set_tls(data_dir: Path, **values: str) -> None:
    settings = config.load(data_dir)
    settings = dataclasses.replace(settings, tls=dataclasses.replace(settings.tls, **values))
    (data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")


def test_the_template_starts(template: Path, tmp_path: Path) -> None:
    """The control: an unbroken copy serves (so each refusal below is its one defect)."""
    copy = tmp_path / "data"
    shutil.copytree(template, copy, symlinks=True)
    server = KmipdServer(copy, free_port(), free_port())
    server.start()
    try:
        kmip.ok(server.call(kmip.discover_versions()))
    finally:
        server.stop()


# -- the CA and the server's TLS files ---------------------------------------------------------


def test_missing_ca(data_dir: Path) -> None:
    ca = data_dir / "pki" / "ca.pem"
    ca.unlink()
    refused_start(data_dir, "tls.ca", str(ca), "is missing")


def test_ca_file_without_a_certificate(data_dir: Path) -> None:
    ca = data_dir / "pki" / "ca.pem"
    ca.write_text("not a certificate\n")
    refused_start(data_dir, "tls.ca", str(ca), "holds no PEM certificate")


def test_missing_server_certificate(data_dir: Path) -> None:
    certificate = data_dir / "pki" / "server.pem"
    certificate.unlink()
    refused_start(data_dir, "tls.certificate", str(certificate), "is missing")


def test_missing_server_private_key(data_dir: Path) -> None:
    key = data_dir / "pki" / "server-key.pem"
    key.unlink()
    refused_start(data_dir, "tls.private_key", str(key), "is missing")


def test_server_certificate_and_key_do_not_match(data_dir: Path) -> None:
    # The CA's key is a valid private key, just not the server certificate's.
    set_tls(data_dir, private_key="pki/ca-key.pem")
    refused_start(data_dir, "do not match", "tls.certificate", "tls.private_key")


# -- modes of secret files -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_server_private_key_readable_by_others(data_dir: Path, mode: int) -> None:
    key = data_dir / "pki" / "server-key.pem"
    key.chmod(mode)
    refused_start(data_dir, str(key), f"mode {mode:o}", f"chmod 600 {key}")


def test_ca_private_key_readable_by_others(data_dir: Path) -> None:
    key = data_dir / "pki" / "ca-key.pem"
    key.chmod(0o644)
    refused_start(data_dir, str(key), f"chmod 600 {key}")


def test_keyring_file_readable_by_others(data_dir: Path) -> None:
    keyring = data_dir / "keyring" / "root-keys.json"
    keyring.chmod(0o644)
    refused_start(data_dir, str(keyring), f"chmod 600 {keyring}")


def test_keyring_master_key_readable_by_others(data_dir: Path) -> None:
    master = data_dir / "keyring" / "master.key"
    master.chmod(0o644)
    refused_start(data_dir, str(master), "600")


# -- root key providers ----------------------------------------------------------------------


def test_unreachable_root_key_provider(data_dir: Path) -> None:
    """An instance's provider (a Key Protect on 127.0.0.1:1, where nothing listens)."""
    settings = config.load(data_dir)
    provider = config.ProviderSettings(
        "x",
        "keyprotect",
        {
            "url": "https://127.0.0.1:1",
            "instance_id": "00000000-0000-0000-0000-000000000000",
            "api_key": "unused",
            "timeout": 2.0,
        },
    )
    settings = dataclasses.replace(settings, root_key_providers=(provider,))
    (data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")

    async def add(store: object) -> None:
        record = InstanceRecord(
            "remote-tenant", "11111111-2222-3333-4444-555555555555", int(time.time()), "x"
        )
        await store.add_instance(record)  # type: ignore[attr-defined]

    KmipdServer(data_dir, 0).with_store(add)
    refused_start(data_dir, "root key provider 'x'", "remote-tenant", "[root_key_providers.x]")


def test_provider_used_by_an_instance_but_not_configured(data_dir: Path) -> None:
    async def add(store: object) -> None:
        record = InstanceRecord(
            "orphan-tenant", "11111111-2222-3333-4444-555555555555", int(time.time()), "gone"
        )
        await store.add_instance(record)  # type: ignore[attr-defined]

    KmipdServer(data_dir, 0).with_store(add)
    refused_start(data_dir, "'gone'", "[root_key_providers.gone]")


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "named"),
    [
        ("kmip", "max_conections = 10", "kmip.max_conections"),
        ("https", "bind = '0.0.0.0'", "https.bind"),
        ("store", "synchronous = 'OFF'", "store.synchronous"),
    ],
)
def test_unknown_setting_name(data_dir: Path, section: str, line: str, named: str) -> None:
    set_toml(data_dir, lambda text: text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))
    refused_start(data_dir, "unknown setting", named)


def test_unknown_section(data_dir: Path) -> None:
    set_toml(data_dir, lambda text: text + "\n[tsl]\nca = 'pki/ca.pem'\n")
    refused_start(data_dir, "unknown section", "tsl")


# -- attempts to turn TLS off: there is no such setting ----------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "named"),
    [
        ("kmip", "tls = false", "kmip.tls"),
        ("https", "tls = false", "https.tls"),
        ("tls", "enabled = false", "tls.enabled"),
        ("kmip", "plaintext = true", "kmip.plaintext"),
        ("https", "insecure = true", "https.insecure"),
    ],
)
def test_tls_cannot_be_switched_off(data_dir: Path, section: str, line: str, named: str) -> None:
    set_toml(data_dir, lambda text: text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))
    refused_start(data_dir, "unknown setting", named)


@pytest.mark.parametrize("name", ["certificate", "private_key", "ca"])
def test_empty_tls_file_setting_does_not_turn_tls_off(data_dir: Path, name: str) -> None:
    set_tls(data_dir, **{name: ""})
    refused_start(data_dir, f"tls.{name} is empty", "TLS only", "no setting that turns TLS off")


def test_a_start_up_check_failure_leaves_nothing_behind(data_dir: Path) -> None:
    """A refused start makes no database changes a later, fixed start would see."""
    key = data_dir / "pki" / "server-key.pem"
    key.chmod(0o644)
    before = asyncio.run(_instances(data_dir))
    refused_start(data_dir, f"chmod 600 {key}")
    key.chmod(0o600)
    assert asyncio.run(_instances(data_dir)) == before
    server = KmipdServer(data_dir, free_port(), free_port())
    server.start()
    try:
        kmip.ok(server.call(kmip.discover_versions()))
    finally:
        server.stop()


async def _instances(data_dir: Path) -> list[str]:
    store = open_store(config.load(data_dir))
    await store.open()
    try:
        return sorted(record.name for record in await store.instances())
    finally:
        await store.close()
