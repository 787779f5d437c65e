"""T5: no secret in any log, error message, audit record or stored row (issue 7, item 4).

Two real servers at the most verbose log level (``--log-level debug``): a local kmipd on
PostgreSQL, reached through a DSN whose password is a canary, with a root key provider that
is a remote Key Protect-compatible kmipd, reached with a canary API key. Every kind of secret
goes in: key material Registered over KMIP (a symmetric key and a secret data object, and a
Register the server refuses), a KMIP Credential with a canary password, a Key
Protect-compatible import and wrap, the admin API key, a new API key made through the API, a
guessed (wrong) API key, the DSN password. Errors are provoked: malformed requests, a
tampered unwrap ciphertext, unknown UIDs, the provider down.

Then every place a secret could land is searched for every canary, raw, hex (lower and
upper) and base64 (standard and urlsafe, at each alignment): the servers' logs, every audit
record, every HTTP error body and KMIP error message received, the CLI's output, every file of
both data directories (the SQLite database of the remote, its -wal, keyrings) and a
``pg_dump`` of the local database. Zero hits. Two files hold secrets by design and are left
out: ``kmipd.toml`` (the DSN and the provider's API key are configuration) and
``admin-api-key`` (the operator's credential).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kmipd import config
from kmipd.protocol import messages
from kmipd.protocol._generated import KeyFormatType, ObjectType, Operation, ResultStatus, Tag
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import (
    Authentication,
    KeyBlock,
    KeyValue,
    ProtocolVersion,
    SymmetricKey,
)
from kmipd.protocol.payloads import GetRequest, RegisterRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item
from kmipd.store.records import AuditQuery
from tests.integration.test_canary import encodings, register_aes, register_secret, scan
from tests.support import kmip
from tests.support.admin import bearer, https_client, write_pair
from tests.support.keyprotect import FAST_RULES, KpClient, b64, create_body, new_api_key
from tests.support.server import KmipdServer, init_server

CONFIG_FILES = {"kmipd.toml", "admin-api-key"}


def canary(label: str, size: int = 32) -> bytes:
    """Recognisable bytes: a label, then random hex up to ``size``."""
    head = f"CANARY-{label}-".encode()
    return head + secrets.token_hex(size).encode()[: size - len(head)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.support.postgres import fresh_database

    with fresh_database("no_secrets") as url:
        yield url


class Seen:
    """Everything a client was told that is searched: error bodies, KMIP error messages, CLI
    output."""

    def __init__(self) -> None:
        self.texts: dict[str, bytes] = {}

    def add(self, label: str, content: bytes | str) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.texts[f"{label} #{len(self.texts)}"] = data

    def http(self, label: str, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            self.add(f"HTTP {response.status_code} body of {label}", response.content)
        return response

    def kmip(self, label: str, response: bytes) -> bytes:
        decoded = messages.decode_response(response)
        for item in decoded.batch_items:
            if item.result_status != ResultStatus.SUCCESS:
                self.add(f"KMIP error of {label}", repr((item.result_reason, item.result_message)))
        return response


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user_host = rest.split("@", 1)
    host = user_host[-1]
    user = user_host[0].split(":", 1)[0] if len(user_host) == 2 else "postgres"
    return f"{scheme}://{user}:{password}@{host}"


def credential_request(password: str, uid: str) -> bytes:
    credential = Item(
        Tag.CREDENTIAL,
        STRUCTURE,
        [
            Item(Tag.CREDENTIAL_TYPE, ENUMERATION, 1),  # Username and Password
            Item(
                Tag.CREDENTIAL_VALUE,
                STRUCTURE,
                [
                    Item(Tag.USERNAME, TEXT_STRING, "operator"),
                    Item(Tag.PASSWORD, TEXT_STRING, password),
                ],
            ),
        ],
    )
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(
                protocol_version=ProtocolVersion.of((1, 4)),
                authentication=Authentication(credentials=[credential]),
            ),
            batch_items=[
                messages.RequestBatchItem(
                    operation=Operation.GET, payload=GetRequest(unique_identifier=uid)
                )
            ],
        )
    )


def cli(seen: Seen, server: KmipdServer, *args: str, api_key: str | None = None) -> int:
    command = [sys.executable, "-m", "kmipd", *args, "--data-dir", str(server.data_dir)]
    if api_key is not None:
        command += ["--api-key", api_key]
    done = subprocess.run(command, capture_output=True, timeout=60)
    seen.add(f"stdout of kmipd {' '.join(args)}", done.stdout)
    seen.add(f"stderr of kmipd {' '.join(args)}", done.stderr)
    return done.returncode


def files_of(directory: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name not in CONFIG_FILES:
            try:
                found[f"{directory.name}/{path.relative_to(directory)}"] = path.read_bytes()
            except OSError:
                continue
    return found


def audit_text(server: KmipdServer) -> bytes:
    records, _ = server.with_store(lambda s: s.audit_records(AuditQuery(limit=100_000)))
    assert records, "no audit records: the search would pass vacuously"
    return "\n".join(repr(dataclasses.astuple(r)) for r in records).encode()


def pg_dump(url: str) -> bytes:
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    done = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_no_canary_in_logs_errors_audit_or_store(tmp_path: Path, pg_url: str) -> None:
    seen = Seen()
    canaries: dict[str, bytes] = {
        "kmip-aes-key": canary("AES", 32),
        "kmip-secret-data": canary("SECRET", 40),
        "kmip-refused-key": canary("REFUSED", 32),
        "kmip-provider-key": canary("REMOTE", 32),
        "kmip-credential-password": canary("KMIPPW", 24),
        "keyprotect-import": canary("KPIMPORT", 32),
        "keyprotect-dek": canary("KPDEK", 32),
        "guessed-api-key": canary("GUESS", 40),
        "dsn-password": canary("DSNPW", 24),
    }
    dsn_password = canaries["dsn-password"].decode()

    remote = init_server(tmp_path / "remote")
    remote.log_level = "debug"
    remote.configure(keyprotect=FAST_RULES)
    remote.start()
    local: KmipdServer | None = None
    try:
        provider_api_key = new_api_key(remote, "Manager", "kmipd-local")
        canaries["provider-api-key"] = provider_api_key.encode()
        canaries["remote-admin-api-key"] = remote.admin_api_key.encode()

        store_url = with_password(pg_url, dsn_password)
        local = init_server(tmp_path / "local", store_url=store_url)
        local.log_level = "debug"
        local.configure(keyprotect=FAST_RULES)
        settings = config.load(local.data_dir)
        provider = config.ProviderSettings(
            "remote",
            "keyprotect",
            {
                "url": remote.https_url,
                "instance_id": (remote.data_dir / "keyprotect-instance-id").read_text().strip(),
                "api_key": provider_api_key,
                "ca": str(remote.ca),
                "timeout": 2.0,
            },
        )
        settings = dataclasses.replace(settings, root_key_providers=(provider,))
        (local.data_dir / config.CONFIG_FILE).write_text(config.render(settings), "utf-8")
        local.start()
        canaries["local-admin-api-key"] = local.admin_api_key.encode()
        exercise(local, remote, canaries, seen, tmp_path)
        # The servers' view after everything: audit and the stored rows.
        seen.add("local audit", audit_text(local))
        seen.add("remote audit", audit_text(remote))
        seen.add("pg_dump of the local store", pg_dump(pg_url))
    finally:
        if local is not None:
            local.stop()
        remote.stop()

    # The material really went in and came back (checked in exercise), and the logs are
    # debug logs (so the search covers the most verbose output).
    local_log, remote_log = local.log(), remote.log()
    assert " DEBUG " in local_log and " DEBUG " in remote_log
    searched = dict(seen.texts)
    searched["local serve.log"] = local_log.encode()
    searched["remote serve.log"] = remote_log.encode()
    searched.update(files_of(local.data_dir))
    searched.update(files_of(remote.data_dir))
    assert any(name.endswith(".db") for name in searched), sorted(searched)
    hits = scan(searched, canaries)
    print(
        f"[measure] no secrets: {len(canaries)} canaries x {len(encodings(b'x' * 32))} forms "
        f"in {len(searched)} texts ({sum(map(len, searched.values()))} bytes): {len(hits)} hits"
    )
    assert hits == []
    # The search finds a canary that is there (it can fail).
    planted = {"planted": b"..." + base64.urlsafe_b64encode(b"\7" + canaries["dsn-password"])}
    assert scan(planted, {"dsn-password": canaries["dsn-password"]})


def exercise(
    local: KmipdServer,
    remote: KmipdServer,
    canaries: dict[str, bytes],
    seen: Seen,
    tmp_path: Path,
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    # -- KMIP: registered canaries, fetched back; errors ---------------------------------------
    with local.connect() as connection:
        aes_uid = kmip.created_uid(connection.call(register_aes(canaries["kmip-aes-key"])))
        secret_uid = kmip.created_uid(
            connection.call(register_secret(canaries["kmip-secret-data"]))
        )
        for uid, label in ((aes_uid, "kmip-aes-key"), (secret_uid, "kmip-secret-data")):
            assert kmip.key_material(connection.call(kmip.get(uid))) == canaries[label]
        seen.kmip("get of a missing UID", connection.call(kmip.get(missing)))
        seen.kmip(
            "credential",
            connection.call(
                credential_request(canaries["kmip-credential-password"].decode(), aes_uid)
            ),
        )
    # A Register whose material is too short for its length (refused with a message).
    short = SymmetricKey(
        KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=canaries["kmip-refused-key"]),
            cryptographic_algorithm=kmip.AES,
            cryptographic_length=512,
        )
    )
    bad_register = kmip.request(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SYMMETRIC_KEY,
            template_attribute=TemplateAttribute(
                attributes=[Attribute("Cryptographic Usage Mask", 12, None, INTEGER)]
            ),
            managed_object=short,
        ),
    )
    with local.connect() as connection:
        response = seen.kmip("register too short", connection.call(bad_register))
        assert kmip.item(response).result_status != ResultStatus.SUCCESS
    # Malformed: the canary inside a message whose framing is intact but whose body is not.
    garbage = canaries["kmip-aes-key"] + b"\x00" * 8
    malformed = b"\x42\x00\x78\x01" + len(garbage).to_bytes(4, "big") + garbage
    with local.connect() as connection, contextlib.suppress(OSError, ConnectionError, EOFError):
        seen.add("malformed reply", connection.call(malformed))
    # A truncated Register (the canary is in it, the body length lies).
    whole = register_aes(canaries["kmip-aes-key"])
    truncated = whole[:8] + whole[8:-24]
    truncated = truncated[:4] + (len(truncated) - 8).to_bytes(4, "big") + truncated[8:]
    with local.connect() as connection, contextlib.suppress(OSError, ConnectionError, EOFError):
        seen.add("truncated reply", connection.call(truncated))

    # -- HTTPS: API keys, an instance on the remote provider, Key Protect ---------------------
    with https_client(local) as http:
        http.headers.update(bearer(local.admin_api_key))
        made = http.post("/admin/v1/apikeys", json={"service_id": "kp-user", "role": "Manager"})
        assert made.status_code == 201, made.text
        new_key = str(made.json()["api_key"])
        canaries["new-api-key"] = new_key.encode()
        created = seen.http(
            "instance on remote",
            http.post("/admin/v1/instances", json={"name": "r", "provider": "remote"}),
        )
        assert created.status_code == 201, created.text
        issued = http.post(
            "/admin/v1/instances/r/certificates/issue", json={"common_name": "r client"}
        )
        assert issued.status_code == 201, issued.text
        seen.http("unknown key", http.get(f"/admin/v1/instances/default/keys/{missing}"))
        seen.http("unknown instance", http.get("/admin/v1/instances/nope/keys"))
        seen.http(
            "bad json", http.post("/admin/v1/apikeys", content=b"{" + canaries["guessed-api-key"])
        )
    guess = canaries["guessed-api-key"].decode()
    with https_client(local) as http:
        for path in ("/admin/v1/instances", "/admin/v1/apikeys", "/api/v2/keys"):
            response = seen.http(f"guessed key on {path}", http.get(path, headers=bearer(guess)))
            assert response.status_code in (400, 401, 403), (path, response.status_code)
        seen.http(
            "guessed key as basic",
            http.get(
                "/admin/v1/instances", headers={"Authorization": f"Basic {b64(guess.encode())}"}
            ),
        )
    body = issued.json()
    creds = write_pair(tmp_path, "r", body["certificate"]["pem"], body["private_key_pem"])
    with local.connect(context=local.tls_context(certificate=creds)) as connection:
        remote_uid = kmip.created_uid(connection.call(register_aes(canaries["kmip-provider-key"])))
        assert (
            kmip.key_material(connection.call(kmip.get(remote_uid)))
            == canaries["kmip-provider-key"]
        )

    kp = KpClient(local, new_key)
    try:
        imported = kp.request(
            "POST",
            "/keys",
            create_body("imported", payload=b64(canaries["keyprotect-import"])),
            content_type="application/vnd.ibm.kms.key+json",
        )
        assert imported.status_code == 201, imported.text
        kid = imported.json()["resources"][0]["id"]
        wrapped = kp.action(kid, "wrap", {"plaintext": b64(canaries["keyprotect-dek"])})
        assert wrapped.status_code == 200, wrapped.text
        ciphertext = wrapped.json()["ciphertext"]
        back = kp.action(kid, "unwrap", {"ciphertext": ciphertext})
        assert base64.b64decode(back.json()["plaintext"]) == canaries["keyprotect-dek"]
        # Errors: a tampered ciphertext, a wrong AAD, broken bodies with the canary inside.
        envelope = json.loads(base64.b64decode(ciphertext))
        tampered = dict(envelope)
        for field, value in envelope.items():
            if isinstance(value, str) and len(value) > 20:
                raw = bytearray(base64.b64decode(value + "=" * (-len(value) % 4)))
                raw[len(raw) // 2] ^= 1
                tampered[field] = base64.b64encode(bytes(raw)).decode()
                break
        bad = base64.b64encode(json.dumps(tampered).encode()).decode()
        seen.http("tampered unwrap", kp.action(kid, "unwrap", {"ciphertext": bad}))
        seen.http("wrong aad", kp.action(kid, "unwrap", {"ciphertext": ciphertext, "aad": ["x"]}))
        seen.http(
            "unwrap of plaintext",
            kp.action(kid, "unwrap", {"ciphertext": b64(canaries["keyprotect-dek"])}),
        )
        seen.http(
            "wrap, bad base64",
            kp.action(kid, "wrap", {"plaintext": canaries["keyprotect-dek"].decode() + "%"}),
        )
        seen.http(
            "wrap, broken JSON",
            kp.request(
                "POST",
                f"/keys/{kid}/actions/wrap",
                b'{"plaintext": "' + b64(canaries["keyprotect-dek"]).encode(),
            ),
        )
        seen.http(
            "import, bad size",
            kp.request(
                "POST",
                "/keys",
                create_body("bad", payload=b64(canaries["keyprotect-import"][:20])),
                content_type="application/vnd.ibm.kms.key+json",
            ),
        )
        seen.http("unknown key", kp.get(missing))
    finally:
        kp.close()

    # -- the CLI, with the right key, a guessed key -------------------------------------------
    assert cli(seen, local, "apikey", "list") == 0
    assert cli(seen, local, "key", "list", "default") == 0
    assert cli(seen, local, "key", "show", "default", missing) != 0
    assert cli(seen, local, "apikey", "list", api_key=guess) != 0

    # -- the provider fails: the remote is down ------------------------------------------------
    remote.stop()
    try:
        with local.connect(context=local.tls_context(certificate=creds)) as connection:
            response = seen.kmip(
                "get while the provider is down", connection.call(kmip.get(remote_uid))
            )
        # Served from a cache or refused: either way nothing secret in the error.
        assert kmip.item(response).result_status in (
            ResultStatus.SUCCESS,
            ResultStatus.OPERATION_FAILED,
        )
        with https_client(local) as http:
            http.headers.update(bearer(local.admin_api_key))
            seen.http(
                "rotate while the provider is down", http.post("/admin/v1/instances/r/rotate")
            )
            seen.http(
                "instance while the provider is down",
                http.post("/admin/v1/instances", json={"name": "r2", "provider": "remote"}),
            )
    finally:
        remote.start()
    os.sync()
