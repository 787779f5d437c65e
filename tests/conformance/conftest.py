"""Conformance-test plumbing: per-version tallies printed in the terminal summary."""

from __future__ import annotations

from collections import Counter

import pytest

ROUND_TRIP_TALLY = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture(scope="session")
def round_trip_tally(pytestconfig: pytest.Config) -> dict[str, Counter[str]]:
    """``{"v1.1": Counter(total=…, passed=…, known=…)}``, filled by the round-trip test."""
    return pytestconfig.stash.setdefault(ROUND_TRIP_TALLY, {})


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    tally = config.stash.get(ROUND_TRIP_TALLY, None)
    if not tally:
        return
    terminalreporter.section("OASIS XML round trip")
    for version in sorted(tally, key=lambda v: tuple(int(p) for p in v[1:].split("."))):
        counts = tally[version]
        terminalreporter.write_line(
            f"OASIS XML round trip {version}: {counts['passed']} of {counts['total']} messages "
            f"({counts['known']} known exceptions)"
        )
