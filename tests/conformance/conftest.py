"""Conformance-test plumbing: per-version tallies printed in the terminal summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

ROUND_TRIP_TALLY = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture(scope="session")
def round_trip_tally(pytestconfig: pytest.Config) -> dict[str, Counter[str]]:
    """``{"v1.1": Counter(total=…, passed=…, known=…)}``, filled by the round-trip test."""
    return pytestconfig.stash.setdefault(ROUND_TRIP_TALLY, {})


@dataclass
class ServerConformanceTally:
    """OASIS profile results against the running server, by (version, profile)."""

    # (version, profile) -> {"mandatory": {test id: passed}, "optional": {...}}
    results: dict[tuple[str, str], dict[str, dict[str, bool]]] = field(default_factory=dict)

    def record(
        self, version: str, profile: str, requirement: str, test_id: str, passed: bool
    ) -> None:
        by_requirement = self.results.setdefault((version, profile), {})
        by_requirement.setdefault(requirement, {})[test_id] = passed

    def lines(self) -> list[str]:
        out = []
        for (version, profile), by_requirement in sorted(self.results.items()):
            mandatory = by_requirement.get("mandatory", {})
            optional = by_requirement.get("optional", {})
            line = (
                f"{profile} {version}: {sum(mandatory.values())} of {len(mandatory)} "
                "mandatory test cases pass"
            )
            if optional:
                line += f" (optional: {sum(optional.values())} of {len(optional)})"
            out.append(line)
        return out


SERVER_TALLY = pytest.StashKey[ServerConformanceTally]()


@pytest.fixture(scope="session")
def server_conformance_tally(pytestconfig: pytest.Config) -> ServerConformanceTally:
    return pytestconfig.stash.setdefault(SERVER_TALLY, ServerConformanceTally())


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    tally = config.stash.get(ROUND_TRIP_TALLY, None)
    if tally:
        terminalreporter.section("OASIS XML round trip")
        for version in sorted(tally, key=lambda v: tuple(int(p) for p in v[1:].split("."))):
            counts = tally[version]
            terminalreporter.write_line(
                f"OASIS XML round trip {version}: {counts['passed']} of {counts['total']} "
                f"messages ({counts['known']} known exceptions)"
            )
    server = config.stash.get(SERVER_TALLY, None)
    if server is not None and server.results:
        terminalreporter.section("OASIS profiles against the running server")
        for line in server.lines():
            terminalreporter.write_line(line)
