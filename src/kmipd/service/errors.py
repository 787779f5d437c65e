"""How an operation fails: a KMIP Result Reason and a message safe to send to the client.

Operations raise :class:`KmipError` with the most precise reason KMIP 2.x has. KMIP 1.x lacks
many of them, so :func:`reason_for_version` maps each to what the 1.x profiles expect
(the OASIS 1.x test cases answer a Destroy of an Active key with Permission Denied, where
2.x says Wrong Key Lifecycle State).
"""

from __future__ import annotations

from kmipd.protocol import tables
from kmipd.protocol._generated import ResultReason
from kmipd.protocol.tables import Version

R = ResultReason

# 2.x reason -> the reason a 1.x client gets. Anything absent and missing in 1.x becomes
# General Failure.
_V1_FALLBACK: dict[int, ResultReason] = {
    R.WRONG_KEY_LIFECYCLE_STATE: R.PERMISSION_DENIED,
    R.OBJECT_NOT_FOUND: R.ITEM_NOT_FOUND,
    R.OBJECT_DESTROYED: R.ITEM_NOT_FOUND,
    R.ATTRIBUTE_READ_ONLY: R.PERMISSION_DENIED,
    R.READ_ONLY_ATTRIBUTE: R.PERMISSION_DENIED,
    R.ATTRIBUTE_SINGLE_VALUED: R.INDEX_OUT_OF_BOUNDS,
    R.MULTI_VALUED_ATTRIBUTE: R.INVALID_FIELD,
    R.ATTRIBUTE_NOT_FOUND: R.ITEM_NOT_FOUND,
    R.ATTRIBUTE_INSTANCE_NOT_FOUND: R.ITEM_NOT_FOUND,
    R.UNSUPPORTED_ATTRIBUTE: R.INVALID_FIELD,
    R.INVALID_ATTRIBUTE: R.INVALID_FIELD,
    R.INVALID_ATTRIBUTE_VALUE: R.INVALID_FIELD,
    R.INVALID_OBJECT_TYPE: R.INVALID_FIELD,
    R.ILLEGAL_OBJECT_TYPE: R.INVALID_FIELD,
    R.NON_UNIQUE_NAME_ATTRIBUTE: R.INVALID_FIELD,
    R.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK: R.PERMISSION_DENIED,
    R.UNSUPPORTED_PROTOCOL_VERSION: R.INVALID_MESSAGE,
    R.SERVER_LIMIT_EXCEEDED: R.GENERAL_FAILURE,
    R.BAD_CRYPTOGRAPHIC_PARAMETERS: R.INVALID_FIELD,
    R.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS: R.FEATURE_NOT_SUPPORTED,
    R.UNKNOWN_ENUMERATION: R.INVALID_FIELD,
    R.UNKNOWN_TAG: R.INVALID_FIELD,
    R.NUMERIC_RANGE: R.INVALID_FIELD,
    R.INVALID_DATA_TYPE: R.INVALID_FIELD,
    R.CODEC_ERROR: R.INVALID_MESSAGE,
    R.NOT_AUTHORISED: R.PERMISSION_DENIED,
    R.INTERNAL_SERVER_ERROR: R.GENERAL_FAILURE,
    R.USAGE_LIMIT_EXCEEDED: R.PERMISSION_DENIED,
}

_REASONS = tables.enum_def("Result Reason")


class KmipError(Exception):
    """A failed batch item. ``message`` goes to the client: no paths, SQL or secrets."""

    def __init__(self, reason: ResultReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ConcurrentUpdate(KmipError):
    """Another request changed the object between this one's read and its write.

    The write was refused (compare-and-swap on the row's revision), so nothing was lost;
    a read-modify-write can load the object again and retry.
    """

    def __init__(self) -> None:
        super().__init__(R.GENERAL_FAILURE, "the object was changed by a concurrent request; retry")


def reason_for_version(reason: int, version: Version) -> int:
    """``reason`` if it exists in ``version``, else its nearest older equivalent."""
    assert _REASONS is not None
    if _REASONS.variant(reason, version) is not None:
        return reason
    if version < (2, 0):
        fallback = _V1_FALLBACK.get(reason, R.GENERAL_FAILURE)
        if _REASONS.variant(fallback, version) is not None:
            return fallback
    return R.GENERAL_FAILURE
