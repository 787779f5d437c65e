"""The HTTPS port: health without credentials; API keys, roles and IAM tokens for the rest."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.support.server import KmipdServer

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


@pytest.fixture(scope="module")
def http(shared_server: KmipdServer) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(shared_server.ca))
    with httpx.Client(base_url=shared_server.https_url, verify=context, timeout=10) as client:
        yield client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def new_key(http: httpx.Client, admin: str, role: str) -> dict[str, str]:
    response = http.post(
        "/admin/v1/apikeys",
        headers=bearer(admin),
        json={"service_id": f"svc-{role.lower()}", "role": role},
    )
    assert response.status_code == 201, response.text
    return response.json()


def token(http: httpx.Client, api_key: str, path: str = "/identity/token") -> httpx.Response:
    return http.post(path, data={"grant_type": APIKEY_GRANT, "apikey": api_key})


def test_health_endpoints_need_no_credential(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "root_key_provider": "ok"}
    assert http.get("/metrics").status_code == 401  # it names instances: Reader and up
    reader = new_key(http, shared_server.admin_api_key, "Reader")["api_key"]
    metrics = http.get("/metrics", headers=bearer(reader))
    assert metrics.status_code == 200
    assert 'kmipd_managed_objects{instance="default"}' in metrics.text
    assert "kmipd_kmip_open_connections" in metrics.text


def test_openapi_document_is_served(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["info"]["title"] == "kmipd"
    assert "/identity/token" in document["paths"]


@pytest.mark.parametrize("path", ["/identity/token", "/oidc/token"])
def test_token_endpoint_trades_an_api_key_for_a_jwt(
    http: httpx.Client, shared_server: KmipdServer, path: str
) -> None:
    response = token(http, shared_server.admin_api_key, path)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["exp"] == body["expiration"]
    assert http.get("/admin/v1/apikeys", headers=bearer(body["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"grant_type": APIKEY_GRANT, "apikey": "kmipd-nope"}, "could not be found"),
        ({"grant_type": "password", "apikey": "x"}, "grant_type must be"),
        ({"grant_type": APIKEY_GRANT}, "apikey form field is missing"),
    ],
)
def test_token_endpoint_refuses_bad_grants_iam_style(
    http: httpx.Client, form: dict[str, str], message: str
) -> None:
    response = http.post("/identity/token", data=form)
    assert response.status_code == 400
    assert message in response.json()["errorMessage"]
    assert response.json()["errorCode"]


def test_no_credential_is_401_with_a_hint(http: httpx.Client) -> None:
    response = http.get("/admin/v1/apikeys")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["error"]["message"]
    assert http.get("/admin/v1/apikeys", headers=bearer("kmipd-wrong")).status_code == 401
    assert http.get("/admin/v1/apikeys", headers={"Authorization": "Basic eDp5"}).status_code == 401


@pytest.mark.parametrize("role", ["Reader", "Writer"])
def test_only_managers_manage_api_keys(
    http: httpx.Client, shared_server: KmipdServer, role: str
) -> None:
    key = new_key(http, shared_server.admin_api_key, role)["api_key"]
    for credential in (key, token(http, key).json()["access_token"]):
        response = http.get("/admin/v1/apikeys", headers=bearer(credential))
        assert response.status_code == 403
        assert "needs the Manager role" in response.json()["error"]["message"]
        created = http.post(
            "/admin/v1/apikeys",
            headers=bearer(credential),
            json={"service_id": "x", "role": "Manager"},
        )
        assert created.status_code == 403


def test_a_revoked_key_and_its_tokens_are_refused(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    admin = shared_server.admin_api_key
    created = new_key(http, admin, "Manager")
    access_token = token(http, created["api_key"]).json()["access_token"]
    assert http.get("/admin/v1/apikeys", headers=bearer(access_token)).status_code == 200
    assert (
        http.delete(f"/admin/v1/apikeys/{created['id']}", headers=bearer(admin)).status_code == 204
    )
    for credential in (created["api_key"], access_token):
        assert http.get("/admin/v1/apikeys", headers=bearer(credential)).status_code == 401
    assert token(http, created["api_key"]).status_code == 400
    again = http.delete(f"/admin/v1/apikeys/{created['id']}", headers=bearer(admin))
    assert again.status_code == 404
    listed = http.get("/admin/v1/apikeys", headers=bearer(admin)).json()["api_keys"]
    assert next(k for k in listed if k["id"] == created["id"])["revoked"] is not None
    assert all("api_key" not in k and "secret_hash" not in k for k in listed)


def test_expired_forged_and_unsigned_tokens_are_refused(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    good = jwt.decode(
        token(http, shared_server.admin_api_key).json()["access_token"],
        options={"verify_signature": False},
    )
    signing_key = (shared_server.data_dir / "api-token-key").read_bytes()
    now = int(time.time())
    expired = jwt.encode(
        {**good, "iat": now - 7200, "exp": now - 3600}, signing_key, algorithm="HS256"
    )
    forged = jwt.encode(good, b"not the server's key" * 2, algorithm="HS256")
    unsigned = jwt.encode(good, None, algorithm="none")
    for credential in (expired, forged, unsigned):
        assert http.get("/admin/v1/apikeys", headers=bearer(credential)).status_code == 401


def test_bad_api_key_requests_say_what_to_fix(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    admin = bearer(shared_server.admin_api_key)
    response = http.post(
        "/admin/v1/apikeys", headers=admin, json={"service_id": "x", "role": "Boss"}
    )
    assert response.status_code == 400
    assert "use Reader, Writer or Manager" in response.json()["error"]["message"]
    response = http.post("/admin/v1/apikeys", headers=admin, json={"role": "Reader"})
    assert response.status_code == 400
    assert "service_id" in response.json()["error"]["message"]
    response = http.post("/admin/v1/apikeys", headers=admin, content=b"{not json")
    assert response.status_code == 400


def test_metrics_count_kmip_items_latency_and_failed_handshakes(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    from kmipd.protocol import messages
    from kmipd.protocol._generated import Operation
    from kmipd.protocol.objects import ProtocolVersion
    from kmipd.protocol.payloads import DiscoverVersionsRequest

    request = messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 1))),
            batch_items=[
                messages.RequestBatchItem(
                    operation=Operation.DISCOVER_VERSIONS, payload=DiscoverVersionsRequest()
                )
            ],
        )
    )
    shared_server.call(request)
    no_client_certificate = ssl.create_default_context(cafile=str(shared_server.ca))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        shared_server.connect(context=no_client_certificate).call(request)
    text = http.get("/metrics", headers=bearer(shared_server.admin_api_key)).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("kmipd_kmip_batch_items_total")
        and 'operation="discover_versions"' in line
        and 'result="success"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "kmipd_kmip_message_seconds_count" in text
    failures = next(
        line for line in text.splitlines() if line.startswith("kmipd_kmip_handshake_failures_total")
    )
    assert float(failures.rsplit(" ", 1)[1]) >= 1


PUBLIC = {"/identity/token", "/oidc/token", "/healthz", "/readyz"}


def test_nothing_but_token_and_health_answers_without_a_credential(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    instance = (shared_server.data_dir / "keyprotect-instance-id").read_text().strip()
    paths = http.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        url = path
        for parameter in (
            "{name}",
            "{id}",
            "{uid}",
            "{fingerprint}",
            "{key_id}",
            "{alias}",
            "{version}",
        ):
            url = url.replace(parameter, "x")
        assert "{" not in url, f"fill the path parameters of {path}"
        for method in operations:
            response = http.request(method.upper(), url, headers={"Bluemix-Instance": instance})
            if path in PUBLIC:
                assert response.status_code != 401, f"{method} {path}"
            else:
                assert response.status_code == 401, f"{method.upper()} {path} answered anonymously"
                checked += 1
    assert checked >= 30
