"""The database: reachable, and at the schema version this kmipd runs on.

It is opened without :meth:`Store.open`, which would create a schema in an empty database:
the doctor only reads.
"""

from __future__ import annotations

from kmipd import config
from kmipd.doctor.report import Finding, fail, ok
from kmipd.store import migrations
from kmipd.store.postgres_database import is_postgres_url
from kmipd.store.store import Store, StoreError


async def open_checked(settings: config.Settings) -> tuple[Store | None, list[Finding]]:
    """The store, open and usable by this kmipd (else None), and what was found."""
    url_fix = f"set store.url in {settings.data_dir / config.CONFIG_FILE}"
    try:
        store = Store.from_url(settings.store.url, base=settings.data_dir, pool_size=1)
    except StoreError as exc:
        return None, [fail(f"store.url: {exc}", url_fix)]
    where = store.describe()
    path = getattr(store.database, "path", None)
    if not is_postgres_url(settings.store.url) and path is not None and not path.is_file():
        return None, [fail(f"{where} is missing", f"restore it from a backup, or {url_fix}")]
    try:
        await store.database.open()
    except (StoreError, OSError) as exc:
        return None, [
            fail(
                f"{where} is not reachable: {exc}",
                "start the database server and check that this host can reach it, or " + url_fix,
            )
        ]
    try:
        version = await store.database.read(migrations.current_version, store.dialect)
    except (StoreError, OSError) as exc:
        await store.close()
        return None, [fail(f"{where} cannot be read: {exc}", url_fix)]
    if version == migrations.LATEST:
        return store, [ok(f"{where}: reachable, schema version {version} (up to date)")]
    await store.close()
    if version is None:
        return None, [
            fail(
                f"{where} holds no kmipd schema",
                f"point store.url at the setup's database, or run 'kmipd init' ({url_fix})",
            )
        ]
    if version > migrations.LATEST:
        return None, [fail(f"{where}: {migrations.too_new(version)}", "upgrade kmipd")]
    return None, [
        fail(
            f"{where} is not migrated: schema version {version}, this kmipd needs "
            f"{migrations.LATEST}",
            "stop every node, back up the database, then run "
            f"'kmipd migrate --data-dir {settings.data_dir}'",
        )
    ]
