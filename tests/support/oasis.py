"""Loader for the OASIS KMIP XML test cases in ``../shared/kmip-testcases``.

One file is one :class:`TestCase`: an ordered list of :class:`Step` (a RequestMessage and its
ResponseMessage, as ElementTree elements, with the ``# TIME n`` step number and the
``# [Client-A]``/``# [Server-to-Client]``/``# [REPEAT]`` markers that precede them)::

    case = load_case(KMIP_TESTCASES / "v1.1/profiles/mandatory/SKLC-M-1-11.xml")
    for step in case.steps:
        request = item_from_element(substitute(step.request, bindings, now=time.time()))

The files are never edited. The defects documented in the README are fixed while loading:
text after the first closing root tag (TC-ECDSA-SIGN-1-14), ``<?xml?>`` declarations anywhere,
and the ``<KmipTestCase>`` root of Cosmian's transcriptions is accepted like ``<KMIP>``.

:func:`substitute` replaces the placeholders (``$UNIQUE_IDENTIFIER_n``, ``$NOW-3600``,
``$IV_COUNTER_NONCE``…) with concrete values so that a message can be encoded.

v3.0 is not loaded by default: its files use item types (Identifier, Reference…) and tags of
KMIP 3.0, for which there are no tables yet.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET

from tests.support.shared import KMIP_TESTCASES

VERSIONS: tuple[str, ...] = ("v1.0", "v1.1", "v1.2", "v1.3", "v1.4", "v2.0", "v2.1")
"""The version folders this loader reads (v3.0 is skipped: no KMIP 3.0 tables)."""

ROOT_NAMES = ("KMIP", "KmipTestCase")
REQUEST = "RequestMessage"
RESPONSE = "ResponseMessage"


# ---------------------------------------------------------------------------------------------
# index.csv and profiles.json
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of ``index.csv``."""

    file: str  # relative to the kmip-testcases folder, e.g. "v1.1/profiles/mandatory/..."
    test_id: str
    protocol_version: str  # "1.1", from the folder
    protocol_version_in_file: str
    suite: str  # "profile" or "testcase"
    requirement: str  # "mandatory", "optional" or "informative"
    profile_code: str  # "SKLC", ... ("" for TC files)
    profile: str
    family: str
    request_messages: int
    operations: tuple[str, ...]
    notes: str


@functools.cache
def index(root: Path = KMIP_TESTCASES) -> dict[str, IndexEntry]:
    """``index.csv`` by relative file path."""
    entries: dict[str, IndexEntry] = {}
    with (root / "index.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            entries[row["file"]] = IndexEntry(
                file=row["file"],
                test_id=row["test_id"],
                protocol_version=row["protocol_version"],
                protocol_version_in_file=row["protocol_version_in_file"],
                suite=row["suite"],
                requirement=row["requirement"],
                profile_code=row["profile_code"],
                profile=row["profile"],
                family=row["family"],
                request_messages=int(row["request_messages"] or 0),
                operations=tuple(op for op in row["operations"].split(";") if op),
                notes=row["notes"],
            )
    return entries


@functools.cache
def profiles(root: Path = KMIP_TESTCASES) -> dict[str, Any]:
    """``profiles.json``: ``profiles()["v2.1"]["profiles"]["BL"]["mandatory"]`` is a list of IDs."""
    with (root / "profiles.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def case_files(version: str, root: Path = KMIP_TESTCASES) -> list[Path]:
    """All XML files of one version folder (``"v1.1"``), sorted."""
    return sorted((root / version).rglob("*.xml"))


def all_case_files(versions: tuple[str, ...] = VERSIONS, root: Path = KMIP_TESTCASES) -> list[Path]:
    return [path for version in versions for path in case_files(version, root)]


# ---------------------------------------------------------------------------------------------
# Test cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One exchange: a request and the response expected to it.

    ``client`` is the marker letter of ``# [Client-A]`` ("A", "B", "C"), None when the file
    does not say (a single client). ``server_to_client`` marks a request that the *server*
    sends (``# [Server-to-Client]``, Put/Notify); its response then comes from the client.
    ``repeat`` marks a polled step (``# [REPEAT] until …``).
    """

    index: int
    time: int | None
    client: str | None
    server_to_client: bool
    repeat: bool
    comments: tuple[str, ...]
    request: Element
    response: Element | None


@dataclass(frozen=True, slots=True)
class TestCase:
    """One OASIS test file."""

    __test__ = False  # not a pytest class

    id: str
    path: Path
    version: str  # protocol version of the folder, "1.1"
    suite: str  # "profile" or "testcase"
    profile: str | None  # profile code ("SKLC"), None for the informative TC files
    requirement: str  # "mandatory", "optional" or "informative"
    steps: list[Step] = field(default_factory=list)

    @property
    def protocol_version(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return (int(major), int(minor))

    @property
    def relative_path(self) -> str:
        return _relative(self.path)

    def messages(self) -> Iterator[tuple[Step, str, Element]]:
        """Every message in file order: (step, "request" | "response", element)."""
        for step in self.steps:
            yield step, "request", step.request
            if step.response is not None:
                yield step, "response", step.response


_XML_DECLARATION = re.compile(r"<\?xml[^>]*\?>")
_TIME = re.compile(r"#\s*TIME\s+(\d+)")
_CLIENT = re.compile(r"#\s*\[Client-([A-Za-z0-9]+)\]")


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(KMIP_TESTCASES.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_case_text(path: Path) -> str:
    """The file's text with the documented defects fixed (the file itself is not changed)."""
    text = path.read_text(encoding="utf-8")
    text = _XML_DECLARATION.sub("", text)
    for root_name in ROOT_NAMES:
        end = f"</{root_name}>"
        first = text.find(end)
        if first >= 0:
            # TC-ECDSA-SIGN-1-14 has a second </KMIP>: keep everything up to the first one.
            text = text[: first + len(end)]
            break
    return text


def parse_case(path: Path) -> Element:
    """The root element of a test file (``<KMIP>`` or ``<KmipTestCase>``)."""
    root = DET.fromstring(read_case_text(path), forbid_dtd=True)
    if root.tag not in ROOT_NAMES:
        raise ValueError(f"{path}: unexpected root element <{root.tag}>")
    return root


def _comment_lines(text: str | None) -> list[str]:
    if not text:
        return []
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def load_case(path: Path) -> TestCase:
    """Parse one test file into its steps."""
    path = Path(path)
    root = parse_case(path)
    rel = _relative(path)
    entry = index().get(rel) if KMIP_TESTCASES.exists() else None

    # Requests and responses alternate, except where a client sends two requests before
    # reading the replies (TC-DERIVEKEY-4-10): a response answers the oldest open request.
    requests: list[tuple[Element, list[str]]] = []
    responses: dict[int, tuple[Element, list[str]]] = {}
    open_requests: list[int] = []
    pending: list[str] = _comment_lines(root.text)
    for child in root:
        if child.tag == REQUEST:
            open_requests.append(len(requests))
            requests.append((child, pending))
        elif child.tag == RESPONSE:
            if not open_requests:
                raise ValueError(f"{path}: ResponseMessage without a RequestMessage")
            responses[open_requests.pop(0)] = (child, pending)
        else:
            raise ValueError(f"{path}: unexpected element <{child.tag}>")
        pending = _comment_lines(child.tail)

    steps: list[Step] = []
    current_time: int | None = None
    for number, (request, notes) in enumerate(requests):
        client: str | None = None
        for note in notes:
            if m := _TIME.match(note):
                current_time = int(m.group(1))
            if m := _CLIENT.match(note):
                client = m.group(1)
        response, response_notes = responses.get(number, (None, []))
        steps.append(
            Step(
                index=number,
                time=current_time,
                client=client,
                server_to_client=any("[Server-to-Client]" in note for note in notes),
                repeat=any("[REPEAT]" in note for note in notes),
                comments=tuple(notes + response_notes),
                request=request,
                response=response,
            )
        )

    version = entry.protocol_version if entry else _version_from_path(path)
    return TestCase(
        id=entry.test_id if entry else path.stem,
        path=path,
        version=version,
        suite=entry.suite if entry else ("testcase" if "testcases" in path.parts else "profile"),
        profile=(entry.profile_code or None) if entry else None,
        requirement=entry.requirement if entry else "informative",
        steps=steps,
    )


def _version_from_path(path: Path) -> str:
    for part in path.parts:
        if re.fullmatch(r"v\d+\.\d+", part):
            return part[1:]
    return "?"


def iter_cases(versions: tuple[str, ...] = VERSIONS) -> Iterator[TestCase]:
    for path in all_case_files(versions):
        yield load_case(path)


# ---------------------------------------------------------------------------------------------
# Placeholders
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$([A-Z][A-Z0-9_]*)")
_NOW = re.compile(r"\$NOW(?:([+-])(\d+))?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Unbound = Literal["error", "keep", "fill"]


class UnboundPlaceholder(KeyError):
    """A placeholder that ``bindings`` does not give a value for (``unbound="error"``)."""


def placeholders(element: Element) -> list[str]:
    """The placeholder names (``UNIQUE_IDENTIFIER_0``, ``NOW``…) used in ``element``, in order."""
    names: list[str] = []
    for node in element.iter():
        value = node.get("value")
        if value is not None and value.startswith("$"):
            m = _PLACEHOLDER.fullmatch(value) or _NOW.fullmatch(value)
            if m is not None:
                name = "NOW" if value.startswith("$NOW") else m.group(1)
                if name not in names:
                    names.append(name)
    return names


def format_time(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _format_binding(value: str | bytes | int, item_type: str | None) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, int) and item_type in ("DateTime", None):
        return format_time(value)
    return str(value)


def _fill(name: str, item_type: str | None) -> str:
    """A deterministic stand-in value for an unbound placeholder of ``item_type``."""
    digest = hashlib.sha256(name.encode()).digest()
    if item_type == "ByteString":
        return digest[:16].hex()
    if item_type == "TextString":
        return name.lower().replace("_", "-")
    if item_type in ("Integer", "LongInteger", "Interval"):
        return str(int.from_bytes(digest[:2], "big"))
    if item_type == "DateTime":
        return format_time(0)
    raise ValueError(f"no stand-in value for a placeholder of type {item_type}")


def substitute(
    element: Element,
    bindings: Mapping[str, str | bytes | int] | None = None,
    *,
    now: float | None = None,
    unbound: Unbound = "error",
) -> Element:
    """A copy of ``element`` with every placeholder ``value`` replaced by a concrete value.

    * ``$NOW``, ``$NOW-3600``, ``$NOW+3600``: ``now`` (seconds since the epoch, default: the
      current time) plus/minus the offset, as ISO 8601.
    * ``$NAME`` (``$UNIQUE_IDENTIFIER_0``, ``$IV_COUNTER_NONCE``…): ``bindings["NAME"]``
      (the ``$`` is optional in the keys). A ``str`` value is used as the XML value text;
      ``bytes`` become hex; an ``int`` for a DateTime becomes ISO 8601.
    * A placeholder without a binding: ``unbound="error"`` raises :class:`UnboundPlaceholder`,
      ``"keep"`` leaves it (a Text String then carries the placeholder text), ``"fill"`` puts
      in a deterministic stand-in of the right type (hex bytes for a Byte String).

    The original element (shared by a loaded :class:`TestCase`) is not changed.
    """
    bindings = bindings or {}
    current = int(time.time() if now is None else now)
    result = copy.deepcopy(element)
    for node in result.iter():
        value = node.get("value")
        if value is None or not value.startswith("$"):
            continue
        item_type = node.get("type")
        m = _NOW.fullmatch(value)
        if m is not None:
            sign, offset = m.groups()
            seconds = current + (int(offset) if sign == "+" else -int(offset) if sign else 0)
            node.set("value", format_time(seconds))
            continue
        m = _PLACEHOLDER.fullmatch(value)
        if m is None:
            continue
        name = m.group(1)
        bound = bindings.get(name, bindings.get(value))
        if bound is not None:
            node.set("value", _format_binding(bound, item_type))
        elif unbound == "fill":
            node.set("value", _fill(name, item_type))
        elif unbound == "error":
            raise UnboundPlaceholder(name)
    return result
