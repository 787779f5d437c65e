"""Checks of client-supplied attributes against the attribute rules."""

from __future__ import annotations

from collections import Counter

from kmipd.model.attribute_rules import rule
from kmipd.protocol._generated import ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.service.errors import KmipError


def check_client_attributes(attributes: list[Attribute]) -> None:
    """Refuse attributes a client may not set, and single-valued ones given twice."""
    counts = Counter(a.name for a in attributes)
    for attribute in attributes:
        found = rule(attribute.name)
        if found is None:
            raise KmipError(
                ResultReason.INVALID_ATTRIBUTE, f"attribute {attribute.name!r} is not supported"
            )
        if not found.set_by_client:
            raise KmipError(
                ResultReason.ATTRIBUTE_READ_ONLY,
                f"attribute {attribute.name!r} is set by the server",
            )
        if attribute.value is None:
            raise KmipError(
                ResultReason.INVALID_ATTRIBUTE_VALUE, f"attribute {attribute.name!r} has no value"
            )
        if counts[attribute.name] > 1 and not found.multi_valued:
            raise KmipError(
                ResultReason.ATTRIBUTE_SINGLE_VALUED,
                f"attribute {attribute.name!r} may have only one value",
            )
