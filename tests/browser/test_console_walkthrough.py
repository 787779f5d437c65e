"""The web console in headless Chromium, as a Manager, against a real kmipd: sign in → the
setup wizard end to end (new root key, instance, vCenter's certificate three ways, the KMS CA,
the endpoints) → vCenter (a KMIP client with the certificate the wizard issued) creates keys
with its x- tags → the inventory shows them with their VM names → one is deleted from the
console and is gone over KMIP → the root key is rotated and the re-wrap is watched to the end
→ the root key of a second instance is deleted and its keys fail over KMIP (then restored).

Screenshots of every page go to artifacts/console-screenshots/.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import expect

from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.browser.console import RESTORE_DELAY, Console
from tests.support import kmip
from tests.support.admin import bearer, https_client, kmip_refused, write_pair
from tests.support.server import KmipdServer
from tests.support.vcenter import PRODUCT_TAGS, VCenterSession

A = "/admin/v1"
DISKS = (("vm-web", "VM"), ("vm-web-disk1", "Disk"), ("vm-db", "VM"))


BULK_KEYS = 100
# Records every text the re-wrap progress line of instance vsphere shows, as it changes.
WATCH_REWRAP_TEXT = """() => {
  window.rewrapTexts = [];
  new MutationObserver(() => {
    const line = document.getElementById("rewrap-text-vsphere");
    if (line && window.rewrapTexts.at(-1) !== line.textContent) {
      window.rewrapTexts.push(line.textContent);
    }
  }).observe(document.getElementById("view"), {subtree: true, childList: true,
                                                characterData: true});
}"""


def _percent(text: str) -> float | None:
    """The percentage of a "Re-wrap running: 40% (60 objects left)" line; None otherwise."""
    match = re.match(r"Re-wrap running: ([0-9.]+)% \((\d+) objects left\)", text)
    return float(match.group(1)) if match else None


def _download(page: Any, selector: str, target: Path) -> str:
    with page.expect_download() as download:
        page.locator(selector).click()
    download.value.save_as(target)
    return target.read_text()


def _key_pem(key: Any) -> str:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _esxi_csr(tmp_path: Path) -> tuple[Path, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esxi01.example.com")]))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "esxi01.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path, key


def _get(server: KmipdServer, credentials: tuple[Path, Path], uid: str) -> Any:
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        return kmip.item(connection.call(kmip.get(uid)))


def _material(server: KmipdServer, credentials: tuple[Path, Path], uid: str) -> bytes:
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        return kmip.key_material(connection.call(kmip.get(uid)))


def _row_cell(page: Any, uid: str, column: int) -> Any:
    """A cell of the inventory row of ``uid`` (column 0 is the selection box)."""
    return page.locator(f'#keys tr[data-uid="{uid}"] td').nth(column)


def _wizard(console: Console, server: KmipdServer, tmp_path: Path, shots: Path) -> dict[str, Any]:
    page = console.page
    # 1. A new root key.
    page.get_by_label("Name of a new root key").fill("vSphere CRK")
    page.locator("#root-key-next").click()
    expect(page.locator("#root-key-result")).to_contain_text("Root key: ")
    root_key_id = (page.locator("#root-key-result").text_content() or "").split(": ")[1]
    # 2. The instance, bound to it.
    page.get_by_label("Instance name").fill("vsphere")
    page.locator("#instance-create").click()
    expect(page.locator("#instance-result")).to_contain_text(
        f"Instance vsphere created, bound to root key {root_key_id}"
    )
    # 3a. Paste a PEM: an old vCenter certificate that expires in 10 days.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    old_cert, old_key = kmip.certificate("vcenter-old", eku=None, not_after=soon)
    old_pem = old_cert.public_bytes(serialization.Encoding.PEM).decode()
    old = write_pair(tmp_path, "vcenter-old", old_pem, _key_pem(old_key))
    page.get_by_label("Certificate", exact=True).fill(old_pem)
    page.locator("#cert-upload").click()
    expect(page.locator("#status")).to_contain_text("CN=vcenter-old allowed on vsphere")
    # 3b. Upload an ESXi host's CSR; the signed certificate comes back as a download.
    csr_path, host_key = _esxi_csr(tmp_path)
    page.locator("#csr-file").set_input_files(str(csr_path))
    signed_pem = _download(page, "#csr-sign", tmp_path / "esxi01-signed.pem")
    host = write_pair(tmp_path, "esxi01", signed_pem, _key_pem(host_key))
    # 3c. Issue vCenter's certificate and private key; download both.
    page.get_by_label("Common name").fill("vcenter01")
    page.locator("#cert-issue").click()
    vcenter_pem = _download(page, "#download-cert", tmp_path / "vcenter01.pem")
    vcenter_key = _download(page, "#download-key", tmp_path / "vcenter01-key.pem")
    vcenter = write_pair(tmp_path, "vcenter01", vcenter_pem, vcenter_key)
    assert "PRIVATE KEY" in vcenter_key
    # 4. The KMS CA, exactly the server's CA.
    assert _download(page, "#download-ca", tmp_path / "kmipd-ca.pem") == server.ca.read_text()
    # 5. The endpoints and the copyable summary.
    summary = page.locator("#summary")
    expect(summary).to_have_value(re.compile("vCenter client certificate SHA-256: [0-9a-f]{64}"))
    text = summary.input_value()
    assert "Key provider instance: vsphere" in text and f"Root key: {root_key_id}" in text
    assert f":{server.kmip_port}" in text
    expect(page.locator("#endpoints")).to_contain_text(f"127.0.0.1:{server.kmip_port}")
    console.screenshot(shots, "1-setup-wizard")
    return {"root_key_id": root_key_id, "vcenter": vcenter, "host": host, "old": old}


def _vcenter_creates_keys(
    server: KmipdServer, vcenter: tuple[Path, Path], host: tuple[Path, Path]
) -> dict[str, str]:
    """vCenter creates a tagged key per VM and disk; the ESXi host fetches each one."""
    uids: dict[str, str] = {}
    with server.connect(context=server.tls_context(certificate=vcenter)) as connection:
        session = VCenterSession(connection)
        session.dv0()
        for name, component in DISKS:
            uid = session.create_key()
            session.tag(
                uid,
                (
                    ("x-Name", name),
                    ("x-Component", component),
                    ("x-Identifier", f"id-{name}"),
                    *PRODUCT_TAGS,
                ),
            )
            session.activate(uid)
            uids[name] = uid
    with server.connect(context=server.tls_context(certificate=host)) as connection:
        esxi = VCenterSession(connection)
        esxi.dv0()
        for uid in uids.values():
            esxi.get(uid)
    return uids


def _second_instance(server: KmipdServer, tmp_path: Path) -> tuple[tuple[Path, Path], list[str]]:
    """Instance tenant-b with a client certificate and two keys, set up through the API."""
    with https_client(server) as http:
        http.headers.update(bearer(server.admin_api_key))
        assert http.post(f"{A}/instances", json={"name": "tenant-b"}).status_code == 201
        issued = http.post(
            f"{A}/instances/tenant-b/certificates/issue", json={"common_name": "vcenter-b"}
        ).json()
    credentials = write_pair(
        tmp_path, "tenant-b", issued["certificate"]["pem"], issued["private_key_pem"]
    )
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        uids = [kmip.created_uid(connection.call(kmip.create_aes())) for _ in range(2)]
    return credentials, uids


def test_console_walkthrough(
    playwright_browser: Any, console_server: KmipdServer, screenshots: Path, tmp_path: Path
) -> None:
    server = console_server
    console = Console.open(playwright_browser, server)
    page = console.page
    try:
        console.sign_in(server.admin_api_key)
        page.locator('#view > [data-page="setup"][aria-busy="false"]').wait_for()
        # The API key was exchanged for a token and is kept nowhere in the browser.
        stored = page.evaluate("() => JSON.stringify([sessionStorage, localStorage])")
        assert server.admin_api_key not in stored and "eyJ" in stored
        assert page.get_by_label("API key").count() == 0

        setup = _wizard(console, server, tmp_path, screenshots)
        vcenter, host = setup["vcenter"], setup["host"]
        uids = _vcenter_creates_keys(server, vcenter, host)
        material = {name: _material(server, vcenter, uid) for name, uid in uids.items()}

        # The inventory shows the keys with their VM names, components and fetching client.
        console.go("#/keys?instance=vsphere")
        rows = page.locator("#keys tbody tr")
        expect(rows).to_have_count(3)
        for name, component in DISKS:
            uid = uids[name]
            expect(_row_cell(page, uid, 1)).to_have_text(name)
            expect(_row_cell(page, uid, 2)).to_have_text(component)
            expect(_row_cell(page, uid, 4)).to_have_text("Active")
            expect(_row_cell(page, uid, 7)).to_have_text("CN=esxi01.example.com")
        page.get_by_label("Search").fill("DISK1")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-uid", uids["vm-web-disk1"])
        page.get_by_label("Search").fill("")
        page.locator('th button[data-sort="vm"]').click()
        expect(rows.first.locator("td").nth(1)).to_have_text("vm-db")
        page.locator('th button[data-sort="vm"]').click()
        expect(rows.first.locator("td").nth(1)).to_have_text("vm-web-disk1")
        console.screenshot(screenshots, "2-key-inventory")

        # Delete one disk's key: the confirmation names how many keys and which VM.
        gone = uids["vm-web-disk1"]
        page.locator(f'#keys tr[data-uid="{gone}"] input[type=checkbox]').check()
        page.locator("#delete-selected").click()
        expect(page.locator("#confirm-text")).to_contain_text(
            "Delete 1 key of instance vsphere, used by: vm-web-disk1?"
        )
        console.screenshot(screenshots, "3-delete-confirmation")
        page.locator("#confirm-ok").click()
        expect(_row_cell(page, gone, 4)).to_have_text("Destroyed")
        for credentials in (vcenter, host):
            refused = _get(server, credentials, gone)
            assert refused.result_status == ResultStatus.OPERATION_FAILED
            assert refused.result_reason == ResultReason.ITEM_NOT_FOUND
        for name in ("vm-web", "vm-db"):
            assert _material(server, host, uids[name]) == material[name]

        # Nothing here was left unfetched for a day.
        page.get_by_label("Not fetched for").fill("1")
        page.locator("#show-stale").click()
        expect(page.locator("#keys-heading")).to_have_text(
            "Keys of vsphere not fetched for 1 days"
        )
        expect(rows).to_have_count(0)

        # Rotate the root key and watch the re-wrap to the end: with 100 more keys, the job
        # (batches of 20, paced) runs long enough for the page to show it under way.
        with server.connect(context=server.tls_context(certificate=vcenter)) as connection:
            for _ in range(BULK_KEYS):
                kmip.created_uid(connection.call(kmip.create_aes()))
        console.go("#/root-keys")
        card = page.locator('section[data-instance="vsphere"]')
        expect(card).to_contain_text("Versions (newest first): 1:")
        page.evaluate(WATCH_REWRAP_TEXT)
        card.locator('[data-action="rotate"]').click()
        card = page.locator('section[data-instance="vsphere"]')
        expect(card.locator('[id="rewrap-text-vsphere"]')).to_contain_text(
            "Re-wrap done: every object is on wrapping key version 2", timeout=60_000
        )
        progress = [_percent(text) for text in page.evaluate("() => window.rewrapTexts")]
        running = [p for p in progress if p is not None]
        assert running and running == sorted(running) and running[0] < 100, progress
        expect(card).to_contain_text("Versions (newest first): 2:")
        expect(card.locator("progress")).to_have_attribute("value", "100")
        with https_client(server) as http:
            status = http.get(
                f"{A}/instances/vsphere/rewrap", headers=bearer(server.admin_api_key)
            ).json()
        assert (status["state"], status["objects_remaining"]) == ("done", 0)
        assert status["current_version"] == status["target_version"] == 2
        for name in ("vm-web", "vm-db"):
            assert _material(server, vcenter, uids[name]) == material[name]
        console.screenshot(screenshots, "4-root-keys-rotated")
        # A rotation schedule, saved from the card.
        card.get_by_label("Rotate every (days, empty: never)").fill("30")
        card.locator('[data-action="schedule"]').click()
        expect(page.locator("#status")).to_contain_text("vsphere rotates every 30 days.")
        with https_client(server) as http:
            shown = http.get(f"{A}/instances/vsphere", headers=bearer(server.admin_api_key))
        assert shown.json()["rotation_days"] == 30

        # Delete the root key of a second instance: its keys fail, the first's do not.
        tenant_b, b_uids = _second_instance(server, tmp_path)
        b_material = _material(server, tenant_b, b_uids[0])
        console.go("#/root-keys")
        card_b = page.locator('section[data-instance="tenant-b"]')
        # Disable stops the instance at once; enable brings it back.
        card_b.locator('[data-action="disable"]').click()
        expect(card_b.locator('[data-field="state"]')).to_have_text("disabled")
        disabled = _get(server, tenant_b, b_uids[0])
        assert disabled.result_status == ResultStatus.OPERATION_FAILED
        page.wait_for_timeout(RESTORE_DELAY * 1000 + 100)
        card_b.locator('[data-action="enable"]').click()
        expect(card_b.locator('[data-field="state"]')).to_have_text("active")
        assert _material(server, tenant_b, b_uids[0]) == b_material
        page.wait_for_timeout(RESTORE_DELAY * 1000 + 100)
        card_b.locator('[data-action="delete"]').click()
        expect(page.locator("#confirm-text")).to_contain_text(
            "This crypto-shreds 2 keys of instance tenant-b"
        )
        page.locator("#confirm-ok").click()
        card_b = page.locator('section[data-instance="tenant-b"]')
        expect(card_b.locator('[data-field="state"]')).to_have_text("deleted")
        for uid in b_uids:
            failed = _get(server, tenant_b, uid)
            assert failed.result_status == ResultStatus.OPERATION_FAILED
        assert _material(server, vcenter, uids["vm-web"]) == material["vm-web"]
        console.screenshot(screenshots, "5-root-key-deleted")
        # Within the restore window it comes back, and so do its keys.
        page.wait_for_timeout(RESTORE_DELAY * 1000 + 100)
        card_b.locator('[data-action="restore"]').click()
        card_b = page.locator('section[data-instance="tenant-b"]')
        expect(card_b.locator('[data-field="state"]')).to_have_text("active")
        assert _material(server, tenant_b, b_uids[0]) == b_material

        # Certificates: the one expiring in 10 days is flagged; last seen is shown.
        console.go("#/certificates")
        soon = page.locator("tr.warn", has_text="CN=vcenter-old")
        expect(soon).to_contain_text("expires in 9 days")
        expect(page.locator("tr", has_text="CN=vcenter01")).not_to_have_class("warn")
        console.screenshot(screenshots, "6-certificates")
        # Delete it: confirmed, then gone from the list, and its holder is refused over KMIP.
        assert not kmip_refused(server, setup["old"])
        soon.get_by_role("button", name="Delete").click()
        expect(page.locator("#confirm-cancel")).to_be_focused()  # the safe choice first
        expect(page.locator("#confirm-text")).to_contain_text("Stop allowing CN=vcenter-old")
        page.locator("#confirm-ok").click()
        expect(page.locator("tr", has_text="CN=vcenter-old")).to_have_count(0)
        with https_client(server) as http:
            listed = http.get(
                f"{A}/instances/vsphere/certificates", headers=bearer(server.admin_api_key)
            ).json()["certificates"]
        subjects = sorted(c["subject"] for c in listed)
        assert subjects == ["CN=esxi01.example.com", "CN=vcenter01,O=kmipd"], subjects
        assert kmip_refused(server, setup["old"])

        # Activity: the failed KMIP Gets of the shredded instance are in the audit trail.
        console.go("#/activity")
        page.get_by_label("Instance").select_option("tenant-b")
        page.get_by_label("Result").select_option("failure")
        page.get_by_role("button", name="Filter").click()
        failures = page.locator("#audit tbody tr")
        expect(failures.first).to_contain_text("Get")
        assert page.locator("svg.chart rect").count() == 30
        # Traffic while the page is open shows up in the chart at its next /metrics sample.
        for _ in range(3):
            assert _material(server, vcenter, uids["vm-db"]) == material["vm-db"]
        with socket.create_connection(("127.0.0.1", server.kmip_port)) as not_tls:
            not_tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            not_tls.recv(1024)
        expect(page.locator("#chart-caption")).to_contain_text(
            re.compile(r"Last 15 minutes: ([3-9]|\d\d+) KMIP operations, [1-9]\d* failed"),
            timeout=15_000,
        )
        assert page.locator("svg.chart rect[height]:not([height='0'])").count() >= 2
        console.screenshot(screenshots, "7-activity")

        console.go("#/health")
        expect(page.locator('tr[data-check="store"]')).to_contain_text("ok")
        expect(page.locator('tr[data-check="root_key_provider"]')).to_contain_text("ok")
        console.screenshot(screenshots, "8-health")

        assert console.refused() == []
        assert [e for e in console.api_exchanges() if e.status >= 500] == []
        assert console.script_errors == []
    finally:
        console.close()

