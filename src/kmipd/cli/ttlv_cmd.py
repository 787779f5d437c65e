"""``kmipd ttlv``: decode and encode KMIP messages for operators.

``decode`` reads TTLV (hex or binary, from a file or stdin) and prints an indented listing
with tag names, or the KMIP XML or JSON encoding. ``encode`` reads XML or JSON and prints hex.
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path
from typing import Any

from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.protocol import json_encoding, listing, ttlv, xml_encoding
from kmipd.protocol.errors import DecodeError, EncodeError

_HEX_CHARS = frozenset((string.hexdigits + string.whitespace).encode())


def register(commands: Any) -> None:
    parser = commands.add_parser("ttlv", help="decode or encode KMIP TTLV messages")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    decode = actions.add_parser("decode", help="TTLV (hex or binary) to a listing, XML or JSON")
    decode.add_argument("file", nargs="?", help="input file (default: standard input)")
    form = decode.add_mutually_exclusive_group()
    form.add_argument(
        "--hex", dest="form", action="store_const", const="hex", help="the input is hex text"
    )
    form.add_argument(
        "--binary",
        dest="form",
        action="store_const",
        const="binary",
        help="the input is raw TTLV bytes",
    )
    decode.add_argument(
        "--to",
        choices=("listing", "xml", "json"),
        default="listing",
        help="output format (default: listing)",
    )
    decode.set_defaults(run=run_decode)

    encode = actions.add_parser("encode", help="KMIP XML or JSON to TTLV hex")
    encode.add_argument("file", nargs="?", help="input file (default: standard input)")
    encode.add_argument(
        "--from", dest="source", choices=("xml", "json"), required=True, help="the input encoding"
    )
    encode.add_argument("--binary", action="store_true", help="write raw TTLV bytes instead of hex")
    encode.set_defaults(run=run_encode)


def _read_input(path: str | None) -> bytes:
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None


def _ttlv_bytes(raw: bytes, form: str | None) -> bytes:
    if form is None:
        form = "hex" if raw.strip() and all(b in _HEX_CHARS for b in raw) else "binary"
    if form == "binary":
        return raw
    text = "".join(raw.decode("ascii", "replace").split())
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CommandError(
            "the input is not valid hex (use --binary for raw bytes)", EXIT_USAGE
        ) from None


def run_decode(args: argparse.Namespace) -> int:
    data = _ttlv_bytes(_read_input(args.file), args.form)
    try:
        tree = ttlv.decode(data)
    except DecodeError as exc:
        raise CommandError(f"not a valid TTLV message: {exc}", EXIT_USAGE) from None
    if args.to == "xml":
        print(xml_encoding.to_xml(tree))
    elif args.to == "json":
        print(json_encoding.to_json(tree))
    else:
        print(listing.format_tree(tree), end="")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    raw = _read_input(args.file)
    decoder = xml_encoding.from_xml if args.source == "xml" else json_encoding.from_json
    try:
        data = ttlv.encode(decoder(raw))
    except DecodeError as exc:
        raise CommandError(
            f"not a valid KMIP {args.source.upper()} message: {exc}", EXIT_USAGE
        ) from None
    except EncodeError as exc:
        raise CommandError(f"cannot encode: {exc}", EXIT_USAGE) from None
    if args.binary:
        sys.stdout.buffer.write(data)
    else:
        print(data.hex())
    return 0
