"""File permissions: the data directory, every private key and secret file, kmipd.toml.

The TLS files named by ``[tls]`` and the keys in ``DIR/pki/`` are checked by the same code
``kmipd serve`` runs at start (:mod:`kmipd.startup_checks`), which also finds missing files
and a certificate that does not match its key; this adds the files kmipd reads later or never
(client keys handed to vCenter, the keyring, API keys).
"""

from __future__ import annotations

import stat
from pathlib import Path

from kmipd import config, startup_checks
from kmipd.api.auth import SIGNING_KEY_FILE
from kmipd.doctor.report import Finding, Status, fail, ok, warn
from kmipd.initialise import API_KEY_FILE
from kmipd.keys.keyring import KEYRING_DIR
from kmipd.keys.keyring_storage import KEYRING_FILE
from kmipd.keys.master_key import MASTER_KEY_FILE

# Options of a [root_key_providers.*] table that hold a credential when set inline.
_SECRET_OPTIONS = ("api_key", "pin")


def check(settings: config.Settings) -> list[Finding]:
    findings = [_data_dir(settings.data_dir)]
    for problem in startup_checks.problems(settings):
        what, _, fix = problem.rpartition(": ")
        findings.append(fail(what, fix) if what else fail(problem, "see the message"))
    secrets = _secret_files(settings)
    findings.extend(f for path in secrets if (f := _private_mode(path)) is not None)
    findings.extend(_config_file(settings))
    if not any(f.status == Status.FAIL for f in findings[1:]):
        findings.append(
            ok(f"file permissions: {len(secrets)} secret files are readable by their owner only")
        )
    return findings


def _data_dir(directory: Path) -> Finding:
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError as exc:
        return fail(f"data directory {directory}: {exc.strerror}", "restore it or pass --data-dir")
    if mode & 0o077:
        return warn(
            f"data directory {directory} is open to group or others (mode {mode:o})",
            f"chmod 700 {directory}",
        )
    return ok(f"data directory {directory} (mode {mode:o})")


def _secret_files(settings: config.Settings) -> list[Path]:
    """Secret files the start-up checks do not cover, that exist."""
    data_dir = settings.data_dir
    candidates = [
        data_dir / KEYRING_DIR / KEYRING_FILE,
        data_dir / KEYRING_DIR / MASTER_KEY_FILE,
        data_dir / API_KEY_FILE,
        data_dir / SIGNING_KEY_FILE,
    ]
    clients = data_dir / "clients"
    if clients.is_dir():
        candidates.extend(sorted(clients.glob("*/*-key.pem")))
    return [path for path in candidates if path.is_file()]


def _private_mode(path: Path) -> Finding | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return fail(
            f"{path} holds a secret and is readable by group or others (mode {mode:o})",
            f"chmod 600 {path}",
        )
    return None


def _config_file(settings: config.Settings) -> list[Finding]:
    """kmipd.toml may hold a provider's API key or PIN inline: then it is a secret file."""
    inline = [
        f"root_key_providers.{p.name}.{option}"
        for p in settings.root_key_providers
        for option in _SECRET_OPTIONS
        if p.options.get(option)
    ]
    path = settings.data_dir / config.CONFIG_FILE
    if not inline:
        return []
    finding = _private_mode(path)
    if finding is None:
        return []
    return [
        fail(
            f"{path} holds {', '.join(inline)} and is readable by group or others",
            f"chmod 600 {path} (or move the secret to the *_env setting's variable)",
        )
    ]
