"""Checks ``kmipd serve`` runs before it serves: each problem found says what to fix.

They cover what is not checked where the file is used: the TLS files named by ``[tls]``
(set, present, parseable, the server certificate matching its private key) and the modes of
the private keys (``tls.private_key``, ``tls.ca_key`` and every private key under
``DIR/pki/``). The keyring file, the keyring master key and the API token signing key check
their own modes when they are opened; unknown settings are refused by :mod:`kmipd.config`;
root key providers are checked by ``App.check_providers``.

kmipd has no plaintext mode: KMIP and HTTPS are always served over TLS, so an empty TLS file
setting is an error, not a way to turn TLS off.
"""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import config

# The [tls] settings kmipd cannot serve without.
_REQUIRED = {
    "ca": "the CA that issues the client certificates",
    "certificate": "the server certificate",
    "private_key": "the server certificate's private key",
}
_PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"


def problems(settings: config.Settings) -> list[str]:
    """What stops kmipd from serving safely with ``settings``; empty when nothing does."""
    found: list[str] = []
    toml = settings.data_dir / config.CONFIG_FILE
    tls = settings.tls
    files: dict[str, Path] = {}
    for name, what in _REQUIRED.items():
        value = getattr(tls, name)
        if not value.strip():
            found.append(
                f"tls.{name} is empty in {toml}: kmipd serves KMIP and HTTPS over TLS only "
                f"(there is no setting that turns TLS off); set tls.{name} to the PEM file of "
                f"{what} (default {getattr(config.TlsSettings(), name)!r})"
            )
            continue
        path = settings.path(value)
        problem = _file_problem(path)
        if problem is not None:
            found.append(
                f"{what} (tls.{name}) {path} {problem}: restore it, or set tls.{name} in {toml} "
                "to the right file"
            )
            continue
        files[name] = path
    private_keys = {files["private_key"]} if "private_key" in files else set()
    if tls.ca_key.strip():
        ca_key = settings.path(tls.ca_key)
        if ca_key.is_file():  # optional: the CA key may be kept offline
            private_keys.add(ca_key)
    private_keys.update(_private_keys_in(settings.data_dir / "pki"))
    for path in sorted(private_keys):
        found.extend(_mode_problems(path))
    if "ca" in files:
        found.extend(_ca_problems(files["ca"]))
    if "certificate" in files and "private_key" in files:
        found.extend(_pair_problems(files["certificate"], files["private_key"]))
    return found


def _file_problem(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "is not a file"
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def _private_keys_in(directory: Path) -> set[Path]:
    keys: set[Path] = set()
    try:
        entries = list(directory.iterdir())
    except OSError:
        return keys
    for path in entries:
        try:
            if not path.is_file():
                continue
            if path.name.endswith("-key.pem") or _PRIVATE_KEY_MARKER in path.read_bytes():
                keys.add(path.resolve())
        except OSError:
            continue  # an unreadable file: not one kmipd reads
    return keys


def _mode_problems(path: Path) -> list[str]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return []
    if mode & 0o077:
        return [
            f"{path} holds a private key and is accessible by group or others (mode "
            f"{mode:o}); it must be 0600: run 'chmod 600 {path}'"
        ]
    return []


def _ca_problems(path: Path) -> list[str]:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        certificates = []
    if not certificates:
        return [
            f"the CA file (tls.ca) {path} holds no PEM certificate: restore the kmipd CA "
            "certificate there"
        ]
    return []


def _pair_problems(certificate_path: Path, key_path: Path) -> list[str]:
    try:
        certificate = x509.load_pem_x509_certificates(certificate_path.read_bytes())[0]
    except (OSError, ValueError):
        return [
            f"the server certificate (tls.certificate) {certificate_path} holds no PEM "
            "certificate: restore it"
        ]
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except TypeError:
        return [
            f"the server private key (tls.private_key) {key_path} is encrypted: kmipd reads "
            "it without a passphrase; store it unencrypted with mode 0600"
        ]
    except (OSError, ValueError):
        return [
            f"the server private key (tls.private_key) {key_path} holds no PEM private key: "
            "restore it"
        ]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != certificate.public_key().public_bytes(der, spki):
        return [
            f"the server certificate {certificate_path} and private key {key_path} do not "
            "match (the key is not the certificate's): set tls.certificate and "
            "tls.private_key to a certificate and its own key"
        ]
    return []
