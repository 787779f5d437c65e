"""An instance is bound to a root key by its id, never by an alias or to a standard key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kmipd import config
from kmipd.keys.instance_keys import InstanceKeys, RootKeyUnavailable
from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.service.admin import AdminError, AdminService
from kmipd.service.repository import ObjectRepository
from kmipd.store.store import Store


async def _nothing() -> None:
    return None


def _run(tmp_path: Path, scenario) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            ring = Keyring.in_data_dir(tmp_path, rules=KeyRules(action_delay=0))
            keys = InstanceKeys(store, ring)
            ring.add_listener(keys.forget_root_key)
            admin = AdminService(
                store,
                ring,
                keys,
                ObjectRepository(store, keys),
                config.Settings(data_dir=tmp_path),
                _nothing,
            )
            await scenario(ring, keys, admin)
        finally:
            await store.close()

    asyncio.run(main())


def test_binding_through_an_alias_binds_the_key_itself(tmp_path: Path) -> None:
    """Bound to the alias, the instance could not seal anything (the alias is not the id
    the material is bound to), and would follow the alias to another key."""

    async def scenario(ring: Keyring, keys: InstanceKeys, admin: AdminService) -> None:
        first = ring.create_key("first", aliases=["vsphere-root"])
        info, made = await admin.create_instance("vsphere", "vsphere-root")
        assert not made
        assert info.root_key_id == first.id  # the id, not the alias
        version, _ = await keys.current("vsphere", info.root_key_id)
        # A Writer moves the alias to another key; a Manager deletes the first key.
        second = ring.create_key("second")
        ring.remove_alias(first.id, "vsphere-root")
        ring.add_alias(second.id, "vsphere-root")
        ring.delete_key(first.id)
        with pytest.raises(RootKeyUnavailable):
            await keys.key("vsphere", version)

    _run(tmp_path, scenario)


def test_an_instance_cannot_be_bound_to_a_standard_key(tmp_path: Path) -> None:
    async def scenario(ring: Keyring, keys: InstanceKeys, admin: AdminService) -> None:
        standard = ring.create_key("readable by any Writer", extractable=True)
        with pytest.raises(AdminError) as caught:
            await admin.create_instance("vsphere", standard.id)
        assert caught.value.code == "invalid_root_key"

    _run(tmp_path, scenario)
