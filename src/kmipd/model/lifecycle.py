"""The KMIP object lifecycle (KMIP 1.4 §3.22 / 2.1 §4.57) as one transition table.

Anything not in the table is refused with Wrong Key Lifecycle State (Permission Denied in
KMIP 1.x). Get is allowed in every state but the destroyed ones, Pre-Active included:
vCenter fetches a key before it activates it.
"""

from __future__ import annotations

from enum import Enum

from kmipd.protocol._generated import ResultReason, State
from kmipd.service.errors import KmipError


class Event(Enum):
    ACTIVATE = "Activate"
    REVOKE_COMPROMISE = "Revoke (compromise)"
    REVOKE = "Revoke"
    DESTROY = "Destroy"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PRE_ACTIVE, Event.ACTIVATE): State.ACTIVE,
    (State.PRE_ACTIVE, Event.REVOKE_COMPROMISE): State.COMPROMISED,
    (State.PRE_ACTIVE, Event.REVOKE): State.DEACTIVATED,
    (State.PRE_ACTIVE, Event.DESTROY): State.DESTROYED,
    (State.ACTIVE, Event.REVOKE_COMPROMISE): State.COMPROMISED,
    (State.ACTIVE, Event.REVOKE): State.DEACTIVATED,
    (State.DEACTIVATED, Event.REVOKE_COMPROMISE): State.COMPROMISED,
    (State.DEACTIVATED, Event.DESTROY): State.DESTROYED,
    (State.COMPROMISED, Event.DESTROY): State.DESTROYED_COMPROMISED,
    (State.DESTROYED, Event.REVOKE_COMPROMISE): State.DESTROYED_COMPROMISED,
}

DESTROYED_STATES = frozenset((State.DESTROYED, State.DESTROYED_COMPROMISED))


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise KmipError(
            ResultReason.WRONG_KEY_LIFECYCLE_STATE,
            f"{event.value} is not allowed for an object in state {_name(state)}",
        ) from None


def _name(state: State) -> str:
    return state.name.replace("_", " ").title().replace(" ", "")
