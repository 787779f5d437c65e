"""The token signing key file (DIR/api-token-key): made whole and private, refused when it is
readable by others or damaged, instead of signing with whatever it holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmipd.api.auth import SIGNING_KEY_FILE, SigningKeyError, load_signing_key


def test_made_once_private_and_whole(tmp_path: Path) -> None:
    key = load_signing_key(tmp_path)
    path = tmp_path / SIGNING_KEY_FILE
    assert len(key) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(tmp_path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == [SIGNING_KEY_FILE]  # no temp left


def test_refused_when_group_or_others_can_read_it(tmp_path: Path) -> None:
    load_signing_key(tmp_path)
    (tmp_path / SIGNING_KEY_FILE).chmod(0o644)
    with pytest.raises(SigningKeyError, match="0600"):
        load_signing_key(tmp_path)


@pytest.mark.parametrize("content", [b"", b"short"])
def test_refused_when_empty_or_short(tmp_path: Path, content: bytes) -> None:
    # What a crash between creating the file and writing it left behind (it was not
    # fsynced), or what another process read in that window: every token would fail.
    path = tmp_path / SIGNING_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(SigningKeyError, match="delete it"):
        load_signing_key(tmp_path)
