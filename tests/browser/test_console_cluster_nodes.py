"""The console on a two-node cluster (two ``kmipd serve`` on one PostgreSQL database), in
headless Chromium: the setup wizard's endpoint step lists both nodes' host:port and its
"Copy summary" button puts both on the clipboard; the Health page shows a card per node, and
the node killed with SIGKILL turns "unreachable (last seen …)" there."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.console import Console
from tests.support.postgres import fresh_database
from tests.support.server import KmipdServer, init_server

HEARTBEAT = 0.5  # store.node_heartbeat_seconds of both nodes


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[KmipdServer, KmipdServer]]:
    with fresh_database("console_nodes") as url:
        a = init_server(tmp_path / "data", store_url=url)
        a.node_name = "node-a"
        a.configure(store={"node_heartbeat_seconds": HEARTBEAT})
        b = a.another_node("node-b")
        try:
            a.start()
            b.start()
            yield a, b
        finally:
            a.stop()
            b.stop()


def _endpoint(server: KmipdServer) -> str:
    return f"{socket.gethostname()}:{server.kmip_port}"


def _node_id(server: KmipdServer) -> str:
    return _endpoint(server)  # host name:KMIP port, the first endpoint of the certificate


def _open_setup(console: Console, expected_nodes: int) -> Any:
    """The wizard, reloaded until its endpoint list has every node (B registers within a
    heartbeat of its start)."""
    page = console.page
    deadline = time.monotonic() + 10 * HEARTBEAT
    while True:
        console.go("#/setup")
        if page.locator("#endpoints li").count() == expected_nodes:
            return page
        assert time.monotonic() < deadline, page.locator("#endpoints").inner_text()
        page.wait_for_timeout(100)


def test_wizard_and_health_list_every_node(
    playwright_browser: Any, two_nodes: tuple[KmipdServer, KmipdServer], screenshots: Path
) -> None:
    a, b = two_nodes
    console = Console.open(playwright_browser, a)
    try:
        console.page.context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=a.https_url
        )
        console.sign_in(a.admin_api_key)
        page = _open_setup(console, 2)

        # The endpoint step: one entry per node, this one marked, both in the summary.
        items = page.locator("#endpoints li")
        expect(items.nth(0)).to_contain_text(f"(this node): {_endpoint(a)}")
        expect(items.nth(1)).to_contain_text(_endpoint(b))
        assert items.nth(1).get_attribute("data-node") == _node_id(b)
        summary = page.locator("#summary").input_value()
        host = socket.gethostname()
        assert f"KMS {host}: {_endpoint(a)}" in summary
        assert f"KMS {host}: {_endpoint(b)}" in summary
        page.locator("#summary-copy").click()
        expect(page.locator("#status")).to_contain_text("Summary copied.")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied == summary
        console.screenshot(screenshots, "cluster-1-wizard-endpoints")

        # Health: a card per node, both ready, with the checks each node ran.
        console.go("#/health")
        for server in (a, b):
            card = page.locator(f'section[data-node="{_node_id(server)}"]')
            expect(card).to_have_attribute("data-state", "ready")
            expect(card.locator('tr[data-check="store"]')).to_contain_text("ok")
            expect(card).to_contain_text(f"KMIP: {_endpoint(server)}")
        expect(page.locator(f'section[data-node="{_node_id(a)}"] h2')).to_contain_text(
            "(this node)"
        )

        # B is killed: after 3 missed heartbeats its card says unreachable, since when.
        b.kill()
        b_card = page.locator(f'section[data-node="{_node_id(b)}"]')
        deadline = time.monotonic() + 3 * HEARTBEAT + 5
        while True:
            console.go("#/health")
            if b_card.get_attribute("data-state") == "unreachable":
                break
            assert time.monotonic() < deadline, b_card.inner_text()
            page.wait_for_timeout(200)
        expect(b_card.locator("h2")).to_contain_text("unreachable (last seen ")
        expect(page.locator(f'section[data-node="{_node_id(a)}"]')).to_have_attribute(
            "data-state", "ready"
        )
        console.screenshot(screenshots, "cluster-2-health-node-unreachable")
        assert console.script_errors == []
    finally:
        console.close()
