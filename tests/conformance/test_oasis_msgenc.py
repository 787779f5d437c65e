"""OASIS message encoding profiles against a running kmipd: KMIP over HTTPS.

The HTTPS, XML and JSON Server profiles (MSGENC-HTTPS, MSGENC-XML, MSGENC-JSON; KMIP
Additional Message Encodings v1.0, and the 1.4 and 2.1 profiles documents) at every version
``profiles.json`` lists them for, as far as the server speaks it (1.0-1.4 and 2.1): each test
case's requests are sent to ``POST /kmip`` of a real ``kmipd serve``, over TLS with the
client certificate of a fresh instance, in the profile's encoding (TTLV as
``application/octet-stream``, KMIP XML as ``text/xml``, KMIP JSON as ``application/json``).
The answer must come back with 200 in the same encoding and match the expected response
(:mod:`tests.support.oasis_harness`).

The terminal summary prints, per version and profile,
"MSGENC-XML v1.4: N of M mandatory test cases pass".
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.conftest import ServerConformanceTally
from tests.support import oasis
from tests.support.kmip_http import KmipHttpsClient
from tests.support.oasis_harness import CaseRunner, prepare_case, query_requirements
from tests.support.server import KmipdServer, init_server
from tests.support.shared import KMIP_TESTCASES

pytestmark = pytest.mark.shared

VERSIONS = ("v1.0", "v1.1", "v1.2", "v1.3", "v1.4", "v2.1")
# Profile → the encoding its requests travel in over POST /kmip.
PROFILES = {"MSGENC-HTTPS": "ttlv", "MSGENC-XML": "xml", "MSGENC-JSON": "json"}


def _selected() -> list[tuple[str, str, str, str]]:
    """(version, profile, requirement, test id) for every case this module runs."""
    data = oasis.profiles()
    selected = []
    for version in VERSIONS:
        for profile in PROFILES:
            entry = data[version]["profiles"].get(profile)
            if entry is None:
                continue
            for requirement in ("mandatory", "optional"):
                for test_id in entry.get(requirement, []):
                    selected.append((version, profile, requirement, test_id))
    return selected


@functools.cache
def _files() -> dict[tuple[str, str], Path]:
    """(version folder, test id) → file, for the profile test files."""
    return {
        (f"v{entry.protocol_version}", entry.test_id): KMIP_TESTCASES / entry.file
        for entry in oasis.index().values()
        if entry.suite == "profile"
    }


@functools.cache
def _query_required(version: str, profile: str) -> dict[int, set[int]]:
    """What a Query answer in this profile must report: what its test cases use."""
    files = _files()
    cases = [
        oasis.load_case(files[(v, test_id)])
        for v, p, _, test_id in _selected()
        if (v, p) == (version, profile) and (v, test_id) in files
    ]
    return query_requirements(cases)


def _params() -> list[Any]:
    if not KMIP_TESTCASES.exists():
        return [pytest.param(None, id="no-shared-data")]
    return [pytest.param(case, id=f"{case[0]}-{case[3]}") for case in _selected()]


@pytest.fixture(scope="module")
def msgenc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("kmipd")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


_counter = itertools.count()


def test_every_msgenc_profile_has_cases_at_14_and_21() -> None:
    """The selection is not silently empty where the brief needs it: 1.4 and 2.1."""
    if not KMIP_TESTCASES.exists():
        pytest.skip(f"shared test data not found at {KMIP_TESTCASES}")
    chosen = {(version, profile) for version, profile, _, _ in _selected()}
    for version in ("v1.4", "v2.1"):
        for profile in PROFILES:
            assert (version, profile) in chosen, (version, profile)


@pytest.mark.parametrize("case", _params())
def test_oasis_msgenc_case(
    case: tuple[str, str, str, str] | None,
    msgenc_server: KmipdServer,
    server_conformance_tally: ServerConformanceTally,
) -> None:
    if case is None:
        pytest.skip(f"shared test data not found at {KMIP_TESTCASES}")
    version, profile, requirement, test_id = case
    path = _files().get((version, test_id))
    assert path is not None, f"{test_id}: listed in profiles.json but no file in index.csv"
    loaded = prepare_case(oasis.load_case(path))

    instance = f"msgenc-{next(_counter)}-{test_id.lower()}"
    msgenc_server.add_instance(instance)
    with KmipHttpsClient.for_instance(msgenc_server, instance) as client:
        runner = CaseRunner(
            loaded,
            client.sender(PROFILES[profile]),
            query_required=_query_required(version, profile),
        )
        result = runner.run()

    server_conformance_tally.record(version, profile, requirement, test_id, result.passed)
    if requirement == "mandatory":
        assert result.passed, f"{test_id} ({path.name}) {result.failure}"
    elif not result.passed:
        print(f"optional {test_id} does not pass: {result.failure}")
