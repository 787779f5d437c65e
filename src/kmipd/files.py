"""Files that must appear whole or not at all: keys, certificates, the configuration.

The data is written and fsynced under a temporary name, then hard-linked into place (which,
unlike a rename, never replaces a file another process made first), then the directory is
fsynced. A crash leaves either no file or the whole file, never an empty or partial one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_file(path: Path, data: bytes, mode: int, *, exist_ok: bool = False) -> bool:
    """Create ``path`` holding ``data`` with ``mode``; False if it already existed and
    ``exist_ok`` (the existing file is left as it is), FileExistsError otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            if not exist_ok:
                raise
            return False
    finally:
        temporary.unlink(missing_ok=True)
    sync_directory(path.parent)
    return True


def sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
