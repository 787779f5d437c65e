"""A bare TLS floor for the KMIP benchmark (not a test, not a KMIP server).

An asyncio TLS server (mutual TLS) that, for every TTLV message it reads (8-byte header +
length), writes one fixed reply: a valid KMIP 1.2 Get response carrying a 32-byte AES key,
encoded once at start with kmipd's codec. It does no KMIP work at all, so what a client
measures against it is the cost of TLS, framing and the client itself: the floor any KMIP
server on this machine sits on.

    python bench/floor_server.py --port P --cert server.pem --key server-key.pem --ca ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kmipd.protocol import messages
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultStatus,
)
from kmipd.protocol.objects import KeyBlock, KeyValue, ProtocolVersion, SymmetricKey
from kmipd.protocol.payloads import GetResponse

FLOOR_UID = "floor-0000-0000-0000-000000000001"


def fixed_reply() -> bytes:
    """A KMIP 1.2 Get response: one Symmetric Key, AES-256, 32 bytes of Raw key material."""
    return messages.encode_response(
        messages.ResponseMessage(
            header=messages.ResponseHeader(
                protocol_version=ProtocolVersion.of((1, 2)), time_stamp=int(time.time())
            ),
            batch_items=[
                messages.ResponseBatchItem(
                    operation=Operation.GET,
                    result_status=ResultStatus.SUCCESS,
                    payload=GetResponse(
                        object_type=ObjectType.SYMMETRIC_KEY,
                        unique_identifier=FLOOR_UID,
                        managed_object=SymmetricKey(
                            key_block=KeyBlock(
                                key_format_type=KeyFormatType.RAW,
                                key_value=KeyValue(key_material=bytes(range(32))),
                                cryptographic_algorithm=CryptographicAlgorithm.AES,
                                cryptographic_length=256,
                            )
                        ),
                    ),
                )
            ],
        )
    )


async def serve(host: str, port: int, context: ssl.SSLContext) -> None:
    reply = fixed_reply()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(8)
                (length,) = struct.unpack(">I", head[4:])
                await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, ssl=context, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(args.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, context))


if __name__ == "__main__":
    main()
