"""Scheduled backups (``[backup]`` in kmipd.toml): a background job of ``kmipd serve``.

Every ``schedule_minutes`` the process that holds the ``backup-schedule`` lease (a row of the
store's ``leases`` table, as the rotation schedule uses; renewed by every check, taken over
by another node when it has expired) writes a backup file into ``backup.directory`` and
deletes the oldest ones beyond ``backup.keep``. In a cluster the backups are in the directory
of whichever node holds the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from kmipd import config
from kmipd.backup.create import create
from kmipd.store.database import log_failure
from kmipd.store.store import Store

log = logging.getLogger(__name__)

SCHEDULE_LEASE = "backup-schedule"
FILE_PREFIX = "kmipd-backup-"
FILE_SUFFIX = ".tar.gz"
LONGEST_CHECK_SECONDS = 60.0
# The lease outlives a check by this much, so a slow backup does not lose it to another node.
LEASE_MARGIN_SECONDS = 30.0


def backup_name(when: float) -> str:
    """A file name that sorts by time: kmipd-backup-20261128T221500.123Z.tar.gz."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(when))
    return f"{FILE_PREFIX}{stamp}.{int(when % 1 * 1000):03d}Z{FILE_SUFFIX}"


def backups_in(directory: Path) -> list[Path]:
    """The scheduled backup files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.name.startswith(FILE_PREFIX) and p.name.endswith(FILE_SUFFIX) and p.is_file()
    )


class BackupScheduler:
    def __init__(self, settings: config.Settings, store: Store) -> None:
        backup = settings.backup
        if backup.schedule_minutes < 0:
            raise config.ConfigError("backup.schedule_minutes must be 0 (off) or more")
        if backup.keep < 1:
            raise config.ConfigError("backup.keep must be 1 or more")
        if not backup.directory.strip():
            raise config.ConfigError("backup.directory must name a directory")
        self._settings = settings
        self._store = store
        self._interval = backup.schedule_minutes * 60.0
        self._check = min(self._interval, LONGEST_CHECK_SECONDS)
        self.directory = settings.path(backup.directory)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Path | None:
        """Make a backup if this process holds the lease and the last one is due; its path."""
        now = time.time()
        until = now + self._check + LEASE_MARGIN_SECONDS
        if not await self._store.take_lease(SCHEDULE_LEASE, self.owner, now, until):
            return None
        existing = backups_in(self.directory)
        if existing and now - existing[-1].stat().st_mtime < self._interval:
            return None
        target = self.directory / backup_name(now)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        manifest = await asyncio.to_thread(create, self._settings, target)
        log.info(
            "scheduled backup written to %s (schema version %d, checksum %s)",
            target,
            manifest.schema_version,
            manifest.checksum,
        )
        self.prune()
        return target

    def prune(self) -> list[Path]:
        """Delete the oldest backup files beyond ``backup.keep``; those deleted."""
        existing = backups_in(self.directory)
        doomed = existing[: max(0, len(existing) - self._settings.backup.keep)]
        for path in doomed:
            path.unlink(missing_ok=True)
            log.info("old backup %s deleted (backup.keep = %d)", path, self._settings.backup.keep)
        return doomed

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # try again at the next check
                log_failure(log, "the scheduled backup failed; trying again")
            await asyncio.sleep(self._check)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self.run_forever(), name="backup-schedule"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._store.release_lease(SCHEDULE_LEASE, self.owner)
