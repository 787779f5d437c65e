"""Which settings SIGHUP applies to a running ``kmipd serve``, and which need a restart.

Applied live: the ``[tls]`` files (server certificate and key, CA), ``kmip.legacy_tls_ciphers``
(all part of the KMIP port's TLS context: new connections get the new one, open connections
keep theirs) and ``[log]``. The allowed client certificates need no signal: they live in the
store and every node re-reads them within two seconds (at once for changes made through the
API); SIGHUP re-reads them too. Everything else (ports, limits, the store, root key
providers, the HTTPS port's certificate, ...) is read once at start.
"""

from __future__ import annotations

import dataclasses

from kmipd import config

# "section" (the whole section) or "section.setting".
RELOADABLE = frozenset(("tls", "kmip.legacy_tls_ciphers", "log"))


def applied(current: config.Settings, new: config.Settings) -> config.Settings:
    """``current`` with the live-reloadable settings of ``new``."""
    kmip = dataclasses.replace(current.kmip, legacy_tls_ciphers=new.kmip.legacy_tls_ciphers)
    return dataclasses.replace(current, tls=new.tls, kmip=kmip, log=new.log)


def restart_needed(before: config.Settings, after: config.Settings) -> list[str]:
    """The settings (``section.setting``) that differ between two readings of kmipd.toml and
    that a running server does not apply."""
    changed: list[str] = []
    for section in dataclasses.fields(config.Settings):
        name = section.name
        if name in ("data_dir", *RELOADABLE):
            continue
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if not dataclasses.is_dataclass(old):
            changed.append(name)
            continue
        for setting in dataclasses.fields(old):
            dotted = f"{name}.{setting.name}"
            if dotted not in RELOADABLE and getattr(old, setting.name) != getattr(
                new, setting.name
            ):
                changed.append(dotted)
    return changed
