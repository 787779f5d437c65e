"""Who may set, change and delete each attribute (KMIP 1.4 §3, 2.1 §4 attribute tables).

One row per attribute, with named columns. Attributes not listed are refused from clients,
except custom attributes: ``x-…`` (and 2.x vendor attributes) belong to clients, ``y-…`` to
the server.
"""

from __future__ import annotations

from typing import NamedTuple

from kmipd.protocol._generated import State


class Rule(NamedTuple):
    set_by_client: bool  # may a client give it in Create/Register/AddAttribute?
    modifiable: bool  # may a client change it later (ModifyAttribute/SetAttribute)?
    deletable: bool  # may a client delete it?
    multi_valued: bool  # may it have more than one instance?


_SERVER = Rule(set_by_client=False, modifiable=False, deletable=False, multi_valued=False)

RULES: dict[str, Rule] = {
    # Set by the server only.
    "Unique Identifier": _SERVER,
    "Object Type": _SERVER,
    "State": _SERVER,
    "Initial Date": _SERVER,
    "Last Change Date": _SERVER,
    "Destroy Date": _SERVER,
    "Compromise Date": _SERVER,
    "Revocation Reason": _SERVER,
    "Archive Date": _SERVER,
    "Lease Time": _SERVER,
    "Digest": _SERVER._replace(multi_valued=True),
    # Derived from the certificate; a client may state it (it must agree).
    "Certificate Type": Rule(True, False, False, False),
    "Certificate Length": _SERVER,
    "Certificate Identifier": _SERVER,
    "Certificate Subject": _SERVER,
    "Certificate Issuer": _SERVER,
    "X.509 Certificate Identifier": _SERVER,
    "X.509 Certificate Subject": _SERVER,
    "X.509 Certificate Issuer": _SERVER,
    "Digital Signature Algorithm": _SERVER,
    "Key Value Present": _SERVER,
    "Original Creation Date": _SERVER,
    "Always Sensitive": _SERVER,
    "Never Extractable": _SERVER,
    # Set by the server, or given by the client when it registers the object (2.1 §4.25).
    "Fresh": Rule(True, False, False, False),
    "Short Unique Identifier": _SERVER,
    "Key Format Type": _SERVER,
    # Set by the client when the object is made; fixed afterwards.
    "Cryptographic Algorithm": Rule(True, False, False, False),
    "Cryptographic Length": Rule(True, False, False, False),
    "Cryptographic Domain Parameters": Rule(True, False, False, False),
    "Cryptographic Usage Mask": Rule(True, False, False, False),
    "Certificate Request Type": Rule(True, False, False, False),
    "Random Number Generator": Rule(True, False, False, False),
    "Compromise Occurrence Date": Rule(True, False, False, False),
    # Set and changed by the client.
    "Name": Rule(True, True, True, True),
    "Cryptographic Parameters": Rule(True, True, True, True),
    "Operation Policy Name": Rule(True, True, True, False),
    "Usage Limits": Rule(True, True, False, False),
    "Activation Date": Rule(True, True, False, False),
    "Process Start Date": Rule(True, True, False, False),
    "Protect Stop Date": Rule(True, True, False, False),
    "Deactivation Date": Rule(True, True, False, False),
    "Object Group": Rule(True, True, True, True),
    "Link": Rule(True, True, True, True),
    "Application Specific Information": Rule(True, True, True, True),
    "Contact Information": Rule(True, True, True, False),
    "Alternative Name": Rule(True, True, True, True),
    "Key Value Location": Rule(True, True, True, True),
    "Description": Rule(True, True, True, False),
    "Comment": Rule(True, True, True, False),
    "Sensitive": Rule(True, True, False, False),
    "Extractable": Rule(True, True, False, False),
    "PKCS#12 Friendly Name": Rule(True, True, True, False),
    "Object Group Member": Rule(True, True, True, False),
    "NIST Key Type": Rule(True, False, False, False),
    "Protection Level": Rule(True, False, False, False),
    "Protection Period": Rule(True, True, False, False),
    "Protection Storage Mask": Rule(True, False, False, False),
    "Quantum Safe": Rule(True, False, False, False),
    "Rotate Automatic": Rule(True, True, True, False),
    "Rotate Interval": Rule(True, True, True, False),
    "Rotate Name": Rule(True, True, True, False),
    "Rotate Offset": Rule(True, True, True, False),
}

# 2.x attributes derived from a certificate's subject and issuer names (Certificate Subject
# CN, Certificate Issuer O, ...): set by the server only.
for _role in ("Subject", "Issuer"):
    for _part in (
        "CN",
        "O",
        "OU",
        "Email",
        "C",
        "ST",
        "L",
        "UID",
        "Serial Number",
        "Title",
        "DC",
        "DN Qualifier",
    ):
        RULES[f"Certificate {_role} {_part}"] = _SERVER._replace(multi_valued=True)

_CLIENT_CUSTOM = Rule(set_by_client=True, modifiable=True, deletable=True, multi_valued=True)
_SERVER_CUSTOM = _SERVER._replace(multi_valued=True)


def is_custom(name: str) -> bool:
    return name.startswith(("x-", "y-")) or name.startswith(("x:", "y:"))


def rule(name: str) -> Rule | None:
    """The rule for ``name``, or None for an attribute kmipd does not know."""
    found = RULES.get(name)
    if found is not None:
        return found
    if name.startswith(("x-", "x:")):
        return _CLIENT_CUSTOM
    if name.startswith(("y-", "y:")):
        return _SERVER_CUSTOM
    return None


# Dates a client may change only in some states (KMIP 1.4 §3.24-3.27, 2.1 §4.1, §4.50...):
# anything else is Wrong Key Lifecycle State.
MODIFIABLE_IN_STATES: dict[str, frozenset[State]] = {
    "Activation Date": frozenset((State.PRE_ACTIVE,)),
    "Process Start Date": frozenset((State.PRE_ACTIVE,)),
    "Protect Stop Date": frozenset((State.PRE_ACTIVE, State.ACTIVE)),
    "Deactivation Date": frozenset((State.PRE_ACTIVE, State.ACTIVE)),
}
