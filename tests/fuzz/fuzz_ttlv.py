"""atheris target: the TTLV decoder.

    python tests/fuzz/fuzz_ttlv.py [libFuzzer options] [corpus directory …]

Without a corpus directory, the seeds (every OASIS test message and the vCenter capture, read
from ../shared/) are written to a temporary one. Pass: ``ttlv.decode`` returns a tree or
raises :class:`DecodeError` carrying a Result Reason, nothing else; a tree it returns encodes
and decodes back to itself; the typed layer (``request_from_item``, ``response_from_item``)
on that tree also returns or raises DecodeError only.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["kmipd"]):
    from kmipd.protocol import messages, ttlv
    from kmipd.protocol._generated import ResultReason
    from kmipd.protocol.errors import DecodeError
    from kmipd.protocol.limits import Limits

from tests.fuzz.seeds import fuzz_main

LIMITS = Limits()


def _typed(fn: object, tree: ttlv.Item) -> None:
    try:
        fn(tree, LIMITS)  # type: ignore[operator]
    except DecodeError as exc:
        ResultReason(exc.reason)


def test_one_input(data: bytes) -> None:
    try:
        tree = ttlv.decode(data, LIMITS)
    except DecodeError as exc:
        ResultReason(exc.reason)  # a DecodeError always carries a valid Result Reason
        return
    again = ttlv.decode(ttlv.encode(tree), LIMITS)
    if again != tree:
        raise AssertionError("a decoded tree does not survive encode → decode")
    _typed(messages.request_from_item, tree)
    _typed(messages.response_from_item, tree)


def main() -> None:
    atheris.Setup(fuzz_main(sys.argv, None), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
