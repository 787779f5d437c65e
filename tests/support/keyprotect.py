"""A real kmipd for the Key Protect-compatible API, and an httpx client for it."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import KmipdServer, init_server

KEY_TYPE = "application/vnd.ibm.kms.key+json"
ERROR_TYPE = "application/vnd.ibm.kms.error+json"

# Key Protect's time rules off, so tests can rotate, enable and restore at once.
FAST_RULES = {"rotation_interval": 0.0, "action_delay": 0.0, "purge_delay": 0.0}


@contextmanager
def keyprotect_server(data_dir: Path, **settings: Any) -> Iterator[KmipdServer]:
    server = init_server(data_dir)
    server.configure(keyprotect={**FAST_RULES, **settings})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def instance_id(server: KmipdServer) -> str:
    return (server.data_dir / "keyprotect-instance-id").read_text().strip()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def create_body(name: str, **fields: Any) -> dict[str, Any]:
    resource = {"type": KEY_TYPE, "name": name, "extractable": False, **fields}
    return {
        "metadata": {"collectionType": KEY_TYPE, "collectionTotal": 1},
        "resources": [resource],
    }


class KpClient:
    """Raw HTTP to /api/v2 with one credential (an API key used as the bearer token)."""

    def __init__(self, server: KmipdServer, credential: str) -> None:
        context = ssl.create_default_context(cafile=str(server.ca))
        self.http = httpx.Client(base_url=server.https_url, verify=context, timeout=15)
        self.instance = instance_id(server)
        self.credential = credential

    def close(self) -> None:
        self.http.close()

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.credential}",
            "Bluemix-Instance": self.instance,
            **extra,
        }

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = "application/vnd.ibm.kms.key_action+json",
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        all_headers = self.headers(**(headers or {}))
        content = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            if content_type:
                all_headers["Content-Type"] = content_type
        return self.http.request(
            method, "/api/v2" + path, content=content, headers=all_headers, params=params
        )

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/keys", create_body(name, **fields), content_type=KEY_TYPE)
        assert response.status_code == 201, response.text
        key: dict[str, Any] = response.json()["resources"][0]
        return key

    def action(self, key_id: str, name: str, body: Any = None) -> httpx.Response:
        return self.request("POST", f"/keys/{key_id}/actions/{name}", body)

    def get(self, key_id: str, suffix: str = "") -> httpx.Response:
        return self.request("GET", f"/keys/{key_id}{suffix}")


def reason(response: httpx.Response) -> str:
    """The Key Protect reason code of an error response (checking the envelope)."""
    body = response.json()
    assert body["metadata"] == {"collectionType": ERROR_TYPE, "collectionTotal": 1}, body
    (resource,) = body["resources"]
    assert resource["errorMsg"].endswith("Please see `reasons` for more details."), resource
    (first,) = resource["reasons"]
    assert first["status"] == response.status_code
    assert first["moreInfo"].startswith("https://")
    return str(first["code"])


def new_api_key(server: KmipdServer, role: str, service_id: str = "remote-provider") -> str:
    """A new API key with ``role`` on ``server``, made with its admin API key."""
    context = ssl.create_default_context(cafile=str(server.ca))
    with httpx.Client(base_url=server.https_url, verify=context, timeout=15) as http:
        response = http.post(
            "/admin/v1/apikeys",
            json={"service_id": service_id, "role": role},
            headers={"Authorization": f"Bearer {server.admin_api_key}"},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])
