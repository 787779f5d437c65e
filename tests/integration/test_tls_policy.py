"""The TLS policy of both ports, as sslyze (PyPI) sees it against a real ``kmipd serve``.

Policy: TLS 1.2 and 1.3 only; TLS 1.2 suites forward-secret (ECDHE) AEAD (AES-GCM,
ChaCha20-Poly1305); TLS 1.3 offered; no compression; client-initiated renegotiation refused.
``kmip.legacy_tls_ciphers = true`` adds exactly the two suites the KMIP 1.4 profile names
(TLS_RSA_WITH_AES_{128,256}_CBC_SHA256) on the KMIP port, and nothing on the HTTPS port.

The KMIP port requires a client certificate: sslyze scans it with the default instance's
credentials (ClientAuthenticationCredentials); without them it cannot connect at all, which
is asserted too. The HTTPS port asks for none (the API authenticates with bearer tokens).
The same properties are also probed with Python's ssl module and ``openssl s_client`` in
test_hostile_clients.py.

Results are printed (``pytest -s``) with the prefix ``[measure]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sslyze import (
    ClientAuthenticationCredentials,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerConnectivityStatusEnum,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)

from tests.support.server import KmipdServer, init_server

LEGACY_SUITES = {"TLS_RSA_WITH_AES_256_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256"}
TLS13_AEAD = {
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
}
REFUSED_VERSIONS = (
    ScanCommand.SSL_2_0_CIPHER_SUITES,
    ScanCommand.SSL_3_0_CIPHER_SUITES,
    ScanCommand.TLS_1_0_CIPHER_SUITES,
    ScanCommand.TLS_1_1_CIPHER_SUITES,
)
COMMANDS = {
    *REFUSED_VERSIONS,
    ScanCommand.TLS_1_2_CIPHER_SUITES,
    ScanCommand.TLS_1_3_CIPHER_SUITES,
    ScanCommand.TLS_COMPRESSION,
    ScanCommand.SESSION_RENEGOTIATION,
}


def scan(server: KmipdServer) -> dict[str, ServerScanResult]:
    """sslyze against the KMIP port (with and without a client certificate) and HTTPS."""
    cert, key = server.credentials()
    credentials = ClientAuthenticationCredentials(certificate_chain_path=cert, key_path=key)
    targets = {
        "kmip": (server.kmip_port, credentials),
        "kmip without a client certificate": (server.kmip_port, None),
        "https": (server.https_port, None),
    }
    requests = {
        name: ServerScanRequest(
            server_location=ServerNetworkLocation(hostname="127.0.0.1", port=port),
            network_configuration=ServerNetworkConfiguration(
                tls_server_name_indication="localhost",
                tls_client_auth_credentials=creds,
                network_timeout=5,
            ),
            scan_commands=COMMANDS,
        )
        for name, (port, creds) in targets.items()
    }
    scanner = Scanner(per_server_concurrent_connections_limit=5)
    scanner.queue_scans(list(requests.values()))
    results: dict[str, ServerScanResult] = {}
    for result in scanner.get_results():
        name = next(n for n, r in requests.items() if r.uuid == result.uuid)
        results[name] = result
    assert set(results) == set(requests)
    return results


def completed(result: ServerScanResult, command: ScanCommand) -> Any:
    attempt = getattr(result.scan_result, command.value)
    assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, (
        command,
        attempt.error_reason,
        attempt.error_trace,
    )
    return attempt.result


def suites(result: ServerScanResult, command: ScanCommand) -> set[str]:
    return {s.cipher_suite.name for s in completed(result, command).accepted_cipher_suites}


def report(port: str, result: ServerScanResult) -> None:
    assert result.scan_status == ServerScanStatusEnum.COMPLETED
    for command in sorted(COMMANDS):
        value: Any = completed(result, command)
        if hasattr(value, "accepted_cipher_suites"):
            value = sorted(s.cipher_suite.name for s in value.accepted_cipher_suites)
        print(f"[measure] sslyze {port} {command.value}: {value}")


def assert_policy(result: ServerScanResult, *, legacy: bool = False) -> set[str]:
    """The policy; returns the TLS 1.2 suites accepted."""
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    for command in REFUSED_VERSIONS:
        assert suites(result, command) == set(), command
    tls12 = suites(result, ScanCommand.TLS_1_2_CIPHER_SUITES)
    modern = tls12 - LEGACY_SUITES
    assert modern, "no forward-secret TLS 1.2 suite"
    for name in modern:
        assert name.startswith("TLS_ECDHE_"), f"{name} is not forward secret"
        assert "_GCM_" in name or "CHACHA20_POLY1305" in name, f"{name} is not AEAD"
    assert tls12 & LEGACY_SUITES == (LEGACY_SUITES if legacy else set()), tls12
    tls13 = suites(result, ScanCommand.TLS_1_3_CIPHER_SUITES)
    assert tls13 and tls13 <= TLS13_AEAD, tls13
    assert completed(result, ScanCommand.TLS_COMPRESSION).supports_compression is False
    renegotiation = completed(result, ScanCommand.SESSION_RENEGOTIATION)
    assert renegotiation.is_vulnerable_to_client_renegotiation_dos is False
    assert renegotiation.client_renegotiations_success_count == 0
    return tls12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("tls-policy")) / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def default_scan(server: KmipdServer) -> dict[str, ServerScanResult]:
    server.start()
    try:
        return scan(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def legacy_scan(
    server: KmipdServer, default_scan: dict[str, ServerScanResult]
) -> dict[str, ServerScanResult]:
    server.configure(kmip={"legacy_tls_ciphers": True})
    server.start()
    try:
        return scan(server)
    finally:
        server.stop()
        server.configure(kmip={"legacy_tls_ciphers": False})


def test_kmip_port(default_scan: dict[str, ServerScanResult]) -> None:
    report("kmip", default_scan["kmip"])
    assert_policy(default_scan["kmip"])


def test_kmip_port_needs_a_client_certificate(default_scan: dict[str, ServerScanResult]) -> None:
    result = default_scan["kmip without a client certificate"]
    print(f"[measure] sslyze kmip without a client certificate: {result.connectivity_error_trace}")
    assert result.connectivity_status == ServerConnectivityStatusEnum.ERROR
    assert result.scan_status == ServerScanStatusEnum.ERROR_NO_CONNECTIVITY


def test_https_port(default_scan: dict[str, ServerScanResult]) -> None:
    report("https", default_scan["https"])
    assert_policy(default_scan["https"])


def test_legacy_setting_adds_exactly_the_kmip_14_suites(
    default_scan: dict[str, ServerScanResult], legacy_scan: dict[str, ServerScanResult]
) -> None:
    report("kmip (legacy_tls_ciphers)", legacy_scan["kmip"])
    before = assert_policy(default_scan["kmip"])
    after = assert_policy(legacy_scan["kmip"], legacy=True)
    assert after == before | LEGACY_SUITES
    # The HTTPS port is not affected by the KMIP setting.
    report("https (legacy_tls_ciphers)", legacy_scan["https"])
    assert assert_policy(legacy_scan["https"]) == assert_policy(default_scan["https"])
