"""Seed messages for the fuzzers and the mutation test, read from ``../shared/`` at run time.

* the vCenter capture (``vcenter-capture/conversation.json``): every request and response;
* the OASIS test cases (``kmip-testcases/v1.0`` … ``v2.1``): every RequestMessage and
  ResponseMessage, placeholders filled with deterministic stand-ins, encoded to TTLV.

Their licences keep them out of this repository: nothing here copies them. ``KMIPD_SHARED_DIR``
points elsewhere, as for the tests. When the data is absent, :class:`SeedsMissing` says where
it was looked for.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal

from tests.support.shared import KMIP_TESTCASES, VCENTER_CAPTURE

FIXED_NOW = 1_700_000_000  # $NOW in the OASIS files
Kind = Literal["request", "response"]


class SeedsMissing(RuntimeError):
    """The shared test data is not where it was looked for."""


def _missing(path: Path) -> SeedsMissing:
    return SeedsMissing(
        f"seed data not found at {path}: the fuzzers read the OASIS test cases and the vCenter "
        "capture from ../shared/ beside the repository (set KMIPD_SHARED_DIR to point elsewhere)"
    )


@functools.cache
def vcenter_messages(kind: Kind | None = None) -> tuple[bytes, ...]:
    """The captured vCenter messages, in capture order (``kind`` filters by direction)."""
    path = VCENTER_CAPTURE / "conversation.json"
    if not path.exists():
        raise _missing(path)
    with path.open(encoding="utf-8") as f:
        conversation = json.load(f)
    return tuple(
        bytes.fromhex(m["hex"]) for m in conversation if kind is None or m["direction"] == kind
    )


@functools.cache
def oasis_messages(kind: Kind | None = None, stride: int = 1) -> tuple[bytes, ...]:
    """The OASIS test messages of every ``stride``-th file, as TTLV (``kind`` filters).

    The few messages that have no TTLV form (the PKCS#11 files, see the conformance tests)
    are left out.
    """
    if not KMIP_TESTCASES.exists():
        raise _missing(KMIP_TESTCASES)
    from kmipd.protocol import ttlv
    from kmipd.protocol.errors import DecodeError
    from kmipd.protocol.xml_encoding import item_from_element
    from tests.support import oasis

    out: list[bytes] = []
    for path in oasis.all_case_files()[::stride]:
        case = oasis.load_case(path)
        for _step, message_kind, element in case.messages():
            if kind is not None and message_kind != kind:
                continue
            concrete = oasis.substitute(element, now=FIXED_NOW, unbound="fill")
            try:
                out.append(ttlv.encode(item_from_element(concrete)))
            except DecodeError:
                continue
    return tuple(out)


def all_seeds(kind: Kind | None = None, stride: int = 1) -> list[bytes]:
    """vCenter first, then OASIS; duplicates removed, order kept."""
    return list(dict.fromkeys(vcenter_messages(kind) + oasis_messages(kind, stride)))


def write_corpus(directory: Path, kind: Kind | None = None) -> int:
    """One file per seed in ``directory`` (libFuzzer's corpus layout). Returns the count."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = all_seeds(kind)
    for number, data in enumerate(seeds):
        (directory / f"seed-{number:05d}").write_bytes(data)
    return len(seeds)


def fuzz_main(argv: list[str], kind: Kind | None) -> list[str]:
    """libFuzzer's argv for a target script: when it names no corpus directory, a temporary
    one filled with the seeds is added (and left for the OS to clean up)."""
    if any(not arg.startswith("-") for arg in argv[1:]):
        return argv
    import tempfile

    corpus = Path(tempfile.mkdtemp(prefix="kmipd-corpus-"))
    count = write_corpus(corpus, kind)
    print(f"seed corpus: {count} messages in {corpus}", flush=True)
    return [*argv, str(corpus)]
