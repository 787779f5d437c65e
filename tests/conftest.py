"""Test-wide configuration: Hypothesis settings profiles.

``HYPOTHESIS_PROFILE=long`` selects the nightly profile (many more examples); the default
profile keeps the unit tests fast on a small CI machine. Tests that pin ``max_examples``
themselves are not affected by the choice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default-kmipd",
    max_examples=200,
    deadline=None,
    # The same examples on every run: a CI result does not depend on luck. Exploration with
    # fresh random examples is the "long" profile's job.
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-kmipd"))


# --- the object store engines: tests that take ``store_url`` run on SQLite and PostgreSQL ---

STORE_ENGINES = ("sqlite", "postgresql")
_ENGINE_IN_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]$")


@pytest.fixture(params=STORE_ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store: a SQLite file, or a PostgreSQL database made for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kmipd.db'}"
        return
    from tests.support.postgres import fresh_database

    with fresh_database(request.node.originalname) as url:
        yield url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many tests ran on each store engine (both must show up in CI)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            match = _ENGINE_IN_ID.search(getattr(report, "nodeid", ""))
            if match is not None and getattr(report, "when", "call") in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                engine = counts.setdefault(match.group(1), {})
                engine[outcome] = engine.get(outcome, 0) + 1
    if counts:
        terminalreporter.section("store engines")
        for engine in STORE_ENGINES:
            tally = counts.get(engine, {})
            text = ", ".join(f"{n} {o}" for o, n in sorted(tally.items())) or "no tests"
            terminalreporter.write_line(f"{engine}: {text}")
