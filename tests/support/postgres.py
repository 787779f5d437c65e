"""A fresh PostgreSQL database per test, on the machine's server.

``KMIPD_TEST_POSTGRES_URL`` names a database to connect to as an administrator (default: the
local server, trust auth). When the server cannot be reached, the tests that need it fail
with the reason; with ``KMIPD_TEST_POSTGRES=skip`` they are skipped instead (a machine
without PostgreSQL). CI has PostgreSQL, so there they always run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_URL = os.environ.get(
    "KMIPD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {ADMIN_URL} is unreachable ({exc.__class__.__name__})"
        if os.environ.get("KMIPD_TEST_POSTGRES") == "skip":
            pytest.skip(reason + "; skipped because KMIPD_TEST_POSTGRES=skip")
        pytest.fail(reason + "; start it, or set KMIPD_TEST_POSTGRES=skip", pytrace=False)


def database_url(name: str) -> str:
    """The admin URL pointing at database ``name`` (query parameters are not kept)."""
    return ADMIN_URL.split("?", 1)[0].rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_database(label: str = "test") -> Iterator[str]:
    """Create an empty database; its URL. Dropped afterwards, connections and all."""
    name = f"kmipd_{re.sub(r'[^a-z0-9_]', '_', label.lower())[:30]}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_connections(url: str) -> int:
    """Cut every session on ``url``'s database (as a database restart would); how many."""
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)
