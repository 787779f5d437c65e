"""The backup file: a gzip'd tar of a fixed set of members and ``manifest.json``.

The manifest holds the format version, the kmipd version, the schema version of the store
snapshot, when and from which engine it was made, and each member's size and SHA-256; its
``checksum`` is the SHA-256 of those member lines, so a member added, removed or changed is
found. ``read`` checks all of it before anything is used, and never extracts a name it does
not know (no path from the file reaches the filesystem).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmipd import __version__

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "store.db"  # a SQLite database on the schema of ``schema_version``, for either engine
KEYRING = "keyring.json"  # the built-in keyring's document, material encrypted
CONFIG = "kmipd.toml"  # without store passwords and provider secrets
CA_CERTIFICATE = "ca.pem"  # the CA certificate only, never its key
KEYPROTECT_ID = "keyprotect-instance-id"
MEMBERS = (STORE, KEYRING, CONFIG, CA_CERTIFICATE, KEYPROTECT_ID)
REQUIRED = (STORE, CONFIG)


class BackupInvalid(Exception):
    """The file is not a kmipd backup this release can restore; the message says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    format_version: int
    kmipd_version: str
    schema_version: int
    created_at: float
    engine: str
    files: dict[str, dict[str, Any]]  # name -> {"sha256": hex, "bytes": size}
    checksum: str

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format_version": self.format_version,
                "kmipd_version": self.kmipd_version,
                "schema_version": self.schema_version,
                "created_at": self.created_at,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
                "engine": self.engine,
                "files": self.files,
                "checksum": self.checksum,
            },
            indent=1,
            sort_keys=True,
        ).encode()


def _checksum(files: dict[str, dict[str, Any]]) -> str:
    lines = "".join(
        f"{name} {files[name]['sha256']} {files[name]['bytes']}\n" for name in sorted(files)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def write(target: Path, members: dict[str, bytes], *, schema_version: int, engine: str) -> Manifest:
    """Write the backup file ``target`` (mode 0600), whole or not at all; its manifest."""
    unknown = set(members) - set(MEMBERS)
    assert not unknown, unknown
    files = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in members.items()
    }
    manifest = Manifest(
        FORMAT_VERSION, __version__, schema_version, time.time(), engine, files, _checksum(files)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name, data in [(MANIFEST, manifest.to_json()), *sorted(members.items())]:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o600, int(manifest.created_at)
                    tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def read(source: Path) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and members of the backup file ``source``, every check passed."""
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            contents = {}
            for info in tar.getmembers():
                if info.name not in (MANIFEST, *MEMBERS) or not info.isfile():
                    raise BackupInvalid(f"{source} holds {info.name!r}, which no kmipd backup has")
                handle = tar.extractfile(info)
                assert handle is not None
                contents[info.name] = handle.read()
    except FileNotFoundError:
        raise BackupInvalid(f"{source} does not exist") from None
    except IsADirectoryError:
        raise BackupInvalid(f"{source} is a directory, not a backup file") from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BackupInvalid(f"{source} is not a kmipd backup or is damaged ({exc})") from None
    manifest = _manifest(source, contents.pop(MANIFEST, None))
    if set(contents) != set(manifest.files):
        raise BackupInvalid(
            f"{source} is damaged: its members ({', '.join(sorted(contents))}) are not those "
            f"its manifest lists ({', '.join(sorted(manifest.files))})"
        )
    for name, data in contents.items():
        expected = manifest.files[name]
        if hashlib.sha256(data).hexdigest() != expected.get("sha256") or len(data) != expected.get(
            "bytes"
        ):
            raise BackupInvalid(f"{source} is damaged: {name} does not match its SHA-256 checksum")
    if _checksum(manifest.files) != manifest.checksum:
        raise BackupInvalid(f"{source} is damaged: the manifest's checksum does not match")
    missing = [name for name in REQUIRED if name not in contents]
    if missing:
        raise BackupInvalid(f"{source} lacks {', '.join(missing)}")
    return manifest, contents


def _manifest(source: Path, raw: bytes | None) -> Manifest:
    if raw is None:
        raise BackupInvalid(f"{source} has no {MANIFEST}: it is not a kmipd backup")
    try:
        data = json.loads(raw)
        version = data["format_version"]
        if not isinstance(version, int):
            raise TypeError("format_version")
        if version > FORMAT_VERSION:
            raise BackupInvalid(
                f"{source} is in backup format {version}, newer than this kmipd "
                f"({__version__}) reads ({FORMAT_VERSION}): restore it with kmipd "
                f"{data.get('kmipd_version', 'of that release')} or later"
            )
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise TypeError("files")
        return Manifest(
            version,
            str(data["kmipd_version"]),
            int(data["schema_version"]),
            float(data["created_at"]),
            str(data["engine"]),
            files,
            str(data["checksum"]),
        )
    except BackupInvalid:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupInvalid(
            f"{source} has a damaged {MANIFEST} ({type(exc).__name__}: {exc})"
        ) from None
