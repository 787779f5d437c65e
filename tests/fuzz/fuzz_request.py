"""atheris target: the whole request path, decode → dispatch → encode.

    python tests/fuzz/fuzz_request.py [libFuzzer options] [corpus directory …]

Every input goes through ``KmipEngine.handle_ttlv`` of an in-process engine on a real SQLite
store and keyring (in a temporary directory on tmpfs, see ``harness.py``), as one client of
instance ``default``. Without a corpus directory, the seeds (every OASIS request message and
the vCenter requests, read from ../shared/) are written to a temporary one.

Pass (``harness.check_response``): ``handle_ttlv`` returns, and what it returns is a
well-formed KMIP response whose failed batch items carry a Result Reason; no operation raised
an exception that the engine had to turn into General Failure. The store is replaced by a
fresh one every ``KMIPD_FUZZ_RESET`` inputs (default 100) so that it does not grow without
bound in long runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["kmipd"]):
    from tests.fuzz.harness import InProcessEngine, SwallowedExceptions, check_response

from tests.fuzz.seeds import fuzz_main

RESET_EVERY = int(os.environ.get("KMIPD_FUZZ_RESET", "100"))

_swallowed = SwallowedExceptions()
_engine: InProcessEngine | None = None
_inputs = 0


def _current() -> InProcessEngine:
    global _engine, _inputs
    if _engine is not None and _inputs >= RESET_EVERY:
        _engine.close()
        _engine = None
    if _engine is None:
        _engine, _inputs = InProcessEngine(), 0
    _inputs += 1
    return _engine


def test_one_input(data: bytes) -> None:
    engine = _current()
    response = engine.handle(data)
    check_response(data, response)
    swallowed = _swallowed.take()
    if swallowed:
        raise AssertionError(
            "the engine turned an exception into General Failure: "
            + SwallowedExceptions.describe(swallowed)
        )


def main() -> None:
    kmipd_log = logging.getLogger("kmipd")
    kmipd_log.addHandler(_swallowed)
    kmipd_log.propagate = False  # failures are reported by the check, not printed per input
    try:
        atheris.Setup(fuzz_main(sys.argv, "request"), test_one_input)
        atheris.Fuzz()
    finally:
        if _engine is not None:
            _engine.close()


if __name__ == "__main__":
    main()
