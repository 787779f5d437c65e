"""What a check found: one line each, ``OK``, ``WARN`` or ``FAIL``, what, and the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    what: str  # what was checked, and for a problem what is wrong
    fix: str = ""  # for WARN and FAIL: what to do about it

    def line(self) -> str:
        text = f"{self.status.value:<4}  {self.what}"
        return f"{text} -- fix: {self.fix}" if self.fix else text


def ok(what: str) -> Finding:
    return Finding(Status.OK, what)


def warn(what: str, fix: str) -> Finding:
    return Finding(Status.WARN, what, fix)


def fail(what: str, fix: str) -> Finding:
    return Finding(Status.FAIL, what, fix)
