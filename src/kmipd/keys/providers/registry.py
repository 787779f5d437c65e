"""Named root key providers from the configuration (``[root_key_providers.<name>]``).

``builtin`` is always the built-in keyring. Other names come from ``kmipd.toml``::

    [root_key_providers.hsm]
    kind = "pkcs11"
    library = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "kmipd"
    pin_env = "KMIPD_PKCS11_PIN"          # or pin = "..."
    mechanism = "auto"                    # "aes-gcm" | "aes-kwp"

    [root_key_providers.kp]
    kind = "keyprotect"
    url = "https://us-south.kms.cloud.ibm.com"
    instance_id = "GUID of the Key Protect instance"
    api_key_env = "KMIPD_KEYPROTECT_API_KEY"   # or api_key = "..."
    iam_url = "https://iam.cloud.ibm.com"     # default: url
    ca = "pki/kp-ca.pem"                      # default: the system's CAs
    timeout = 10.0

A table with ``kind = "keyring"`` names the built-in keyring again. Settings are checked when
the providers are built; a wrong one raises ``ConfigError`` naming it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from kmipd.config import ConfigError, ProviderSettings, Settings
from kmipd.keys.keyring import Keyring
from kmipd.keys.providers.base import RootKeyProvider
from kmipd.keys.providers.builtin import KeyringProvider

BUILTIN = "builtin"


def _options(cls: type, provider: ProviderSettings) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in provider.options.items():
        where = f"root_key_providers.{provider.name}.{key}"
        if key not in known:
            raise ConfigError(f"unknown setting {where} (kind {provider.kind})")
        expected = known[key].type
        ok = {
            "str": isinstance(value, str),
            "str | None": isinstance(value, str),
            "bool": isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(str(expected), isinstance(value, str))
        if not ok:
            raise ConfigError(f"{where} must be of type {expected}")
        values[key] = value
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in values and f.default is f.default_factory  # both MISSING
    ]
    if missing:
        where = f"[root_key_providers.{provider.name}]"
        raise ConfigError(f"{where} needs {', '.join(missing)} (kind {provider.kind})")
    return values


def build_one(settings: Settings, provider: ProviderSettings, keyring: Keyring) -> RootKeyProvider:
    if provider.kind == "keyring":
        if provider.options:
            raise ConfigError(
                f"[root_key_providers.{provider.name}]: kind keyring takes no settings"
            )
        return KeyringProvider(keyring)
    if provider.kind == "pkcs11":
        try:
            from kmipd.keys.providers.pkcs11 import Pkcs11Config, Pkcs11Provider
        except ImportError:
            raise ConfigError(
                f"[root_key_providers.{provider.name}] needs python-pkcs11: "
                "pip install 'kmipd[pkcs11]'"
            ) from None
        values = _options(Pkcs11Config, provider)
        if values.get("mechanism", "auto") not in ("auto", "aes-gcm", "aes-kwp"):
            raise ConfigError(
                f"root_key_providers.{provider.name}.mechanism must be auto, aes-gcm or aes-kwp"
            )
        values["library"] = str(settings.path(values["library"]))
        return Pkcs11Provider(Pkcs11Config(**values))
    from kmipd.keys.providers.keyprotect import KeyProtectConfig, KeyProtectProvider

    values = _options(KeyProtectConfig, provider)
    if values.get("ca"):
        values["ca"] = str(settings.path(values["ca"]))
    return KeyProtectProvider(KeyProtectConfig(**values))


def build_providers(settings: Settings, keyring: Keyring) -> dict[str, RootKeyProvider]:
    """Every configured provider by name, ``builtin`` first. Nothing connects yet."""
    providers: dict[str, RootKeyProvider] = {BUILTIN: KeyringProvider(keyring)}
    for provider in settings.root_key_providers:
        providers[provider.name] = build_one(settings, provider, keyring)
    return providers
