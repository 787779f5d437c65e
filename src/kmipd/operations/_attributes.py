"""Checks of client-supplied attributes against the attribute rules."""

from __future__ import annotations

from collections import Counter

from kmipd.model.attribute_rules import MODIFIABLE_IN_STATES, Rule, rule
from kmipd.protocol._generated import ResultReason, State
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


def rule_for_change(name: str, state: State, *, deleting: bool = False) -> Rule:
    """The rule of an attribute a client wants to change or delete, or the refusal."""
    found = rule(name)
    if found is None:
        raise KmipError(ResultReason.INVALID_ATTRIBUTE, f"attribute {name!r} is not supported")
    allowed = found.deletable if deleting else found.modifiable
    if not allowed:
        raise KmipError(
            ResultReason.ATTRIBUTE_READ_ONLY,
            f"attribute {name!r} cannot be {'deleted' if deleting else 'changed'} by a client",
        )
    states = MODIFIABLE_IN_STATES.get(name)
    if states is not None and state not in states:
        raise KmipError(
            ResultReason.WRONG_KEY_LIFECYCLE_STATE,
            f"attribute {name!r} cannot be changed in the object's current state",
        )
    return found
