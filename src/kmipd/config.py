"""Typed settings, read from ``DIR/kmipd.toml``. Paths in the file are relative to DIR."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from kmipd.protocol.limits import DEFAULT_LIMITS, Limits

CONFIG_FILE = "kmipd.toml"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or has a wrong value; says which."""


@dataclass(frozen=True, slots=True)
class KmipSettings:
    host: str = "0.0.0.0"
    port: int = 5696
    # Seconds a client has to finish the TLS handshake.
    handshake_timeout: float = 10.0
    # Seconds between the first and last byte of one message.
    read_timeout: float = 30.0
    # Seconds a connection may sit idle between messages.
    idle_timeout: float = 600.0
    max_connections: int = 1000
    # Open connections per client certificate: one tenant cannot take the whole
    # max_connections. vCenter gives its ESXi hosts its own client certificate, so every host
    # of a vSAN boot storm counts against the same one: leave room for them.
    max_connections_per_client: int = 500
    # Also offer TLS_RSA_WITH_AES_{128,256}_CBC_SHA256, the suites the KMIP 1.4 profiles
    # name, for old clients. They lack forward secrecy: off unless a client needs them.
    legacy_tls_ciphers: bool = False
    # Seconds SIGTERM waits for requests already being read or answered to get their
    # response; idle connections are closed at once, new ones refused.
    shutdown_grace: float = 20.0


@dataclass(frozen=True, slots=True)
class HttpsSettings:
    host: str = "0.0.0.0"
    port: int = 8443
    # Largest request body accepted (bytes); a larger one is refused with 413 before it is read.
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca: str = "pki/ca.pem"
    ca_key: str = "pki/ca-key.pem"
    certificate: str = "pki/server.pem"
    private_key: str = "pki/server-key.pem"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    # sqlite:///PATH (relative to the data directory) for one node; postgresql://… for a
    # cluster of nodes sharing one database.
    url: str = "sqlite:///kmipd.db"
    # PostgreSQL: connections (and worker threads) per node.
    pool_size: int = 8
    # How often a node reads the cluster's change feed when no notification arrived: the
    # bound on how late it learns of a change made on another node (root key deleted,
    # certificate removed, wrapping key rotated) if notifications are lost.
    event_poll_seconds: float = 0.5
    # How often a node writes its row in the node registry (its endpoints and health, for
    # GET /admin/v1/nodes); a node not seen for 3 of these is shown as unreachable.
    node_heartbeat_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    max_frame_bytes: int = DEFAULT_LIMITS.max_frame_bytes
    max_depth: int = DEFAULT_LIMITS.max_depth
    max_field_bytes: int = DEFAULT_LIMITS.max_field_bytes
    max_items_per_structure: int = DEFAULT_LIMITS.max_items_per_structure
    max_items_per_message: int = DEFAULT_LIMITS.max_items_per_message
    max_batch_count: int = DEFAULT_LIMITS.max_batch_count

    def limits(self) -> Limits:
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            max_depth=self.max_depth,
            max_field_bytes=self.max_field_bytes,
            max_items_per_structure=self.max_items_per_structure,
            max_items_per_message=self.max_items_per_message,
            max_batch_count=self.max_batch_count,
        )


@dataclass(frozen=True, slots=True)
class KeyProtectSettings:
    """The Key Protect-compatible root key API (``/api/v2``) and the keyring's time rules."""

    # Answer with application/json instead of Key Protect's vendor types
    # (application/vnd.ibm.kms.key+json, ...). IBM's Python SDK returns a dict from
    # get_result() for application/json, and the raw response (call .json()) otherwise.
    json_content_type: bool = False
    # Seconds: a deleted root key can be restored this long; then its material is erased.
    restore_window: float = 30 * 86400.0
    # Seconds after a delete before purge is allowed.
    purge_delay: float = 4 * 3600.0
    # Seconds between two rotations of a root key through the API.
    rotation_interval: float = 3600.0
    # Seconds after a state change (disable, delete) before enable or restore is allowed.
    action_delay: float = 30.0


@dataclass(frozen=True, slots=True)
class RewrapSettings:
    """Rotation of the instances' keys and the re-wrap job (``service/rewrap.py``)."""

    # Objects re-sealed per transaction.
    batch_size: int = 250
    # Seconds to pause between two batches (0: none), to bound the job's load on the store.
    pause: float = 0.0
    # Seconds between two checks for a root key rotated elsewhere and for jobs to run.
    poll_seconds: float = 1.0
    # Seconds a runner's lease lasts without renewal; after a crash, another (or the
    # restarted) process takes the job over after this.
    lease_seconds: float = 10.0
    # Seconds after a newer wrapping key version was made before an older one may be retired.
    retire_grace: float = 60.0
    # Seconds between two checks of the instances' rotation schedules (rotation_days).
    schedule_check_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """Scheduled backups (``kmipd.backup.schedule``); in a cluster one node makes them."""

    # Minutes between two backups; 0 turns the schedule off.
    schedule_minutes: float = 0.0
    # Where the backup files go (relative to the data directory).
    directory: str = "backups"
    # How many backup files are kept; older ones are deleted after each new one.
    keep: int = 7


@dataclass(frozen=True, slots=True)
class RootKeysSettings:
    """Root keys held by named providers (``[root_key_providers.<name>]`` tables)."""

    # Seconds between two checks of the root keys in use, in providers whose keys can change
    # outside kmipd (a remote Key Protect): a key disabled or deleted there stops its
    # instances within this.
    check_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The server's log (``kmipd.logging_setup``); both are applied again on SIGHUP."""

    level: str = "info"  # debug | info | warning | error
    format: str = "text"  # text | json (one JSON object per line)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit trail (``kmipd.audit``). Every record is committed before the request is
    answered, and the request fails when it cannot be."""

    # The records of KMIP operations that change nothing (Get, Locate, GetAttributes, ...):
    # true: on disk before the answer, an fsync each busy moment; false: on disk within
    # 0.2 s (a crash of kmipd loses none of them; a power loss, at most those 0.2 s). The
    # records of every change are always on disk before the answer.
    sync_reads: bool = False


PROVIDER_KINDS = ("keyring", "pkcs11", "keyprotect")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One ``[root_key_providers.<name>]`` table: its kind and the kind's settings (checked
    when the provider is built, ``kmipd.keys.providers.registry``)."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold a PIN


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    kmip: KmipSettings = field(default_factory=KmipSettings)
    https: HttpsSettings = field(default_factory=HttpsSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    keyprotect: KeyProtectSettings = field(default_factory=KeyProtectSettings)
    root_keys: RootKeysSettings = field(default_factory=RootKeysSettings)
    root_key_providers: tuple[ProviderSettings, ...] = ()
    rewrap: RewrapSettings = field(default_factory=RewrapSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    log: LogSettings = field(default_factory=LogSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    def path(self, relative: str) -> Path:
        return (self.data_dir / relative).resolve()


# Names someone might try in order to turn TLS off: the refusal says why there is none.
_TLS_OFF_NAMES = frozenset(("tls", "ssl", "enabled", "plaintext", "insecure", "use_tls"))


def _section(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            hint = (
                "; kmipd always serves TLS: no setting turns it off"
                if key.lower() in _TLS_OFF_NAMES
                else ""
            )
            raise ConfigError(
                f"unknown setting {where}.{key} in {CONFIG_FILE}: remove it or fix its name{hint}"
            )
        default = getattr(cls(), key)
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
            value, type(default) if not isinstance(default, float) else (int, float)
        ):
            raise ConfigError(
                f"{where}.{key} must be of type {type(default).__name__}, got {value!r}"
            )
        values[key] = value
    return cls(**values)


def _providers(raw: Any) -> tuple[ProviderSettings, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("[root_key_providers] must hold one table per provider")
    providers = []
    for name, table in raw.items():
        where = f"root_key_providers.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table with kind = {' | '.join(PROVIDER_KINDS)}")
        if name == "builtin":
            raise ConfigError(f"[{where}]: 'builtin' is the built-in keyring; pick another name")
        options = dict(table)
        kind = options.pop("kind", None)
        if kind not in PROVIDER_KINDS:
            raise ConfigError(f"{where}.kind must be one of {', '.join(PROVIDER_KINDS)}")
        providers.append(ProviderSettings(name, kind, options))
    return tuple(providers)


def load(data_dir: Path) -> Settings:
    path = data_dir / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run 'kmipd init --data-dir {data_dir}'") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    sections: dict[str, Any] = {"root_key_providers": _providers(raw.pop("root_key_providers", {}))}
    for f in fields(Settings):
        if f.name in ("data_dir", "root_key_providers"):
            continue
        cls = f.default_factory  # type: ignore[misc]
        assert callable(cls) and is_dataclass(cls)
        sections[f.name] = _section(cls, raw.pop(f.name, {}), f.name)  # type: ignore[arg-type]
    if raw:
        raise ConfigError(f"unknown section(s) in {path}: {', '.join(sorted(raw))}")
    return Settings(data_dir=data_dir.resolve(), **sections)


def render(settings: Settings) -> str:
    """The TOML text of ``settings``, with every setting written out."""
    lines = ["# kmipd configuration. Paths are relative to this file's directory.", ""]
    for f in fields(Settings):
        if f.name in ("data_dir", "root_key_providers"):
            continue
        section = getattr(settings, f.name)
        lines.append(f"[{f.name}]")
        for sf in fields(section):
            value = getattr(section, sf.name)
            lines.append(f"{sf.name} = {_toml(value)}")
        lines.append("")
    for provider in settings.root_key_providers:
        lines.append(f"[root_key_providers.{provider.name}]")
        for key, value in {"kind": provider.kind, **provider.options}.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
