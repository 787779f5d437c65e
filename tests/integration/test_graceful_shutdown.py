"""SIGTERM answers the KMIP requests in flight, then ``kmipd serve`` exits 0.

A real server gets large Create batches on several connections; SIGTERM is sent while none
of them has been answered. Every batch is answered in full (each key created), an idle
connection is closed without a response, a new connection is refused, and the process exits
with status 0 within the grace period.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from kmipd.protocol import messages
from kmipd.protocol._generated import Operation, ResultStatus
from kmipd.protocol.objects import ProtocolVersion
from tests.support import kmip
from tests.support.server import KmipConnection, KmipdServer, init_server, read_message

BATCH = 256  # Creates per request (limits.max_batch_count): in flight when SIGTERM arrives
CONNECTIONS = 4
EXIT_BOUND = 30.0


@pytest.fixture
def server(kmipd_server: KmipdServer) -> KmipdServer:
    return kmipd_server  # conftest's: a fresh server of its own


def _create_batch(count: int) -> bytes:
    one = messages.decode_request(kmip.create_aes()).batch_items[0]
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 4))),
            batch_items=[
                messages.RequestBatchItem(operation=Operation.CREATE, payload=one.payload)
                for _ in range(count)
            ],
        )
    )


def _nothing_to_read(connection: KmipConnection) -> bool:
    """No response byte has arrived yet (TLS records without data, such as TLS 1.3 session
    tickets, do not count)."""
    sock = connection.sock
    sock.setblocking(False)
    try:
        return not sock.recv(1)  # a byte here fails the test, so consuming it does no harm
    except ssl.SSLWantReadError:
        return True
    finally:
        sock.settimeout(EXIT_BOUND)


def test_sigterm_answers_requests_in_flight_then_exits_0(server: KmipdServer) -> None:
    idle = server.connect()
    kmip.ok(idle.call(kmip.discover_versions()))  # past its handshake, then idle
    busy = [server.connect(timeout=EXIT_BOUND) for _ in range(CONNECTIONS)]
    try:
        request = _create_batch(BATCH)
        for connection in busy:
            connection.sock.sendall(request)
        time.sleep(0.1)  # the server has read them and is working on them
        assert all(_nothing_to_read(c) for c in busy), "answered before SIGTERM: use more work"
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()

        # New connections are refused while the batches are still being answered.
        time.sleep(0.2)
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.kmip_port), timeout=2).close()

        for connection in busy:
            response = messages.decode_response(read_message(connection.sock))
            assert len(response.batch_items) == BATCH
            assert all(i.result_status == ResultStatus.SUCCESS for i in response.batch_items)
            assert read_message(connection.sock) == b""  # then closed by the server
        assert kmip.closed_by_peer(idle.sock, timeout=5) is not None

        assert server.process.wait(EXIT_BOUND) == 0
        assert time.monotonic() - sent < EXIT_BOUND
    finally:
        idle.close()
        for connection in busy:
            connection.close()
    log = server.log()
    assert "stopping: answering the requests in flight" in log
    assert "still unanswered" not in log
    assert "Traceback" not in log


def test_requests_past_the_grace_period_are_cut_and_the_exit_is_still_0(
    tmp_path: Path,
) -> None:
    """A request still running at kmip.shutdown_grace does not hold the stop forever."""
    server = init_server(tmp_path / "data")
    server.configure(kmip={"shutdown_grace": 0.05})
    server.start()
    try:
        connections = [server.connect(timeout=EXIT_BOUND) for _ in range(CONNECTIONS)]
        request = _create_batch(BATCH)
        for connection in connections:
            connection.sock.sendall(request)
        time.sleep(0.2)
        assert all(_nothing_to_read(c) for c in connections)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(EXIT_BOUND) == 0
        for connection in connections:
            connection.close()
        assert "still unanswered after kmip.shutdown_grace" in server.log()
    finally:
        server.stop()


def test_a_whole_run_logged_as_json_lines(tmp_path: Path) -> None:
    """[log] format = "json": from start to stop, stdout and stderr hold JSON objects only."""
    server = init_server(tmp_path / "data")
    server.configure(log={"format": "json"})
    server.start()
    try:
        kmip.ok(server.call(kmip.discover_versions()))
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(EXIT_BOUND) == 0
    finally:
        server.stop()
    entries = [json.loads(line) for line in server.log().splitlines()]
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries), entries
    messages_logged = [e["message"] for e in entries]
    assert any(m.startswith("kmipd ") and " serving KMIP on " in m for m in messages_logged)
    assert messages_logged[-1] == "stopped"
    if server.log_level == "debug":  # --log-level overrides [log] level, not the format
        assert any(e["level"] == "debug" for e in entries)
