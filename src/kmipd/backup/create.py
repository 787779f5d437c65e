"""Make a backup file of a data directory's setup, online (``kmipd backup``, the schedule)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kmipd import config
from kmipd.backup import archive, snapshot
from kmipd.initialise import KEYPROTECT_ID_FILE
from kmipd.store import migrations
from kmipd.store.postgres_database import redact

# Options of [root_key_providers.*] that may hold a secret: never written to a backup (their
# *_env and *_file forms name where the secret is, and are kept).
SECRET_PROVIDER_OPTIONS = frozenset(("pin", "api_key"))


def create(settings: config.Settings, target: Path) -> archive.Manifest:
    """Write a backup of ``settings``' setup to ``target``; its manifest."""
    taken = snapshot.take(settings)
    members = {archive.STORE: taken.store, archive.CONFIG: _config_text(settings).encode()}
    if taken.keyring is not None:
        members[archive.KEYRING] = taken.keyring
    ca = settings.path(settings.tls.ca)
    if ca.is_file():
        members[archive.CA_CERTIFICATE] = ca.read_bytes()
    instance_id = settings.data_dir / KEYPROTECT_ID_FILE
    if instance_id.is_file():
        members[archive.KEYPROTECT_ID] = instance_id.read_bytes()
    return archive.write(target, members, schema_version=migrations.LATEST, engine=taken.engine)


def _config_text(settings: config.Settings) -> str:
    """kmipd.toml as it would be written, without a store password or provider secrets."""
    providers = tuple(
        dataclasses.replace(
            p, options={k: v for k, v in p.options.items() if k not in SECRET_PROVIDER_OPTIONS}
        )
        for p in settings.root_key_providers
    )
    store = dataclasses.replace(settings.store, url=redact(settings.store.url))
    return config.render(dataclasses.replace(settings, store=store, root_key_providers=providers))
