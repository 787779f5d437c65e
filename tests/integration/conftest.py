"""Fixtures that run a real kmipd (subprocess, TLS on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import KmipdServer, init_server


@pytest.fixture
def kmipd_server(tmp_path: Path) -> Iterator[KmipdServer]:
    """A fresh server of its own: init, serve, stopped after the test."""
    server = init_server(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    """One server for a whole test module; tests isolate themselves with instances."""
    server = init_server(Path(tmp_path_factory.mktemp("kmipd")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
