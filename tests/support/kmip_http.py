"""A KMIP over HTTPS client for tests: ``POST /kmip`` on a real ``kmipd serve``, over TLS
with a client certificate, in any of the three encodings (TTLV, KMIP XML, KMIP JSON)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from kmipd.protocol import json_encoding, ttlv, xml_encoding
from kmipd.protocol.ttlv import Item
from tests.support.server import KmipdServer


@dataclass(frozen=True)
class Encoding:
    name: str
    content_type: str
    encode: Callable[[Item], bytes]
    decode: Callable[[bytes], Item]


ENCODINGS = {
    "ttlv": Encoding("ttlv", "application/octet-stream", ttlv.encode, ttlv.decode),
    "xml": Encoding(
        "xml",
        "text/xml",
        lambda tree: xml_encoding.to_xml(tree).encode(),
        xml_encoding.from_xml,
    ),
    "json": Encoding(
        "json",
        "application/json",
        lambda tree: json_encoding.to_json(tree).encode(),
        json_encoding.from_json,
    ),
}


class KmipHttpsClient:
    """One keep-alive HTTPS connection to the server's /kmip."""

    def __init__(self, server: KmipdServer, context: ssl.SSLContext, timeout: float = 10.0):
        self._http = httpx.Client(base_url=server.https_url, verify=context, timeout=timeout)

    @classmethod
    def for_instance(cls, server: KmipdServer, instance: str = "default") -> KmipHttpsClient:
        """With the client certificate of ``instance`` (see KmipdServer.credentials)."""
        return cls(server, server.tls_context(instance))

    def post(self, body: bytes, content_type: str | None) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return self._http.post("/kmip", content=body, headers=headers)

    def send(self, request: Item, encoding: str) -> Item:
        """A request message in ``encoding``; the response message, which must come back
        with 200 in the same encoding."""
        codec = ENCODINGS[encoding]
        response = self.post(codec.encode(request), codec.content_type)
        assert response.status_code == 200, (response.status_code, response.text[:500])
        media_type = response.headers["content-type"].partition(";")[0]
        assert media_type == codec.content_type, response.headers["content-type"]
        return codec.decode(response.content)

    def sender(self, encoding: str) -> Callable[[Item], Item]:
        """``send`` in one encoding: the transport of tests.support.oasis_harness.CaseRunner."""
        return lambda request: self.send(request, encoding)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KmipHttpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
