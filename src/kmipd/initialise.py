"""``kmipd init``: lay out a working single-node data directory, never over an existing one.

DIR/kmipd.toml, DIR/pki/{ca,server}.pem (+ keys, mode 0600), the client certificate of
instance ``default`` in DIR/clients/default/, a Manager API key in DIR/admin-api-key (0600)
and the Key Protect-compatible instance GUID in DIR/keyprotect-instance-id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from kmipd import config, pki
from kmipd.api.auth import Role, hash_secret, load_signing_key, new_secret
from kmipd.keys.keyring import Keyring
from kmipd.service.identity import certificate_subject
from kmipd.store.records import ApiKeyRecord, CertificateRecord, InstanceRecord
from kmipd.transport.tls import fingerprint

DEFAULT_INSTANCE = "default"
API_KEY_FILE = "admin-api-key"
KEYPROTECT_ID_FILE = "keyprotect-instance-id"
ADMIN_SERVICE_ID = "admin"


class AlreadyInitialised(Exception):
    pass


@dataclass(frozen=True, slots=True)
class InitResult:
    data_dir: Path
    settings: config.Settings
    client_certificate: Path
    client_key: Path
    api_key_file: Path


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / config.CONFIG_FILE).exists()


def initialise(
    data_dir: Path,
    *,
    store_url: str | None = None,
    kmip_port: int | None = None,
    https_port: int | None = None,
    server_names: list[str] | None = None,
) -> InitResult:
    data_dir = data_dir.resolve()
    if is_initialised(data_dir):
        raise AlreadyInitialised(f"{data_dir} already holds a kmipd setup; it was left unchanged")
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)

    defaults = config.Settings(data_dir=data_dir)
    settings = config.Settings(
        data_dir=data_dir,
        kmip=config.KmipSettings(port=kmip_port or defaults.kmip.port),
        https=config.HttpsSettings(port=https_port or defaults.https.port),
        store=config.StoreSettings(url=store_url or defaults.store.url),
    )

    asyncio.run(_refuse_a_store_in_use(settings))
    ca = pki.create_ca()
    server = pki.issue_server(ca, pki.server_names_with_defaults(server_names))
    client = pki.issue_client(ca, f"kmipd client {DEFAULT_INSTANCE}")
    tls = settings.tls
    pki.write_public(data_dir / tls.ca, ca.certificate_pem())
    pki.write_private(data_dir / tls.ca_key, ca.private_key_pem())
    pki.write_public(data_dir / tls.certificate, server.certificate_pem())
    pki.write_private(data_dir / tls.private_key, server.private_key_pem())
    client_dir = data_dir / "clients" / DEFAULT_INSTANCE
    pki.write_public(client_dir / "client.pem", client.certificate_pem())
    pki.write_private(client_dir / "client-key.pem", client.private_key_pem())

    keyring = Keyring.in_data_dir(data_dir, store_url=settings.store.url)
    try:
        root_key_id = keyring.create(f"root key of instance {DEFAULT_INSTANCE}")
    finally:
        keyring.close()
    api_key = new_secret()
    asyncio.run(_create_default_instance(settings, root_key_id, client, api_key))
    load_signing_key(data_dir)

    pki.write_private(data_dir / API_KEY_FILE, (api_key + "\n").encode())
    pki.write_public(data_dir / KEYPROTECT_ID_FILE, (str(uuid.uuid4()) + "\n").encode())
    # Written last: its presence is what marks the directory as initialised.
    pki.write_public(data_dir / config.CONFIG_FILE, config.render(settings).encode())
    return InitResult(
        data_dir=data_dir,
        settings=settings,
        client_certificate=client_dir / "client.pem",
        client_key=client_dir / "client-key.pem",
        api_key_file=data_dir / API_KEY_FILE,
    )


async def _refuse_a_store_in_use(settings: config.Settings) -> None:
    """A shared database that already holds a setup is another node's: joining a cluster is
    done by copying a node's data directory, not by a second ``init``."""
    from kmipd.app import open_store

    store = open_store(settings)
    await store.open()
    try:
        instances = await store.instances()
    finally:
        await store.close()
    if instances:
        names = ", ".join(i.name for i in instances)
        raise AlreadyInitialised(
            f"{store.describe()} already holds a kmipd setup (instances: {names}); to add a "
            "node to that cluster, copy the data directory of one of its nodes instead"
        )


async def _create_default_instance(
    settings: config.Settings, root_key_id: str, client: pki.Issued, api_key: str
) -> None:
    from kmipd.app import open_store  # the composition root knows which store a URL means

    store = open_store(settings)
    await store.open()
    try:
        now = int(time.time())
        await store.add_instance(InstanceRecord(DEFAULT_INSTANCE, root_key_id, now))
        der = client.certificate.public_bytes(serialization.Encoding.DER)
        await store.add_certificate(
            CertificateRecord(
                fingerprint=fingerprint(der),
                instance=DEFAULT_INSTANCE,
                pem=client.certificate_pem().decode("ascii"),
                subject=certificate_subject(client.certificate),
                is_ca=False,
                created=now,
            )
        )
        await store.add_api_key(
            ApiKeyRecord(
                id=str(uuid.uuid4()),
                service_id=ADMIN_SERVICE_ID,
                role=Role.MANAGER.label,
                secret_hash=hash_secret(api_key),
                created=now,
                description="made by kmipd init",
            )
        )
    finally:
        await store.close()
