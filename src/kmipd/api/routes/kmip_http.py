"""KMIP over HTTPS: ``POST /kmip`` (KMIP Additional Message Encodings v1.0, the HTTPS, XML
and JSON server profiles).

The body is one KMIP request message, encoded as its Content-Type says: TTLV
(``application/octet-stream``), the KMIP XML encoding (``text/xml``) or the KMIP JSON
encoding (``application/json``). The reply is the response message in the same encoding.

The caller is who its TLS client certificate says, exactly as on the KMIP port: the
certificate maps to an instance through :class:`~kmipd.service.identity.IdentityResolver`,
and the request runs through the same :class:`~kmipd.service.engine.KmipEngine`, with the same
decoding limits, and the same audit records (one per batch item, written by the engine).

Answers:

* 200 and a KMIP response message: the engine answered, whatever its Result Status (an
  invalid message, a refused operation and a success alike, as on the KMIP port).
* 400 and a KMIP response message (Result Reason Invalid Message, or the limit that was hit)
  in the request's encoding: the body is not TTLV, XML or JSON as its Content-Type says.
* 403 ``client_certificate_required`` / ``client_certificate_not_allowed``: the connection
  sent no client certificate, or one that no instance allows (one that no trusted CA or pin
  verifies fails the TLS handshake instead, as on the KMIP port).
* 415 ``unsupported_media_type``: any other Content-Type. 413 (``https.max_body_bytes``) comes
  from :mod:`kmipd.api.body_limit` before anything else runs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kmipd.api.audit_middleware import AUDITED_BY_ENGINE
from kmipd.api.errors import error_body
from kmipd.api.tls_peer import client_certificate_der
from kmipd.protocol import json_encoding, ttlv, xml_encoding
from kmipd.protocol._generated import ResultReason
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.limits import Limits
from kmipd.protocol.ttlv import Item
from kmipd.protocol.xml_encoding import message_version
from kmipd.service.engine import KmipEngine
from kmipd.service.identity import ClientIdentity, IdentityResolver
from kmipd.store.store import StoreUnavailable
from kmipd.transport.kmip_listener import Peer
from kmipd.transport.tls import fingerprint

PATH = "/kmip"

# Tags beyond two per item that a message may hold: an XML declaration, comments.
_XML_MARKUP_SLACK = 64


@dataclass(frozen=True, slots=True)
class Encoding:
    name: str
    media_type: str  # the reply's Content-Type
    decode: Callable[[bytes, Limits], Item]
    encode: Callable[[Item], bytes]


def _decode_xml(body: bytes, limits: Limits) -> Item:
    # Every element costs a '<' (and a closing tag one more; XML text and attribute values
    # cannot hold a raw '<'). Counting them first keeps a body of 250,000 empty elements
    # from holding the event loop in the parser before the item limits are checked.
    markup = body.count(b"<")
    if markup > 2 * limits.max_items_per_message + _XML_MARKUP_SLACK:
        raise DecodeError(
            f"{markup} tags: more than {limits.max_items_per_message} items in one message"
        )
    return xml_encoding.from_xml(body, limits)


def _encode_xml(tree: Item) -> bytes:
    return xml_encoding.to_xml(tree, indent=None).encode("utf-8")


def _decode_json(body: bytes, limits: Limits) -> Item:
    return json_encoding.from_json(body, limits)


def _encode_json(tree: Item) -> bytes:
    return json_encoding.to_json(tree).encode("utf-8")


# By the media type of the request's Content-Type (parameters such as charset ignored).
ENCODINGS: dict[str, Encoding] = {
    "application/octet-stream": Encoding(
        "TTLV", "application/octet-stream", ttlv.decode, ttlv.encode
    ),
    "text/xml": Encoding("KMIP XML", "text/xml; charset=utf-8", _decode_xml, _encode_xml),
    "application/json": Encoding("KMIP JSON", "application/json", _decode_json, _encode_json),
}


@dataclass(frozen=True, slots=True)
class KmipOverHttps:
    """What ``POST /kmip`` needs from the server; built by the composition root."""

    engine: KmipEngine
    identities: IdentityResolver
    limits: Limits
    # "last seen" of the allowed certificate that admitted the caller (CertificateSightings).
    seen: Callable[[str], Awaitable[None]] | None = None
    # Called with the seconds one message took (the KMIP port's latency histogram).
    observe: Callable[[float], None] | None = None


router = APIRouter()


@router.post(PATH, name="kmip", include_in_schema=False)
async def kmip(request: Request) -> Response:
    endpoint: KmipOverHttps | None = request.app.state.services.extra.get("kmip")
    if endpoint is None:
        return _refuse(request, 503, "unavailable", "KMIP over HTTPS is not enabled here")
    client = await _client(request, endpoint)
    if isinstance(client, Response):
        return client
    content_type = request.headers.get("content-type", "")
    encoding = ENCODINGS.get(content_type.partition(";")[0].strip().lower())
    if encoding is None:
        problem = (
            f"Content-Type {content_type[:80]!r} is not a KMIP encoding"
            if content_type
            else "the request has no Content-Type"
        )
        return _refuse(
            request,
            415,
            "unsupported_media_type",
            f"{problem}; send application/octet-stream (TTLV), text/xml (KMIP XML) or "
            "application/json (KMIP JSON)",
        )
    body = await request.body()
    started = time.perf_counter()
    try:
        return await _answer(request, endpoint, encoding, body, client)
    finally:
        if endpoint.observe is not None:
            endpoint.observe(time.perf_counter() - started)


async def _answer(
    request: Request,
    endpoint: KmipOverHttps,
    encoding: Encoding,
    body: bytes,
    client: ClientIdentity,
) -> Response:
    engine = endpoint.engine
    try:
        tree = encoding.decode(body, endpoint.limits)
    except DecodeError as exc:
        request.state.error_code = "invalid_kmip_message"
        failure = engine.failure_response(
            exc.reason, f"the body is not a {encoding.name} message: {exc}"
        )
        return _reply(encoding, failure, 400)
    answer = await engine.process(tree, client)
    # The engine's records (one per batch item) stand for this request: the API's audit
    # middleware writes none of its own.
    setattr(request.state, AUDITED_BY_ENGINE, True)
    try:
        return _reply(encoding, answer, 200)
    except EncodeError as exc:
        # A stored value the text encodings cannot carry (e.g. a control character in a
        # Text String registered over TTLV); TTLV carries every value.
        failure = engine.failure_response(
            ResultReason.GENERAL_FAILURE,
            f"the response cannot be written in {encoding.name}: {exc}; ask for it in TTLV",
            message_version(answer),
        )
        return _reply(encoding, failure, 200)


async def _client(request: Request, endpoint: KmipOverHttps) -> ClientIdentity | Response:
    """The caller's identity from its TLS client certificate, or the refusal to send."""
    der = client_certificate_der(request.scope)
    if der is None:
        return _refuse(
            request,
            403,
            "client_certificate_required",
            "KMIP over HTTPS needs a TLS client certificate that an instance allows, as the "
            "KMIP port does; this connection sent none",
        )
    address = f"{request.client.host}:{request.client.port}" if request.client else ""
    peer = Peer(address, der, fingerprint(der))
    request.state.audit_actor = peer.certificate_fingerprint
    try:
        client = await endpoint.identities.resolve(peer)
    except StoreUnavailable:
        return _refuse(
            request,
            503,
            "store_unavailable",
            "the key store is unavailable; try again, or another server of the cluster",
        )
    if client is None:
        return _refuse(
            request,
            403,
            "client_certificate_not_allowed",
            f"the TLS client certificate (SHA-256 {peer.certificate_fingerprint}) is not "
            "allowed for any instance; allow it with 'kmipd cert upload INSTANCE FILE' or "
            "'kmipd cert trust-ca INSTANCE FILE'",
        )
    request.state.audit_instance = client.instance
    if endpoint.seen is not None:
        await endpoint.seen(client.allowed_by)
    return client


def _reply(encoding: Encoding, tree: Item, status: int) -> Response:
    return Response(encoding.encode(tree), status, media_type=encoding.media_type)


def _refuse(request: Request, status: int, code: str, message: str) -> JSONResponse:
    request.state.error_code = code  # for the audit trail
    return JSONResponse(error_body(code, message), status)
