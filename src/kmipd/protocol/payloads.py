"""Request and response payloads, declared for the codec, and their registries.

Where KMIP 1.x and 2.x differ only in how the same thing is written (an ``Attribute`` vs a
``NewAttribute``, ``AttributeName`` vs ``AttributeReference``, ``Attribute*`` vs
``Attributes``), one field carries it in both, with a ``v2=`` wire form. Where the shapes
differ (1.x ``TemplateAttribute`` with template names vs 2.x ``Attributes``), there are two
fields; :func:`requested_attributes` reads either.
"""

# kmip_field() returns a dataclasses.field(); ruff cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kmipd.protocol._generated import (
    InteropFunction,
    KeyCompressionType,
    KeyFormatType,
    KeyWrapType,
    ObjectType,
    Operation,
    QueryFunction,
    Tag,
)
from kmipd.protocol.attributes import (
    ATTRIBUTE,
    ATTRIBUTE_REFERENCE,
    ATTRIBUTES,
    WRAPPED_ATTRIBUTE,
    Attribute,
    TemplateAttribute,
)
from kmipd.protocol.codec import (
    ANY,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    INTERVAL,
    LONG_INTEGER,
    TEXT_STRING,
    kmip_field,
    uid_field,
)
from kmipd.protocol.crypto_payloads import (
    DecryptRequest,
    DecryptResponse,
    EncryptRequest,
    EncryptResponse,
    HashRequest,
    HashResponse,
    MacRequest,
    MacResponse,
    MacVerifyRequest,
    MacVerifyResponse,
    RngRetrieveRequest,
    RngRetrieveResponse,
    SignatureVerifyRequest,
    SignatureVerifyResponse,
    SignRequest,
    SignResponse,
)
from kmipd.protocol.objects import ProtocolVersion, RevocationReason, managed_object_field
from kmipd.protocol.ttlv import Item

__all__ = [
    "REQUEST_PAYLOADS",
    "RESPONSE_PAYLOADS",
    "AddAttributeRequest",
    "AddAttributeResponse",
    "CheckRequest",
    "CheckResponse",
    "CreateKeyPairRequest",
    "CreateKeyPairResponse",
    "CreateRequest",
    "CreateResponse",
    "DeleteAttributeRequest",
    "DeleteAttributeResponse",
    "DiscoverVersionsRequest",
    "DiscoverVersionsResponse",
    "EmptyPayload",
    "GetAttributeListRequest",
    "GetAttributeListResponse",
    "GetAttributesRequest",
    "GetAttributesResponse",
    "GetRequest",
    "GetResponse",
    "InteropRequest",
    "LocateRequest",
    "LocateResponse",
    "LogRequest",
    "ModifyAttributeRequest",
    "ModifyAttributeResponse",
    "QueryRequest",
    "QueryResponse",
    "ReKeyRequest",
    "ReKeyResponse",
    "RegisterRequest",
    "RegisterResponse",
    "RevokeRequest",
    "SetAttributeRequest",
    "UidRequest",
    "UidResponse",
    "requested_attributes",
]


def _attributes_v2(**kwargs: Any) -> Any:
    """2.x ``Attributes``: a list of attributes, None when absent."""
    return kmip_field(Tag.ATTRIBUTES, ATTRIBUTES, **kwargs)


def _template_v1(tag: int = Tag.TEMPLATE_ATTRIBUTE, **kwargs: Any) -> Any:
    return kmip_field(tag, TemplateAttribute, **kwargs)


# --- Discover Versions, Query ----------------------------------------------------------------


@dataclass(slots=True)
class DiscoverVersionsRequest:
    protocol_versions: list[ProtocolVersion] = kmip_field(
        Tag.PROTOCOL_VERSION, ProtocolVersion, repeated=True
    )


@dataclass(slots=True)
class DiscoverVersionsResponse:
    protocol_versions: list[ProtocolVersion] = kmip_field(
        Tag.PROTOCOL_VERSION, ProtocolVersion, repeated=True
    )


@dataclass(slots=True)
class QueryRequest:
    query_functions: list[QueryFunction | int] = kmip_field(
        Tag.QUERY_FUNCTION, ENUMERATION, repeated=True
    )


@dataclass(slots=True)
class QueryResponse:
    operations: list[Operation | int] = kmip_field(Tag.OPERATION, ENUMERATION, repeated=True)
    object_types: list[ObjectType | int] = kmip_field(Tag.OBJECT_TYPE, ENUMERATION, repeated=True)
    vendor_identification: str | None = kmip_field(Tag.VENDOR_IDENTIFICATION, TEXT_STRING)
    server_information: Item | None = kmip_field(Tag.SERVER_INFORMATION, ANY)
    application_namespaces: list[str] = kmip_field(
        Tag.APPLICATION_NAMESPACE, TEXT_STRING, repeated=True
    )
    extension_information: list[Item] = kmip_field(Tag.EXTENSION_INFORMATION, ANY, repeated=True)
    attestation_types: list[int] = kmip_field(Tag.ATTESTATION_TYPE, ENUMERATION, repeated=True)
    rng_parameters: list[Item] = kmip_field(Tag.RNG_PARAMETERS, ANY, repeated=True)
    profile_information: list[Item] = kmip_field(Tag.PROFILE_INFORMATION, ANY, repeated=True)
    validation_information: list[Item] = kmip_field(Tag.VALIDATION_INFORMATION, ANY, repeated=True)
    capability_information: list[Item] = kmip_field(Tag.CAPABILITY_INFORMATION, ANY, repeated=True)
    client_registration_methods: list[int] = kmip_field(
        Tag.CLIENT_REGISTRATION_METHOD, ENUMERATION, repeated=True
    )
    defaults_information: Item | None = kmip_field(Tag.DEFAULTS_INFORMATION, ANY)
    protection_storage_masks: list[int] = kmip_field(
        Tag.PROTECTION_STORAGE_MASK, INTEGER, repeated=True
    )


# --- Create, Register, Re-key ------------------------------------------------------------------


@dataclass(slots=True)
class CreateRequest:
    object_type: ObjectType | int | None = kmip_field(Tag.OBJECT_TYPE, ENUMERATION, required=True)
    template_attribute: TemplateAttribute | None = _template_v1(required=True)
    attributes: list[Attribute] | None = _attributes_v2(required=True)
    protection_storage_masks: Item | None = kmip_field(Tag.PROTECTION_STORAGE_MASKS, ANY)


@dataclass(slots=True)
class CreateResponse:
    object_type: ObjectType | int | None = kmip_field(Tag.OBJECT_TYPE, ENUMERATION, required=True)
    unique_identifier: str | Item | None = uid_field(required=True)
    template_attribute: TemplateAttribute | None = _template_v1()


@dataclass(slots=True)
class RegisterRequest:
    object_type: ObjectType | int | None = kmip_field(Tag.OBJECT_TYPE, ENUMERATION, required=True)
    template_attribute: TemplateAttribute | None = _template_v1(required=True)
    attributes: list[Attribute] | None = _attributes_v2(required=True)
    managed_object: Any = managed_object_field(required=True)
    protection_storage_masks: Item | None = kmip_field(Tag.PROTECTION_STORAGE_MASKS, ANY)


@dataclass(slots=True)
class RegisterResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    template_attribute: TemplateAttribute | None = _template_v1()


@dataclass(slots=True)
class ReKeyRequest:
    unique_identifier: str | Item | None = uid_field()
    offset: int | None = kmip_field(Tag.OFFSET, INTERVAL)
    template_attribute: TemplateAttribute | None = _template_v1()
    attributes: list[Attribute] | None = _attributes_v2()
    protection_storage_masks: Item | None = kmip_field(Tag.PROTECTION_STORAGE_MASKS, ANY)


@dataclass(slots=True)
class ReKeyResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    template_attribute: TemplateAttribute | None = _template_v1()


@dataclass(slots=True)
class CreateKeyPairRequest:
    common_template_attribute: TemplateAttribute | None = _template_v1(
        Tag.COMMON_TEMPLATE_ATTRIBUTE
    )
    private_key_template_attribute: TemplateAttribute | None = _template_v1(
        Tag.PRIVATE_KEY_TEMPLATE_ATTRIBUTE
    )
    public_key_template_attribute: TemplateAttribute | None = _template_v1(
        Tag.PUBLIC_KEY_TEMPLATE_ATTRIBUTE
    )
    common_attributes: list[Attribute] | None = kmip_field(Tag.COMMON_ATTRIBUTES, ATTRIBUTES)
    private_key_attributes: list[Attribute] | None = kmip_field(
        Tag.PRIVATE_KEY_ATTRIBUTES, ATTRIBUTES
    )
    public_key_attributes: list[Attribute] | None = kmip_field(
        Tag.PUBLIC_KEY_ATTRIBUTES, ATTRIBUTES
    )
    common_protection_storage_masks: Item | None = kmip_field(
        Tag.COMMON_PROTECTION_STORAGE_MASKS, ANY
    )
    private_protection_storage_masks: Item | None = kmip_field(
        Tag.PRIVATE_PROTECTION_STORAGE_MASKS, ANY
    )
    public_protection_storage_masks: Item | None = kmip_field(
        Tag.PUBLIC_PROTECTION_STORAGE_MASKS, ANY
    )


@dataclass(slots=True)
class CreateKeyPairResponse:
    private_key_unique_identifier: str | None = kmip_field(
        Tag.PRIVATE_KEY_UNIQUE_IDENTIFIER, TEXT_STRING, required=True
    )
    public_key_unique_identifier: str | None = kmip_field(
        Tag.PUBLIC_KEY_UNIQUE_IDENTIFIER, TEXT_STRING, required=True
    )
    private_key_template_attribute: TemplateAttribute | None = _template_v1(
        Tag.PRIVATE_KEY_TEMPLATE_ATTRIBUTE
    )
    public_key_template_attribute: TemplateAttribute | None = _template_v1(
        Tag.PUBLIC_KEY_TEMPLATE_ATTRIBUTE
    )

    @property
    def unique_identifier(self) -> str | None:
        """The Private Key's: the batch's ID Placeholder afterwards (KMIP 1.4 §4.2) and the
        object the audit record names."""
        return self.private_key_unique_identifier


# --- Get and attributes ------------------------------------------------------------------------


@dataclass(slots=True)
class GetRequest:
    unique_identifier: str | Item | None = uid_field()
    key_format_type: KeyFormatType | int | None = kmip_field(Tag.KEY_FORMAT_TYPE, ENUMERATION)
    key_wrap_type: KeyWrapType | int | None = kmip_field(Tag.KEY_WRAP_TYPE, ENUMERATION)
    key_compression_type: KeyCompressionType | int | None = kmip_field(
        Tag.KEY_COMPRESSION_TYPE, ENUMERATION
    )
    key_wrapping_specification: Item | None = kmip_field(Tag.KEY_WRAPPING_SPECIFICATION, ANY)


@dataclass(slots=True)
class GetResponse:
    object_type: ObjectType | int | None = kmip_field(Tag.OBJECT_TYPE, ENUMERATION, required=True)
    unique_identifier: str | Item | None = uid_field(required=True)
    managed_object: Any = managed_object_field(required=True)


@dataclass(slots=True)
class GetAttributesRequest:
    unique_identifier: str | Item | None = uid_field()
    attribute_names: list[str] = kmip_field(
        Tag.ATTRIBUTE_NAME,
        TEXT_STRING,
        repeated=True,
        v2=(Tag.ATTRIBUTE_REFERENCE, ATTRIBUTE_REFERENCE, True),
    )


@dataclass(slots=True)
class GetAttributesResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    attributes: list[Attribute] = kmip_field(
        Tag.ATTRIBUTE, ATTRIBUTE, repeated=True, v2=(Tag.ATTRIBUTES, ATTRIBUTES)
    )


@dataclass(slots=True)
class GetAttributeListRequest:
    unique_identifier: str | Item | None = uid_field()


@dataclass(slots=True)
class GetAttributeListResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    attribute_names: list[str] = kmip_field(
        Tag.ATTRIBUTE_NAME,
        TEXT_STRING,
        repeated=True,
        v2=(Tag.ATTRIBUTE_REFERENCE, ATTRIBUTE_REFERENCE, True),
    )


@dataclass(slots=True)
class AddAttributeRequest:
    unique_identifier: str | Item | None = uid_field()
    attribute: Attribute | None = kmip_field(
        Tag.ATTRIBUTE, ATTRIBUTE, required=True, v2=(Tag.NEW_ATTRIBUTE, WRAPPED_ATTRIBUTE)
    )


@dataclass(slots=True)
class AddAttributeResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    attribute: Attribute | None = kmip_field(Tag.ATTRIBUTE, ATTRIBUTE, until=(1, 4))


@dataclass(slots=True)
class ModifyAttributeRequest:
    unique_identifier: str | Item | None = uid_field()
    current_attribute: Attribute | None = kmip_field(Tag.CURRENT_ATTRIBUTE, WRAPPED_ATTRIBUTE)
    attribute: Attribute | None = kmip_field(
        Tag.ATTRIBUTE, ATTRIBUTE, required=True, v2=(Tag.NEW_ATTRIBUTE, WRAPPED_ATTRIBUTE)
    )


@dataclass(slots=True)
class ModifyAttributeResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    attribute: Attribute | None = kmip_field(Tag.ATTRIBUTE, ATTRIBUTE, until=(1, 4))


@dataclass(slots=True)
class DeleteAttributeRequest:
    unique_identifier: str | Item | None = uid_field()
    current_attribute: Attribute | None = kmip_field(Tag.CURRENT_ATTRIBUTE, WRAPPED_ATTRIBUTE)
    attribute_name: str | None = kmip_field(
        Tag.ATTRIBUTE_NAME, TEXT_STRING, v2=(Tag.ATTRIBUTE_REFERENCE, ATTRIBUTE_REFERENCE)
    )
    attribute_index: int | None = kmip_field(Tag.ATTRIBUTE_INDEX, INTEGER)


@dataclass(slots=True)
class DeleteAttributeResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    attribute: Attribute | None = kmip_field(Tag.ATTRIBUTE, ATTRIBUTE, until=(1, 4))


@dataclass(slots=True)
class SetAttributeRequest:
    unique_identifier: str | Item | None = uid_field()
    attribute: Attribute | None = kmip_field(
        Tag.NEW_ATTRIBUTE, WRAPPED_ATTRIBUTE, required=True, since=(2, 0)
    )


@dataclass(slots=True)
class UidResponse:
    """A response payload holding only the Unique Identifier."""

    unique_identifier: str | Item | None = uid_field(required=True)


# --- Locate ------------------------------------------------------------------------------------


@dataclass(slots=True)
class LocateRequest:
    maximum_items: int | None = kmip_field(Tag.MAXIMUM_ITEMS, INTEGER)
    offset_items: int | None = kmip_field(Tag.OFFSET_ITEMS, INTEGER)
    storage_status_mask: int | None = kmip_field(Tag.STORAGE_STATUS_MASK, INTEGER)
    object_group_member: int | None = kmip_field(Tag.OBJECT_GROUP_MEMBER, ENUMERATION)
    attributes: list[Attribute] = kmip_field(
        Tag.ATTRIBUTE, ATTRIBUTE, repeated=True, v2=(Tag.ATTRIBUTES, ATTRIBUTES)
    )


@dataclass(slots=True)
class LocateResponse:
    located_items: int | None = kmip_field(Tag.LOCATED_ITEMS, INTEGER)
    unique_identifiers: list[str | Item] = uid_field(repeated=True)


# --- Lifecycle ---------------------------------------------------------------------------------


@dataclass(slots=True)
class UidRequest:
    """A request payload holding only an optional Unique Identifier (Activate, Destroy...)."""

    unique_identifier: str | Item | None = uid_field()


@dataclass(slots=True)
class RevokeRequest:
    unique_identifier: str | Item | None = uid_field()
    revocation_reason: RevocationReason | None = kmip_field(
        Tag.REVOCATION_REASON, RevocationReason, required=True
    )
    compromise_occurrence_date: int | None = kmip_field(Tag.COMPROMISE_OCCURRENCE_DATE, DATE_TIME)


@dataclass(slots=True)
class CheckRequest:
    unique_identifier: str | Item | None = uid_field()
    usage_limits_count: int | None = kmip_field(Tag.USAGE_LIMITS_COUNT, LONG_INTEGER)
    cryptographic_usage_mask: int | None = kmip_field(Tag.CRYPTOGRAPHIC_USAGE_MASK, INTEGER)
    lease_time: int | None = kmip_field(Tag.LEASE_TIME, INTERVAL)


@dataclass(slots=True)
class CheckResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    usage_limits_count: int | None = kmip_field(Tag.USAGE_LIMITS_COUNT, LONG_INTEGER)
    cryptographic_usage_mask: int | None = kmip_field(Tag.CRYPTOGRAPHIC_USAGE_MASK, INTEGER)
    lease_time: int | None = kmip_field(Tag.LEASE_TIME, INTERVAL)


# --- 2.x: Interop, Log -------------------------------------------------------------------------


@dataclass(slots=True)
class InteropRequest:
    interop_function: InteropFunction | int | None = kmip_field(
        Tag.INTEROP_FUNCTION, ENUMERATION, required=True
    )
    interop_identifier: str | None = kmip_field(Tag.INTEROP_IDENTIFIER, TEXT_STRING)


@dataclass(slots=True)
class LogRequest:
    log_message: str | None = kmip_field(Tag.LOG_MESSAGE, TEXT_STRING, required=True)


@dataclass(slots=True)
class EmptyPayload:
    """A payload with no fields (Interop and Log responses)."""


REQUEST_PAYLOADS: dict[Operation, type] = {
    Operation.DISCOVER_VERSIONS: DiscoverVersionsRequest,
    Operation.QUERY: QueryRequest,
    Operation.CREATE: CreateRequest,
    Operation.REGISTER: RegisterRequest,
    Operation.RE_KEY: ReKeyRequest,
    Operation.CREATE_KEY_PAIR: CreateKeyPairRequest,
    Operation.GET: GetRequest,
    Operation.GET_ATTRIBUTES: GetAttributesRequest,
    Operation.GET_ATTRIBUTE_LIST: GetAttributeListRequest,
    Operation.ADD_ATTRIBUTE: AddAttributeRequest,
    Operation.MODIFY_ATTRIBUTE: ModifyAttributeRequest,
    Operation.DELETE_ATTRIBUTE: DeleteAttributeRequest,
    Operation.SET_ATTRIBUTE: SetAttributeRequest,
    Operation.LOCATE: LocateRequest,
    Operation.ACTIVATE: UidRequest,
    Operation.REVOKE: RevokeRequest,
    Operation.DESTROY: UidRequest,
    Operation.CHECK: CheckRequest,
    Operation.INTEROP: InteropRequest,
    Operation.LOG: LogRequest,
    Operation.ENCRYPT: EncryptRequest,
    Operation.DECRYPT: DecryptRequest,
    Operation.SIGN: SignRequest,
    Operation.SIGNATURE_VERIFY: SignatureVerifyRequest,
    Operation.MAC: MacRequest,
    Operation.MAC_VERIFY: MacVerifyRequest,
    Operation.HASH: HashRequest,
    Operation.RNG_RETRIEVE: RngRetrieveRequest,
}
"""Operation → request payload class."""

RESPONSE_PAYLOADS: dict[Operation, type] = {
    Operation.DISCOVER_VERSIONS: DiscoverVersionsResponse,
    Operation.QUERY: QueryResponse,
    Operation.CREATE: CreateResponse,
    Operation.REGISTER: RegisterResponse,
    Operation.RE_KEY: ReKeyResponse,
    Operation.CREATE_KEY_PAIR: CreateKeyPairResponse,
    Operation.GET: GetResponse,
    Operation.GET_ATTRIBUTES: GetAttributesResponse,
    Operation.GET_ATTRIBUTE_LIST: GetAttributeListResponse,
    Operation.ADD_ATTRIBUTE: AddAttributeResponse,
    Operation.MODIFY_ATTRIBUTE: ModifyAttributeResponse,
    Operation.DELETE_ATTRIBUTE: DeleteAttributeResponse,
    Operation.SET_ATTRIBUTE: UidResponse,
    Operation.LOCATE: LocateResponse,
    Operation.ACTIVATE: UidResponse,
    Operation.REVOKE: UidResponse,
    Operation.DESTROY: UidResponse,
    Operation.CHECK: CheckResponse,
    Operation.INTEROP: EmptyPayload,
    Operation.LOG: EmptyPayload,
    Operation.ENCRYPT: EncryptResponse,
    Operation.DECRYPT: DecryptResponse,
    Operation.SIGN: SignResponse,
    Operation.SIGNATURE_VERIFY: SignatureVerifyResponse,
    Operation.MAC: MacResponse,
    Operation.MAC_VERIFY: MacVerifyResponse,
    Operation.HASH: HashResponse,
    Operation.RNG_RETRIEVE: RngRetrieveResponse,
}
"""Operation → response payload class."""


def requested_attributes(payload: Any) -> list[Attribute]:
    """The attributes a Create/Register/Re-key request asks for, in 1.x or 2.x form."""
    attributes = getattr(payload, "attributes", None)
    if attributes is not None:
        return list(attributes)
    template = getattr(payload, "template_attribute", None)
    return [] if template is None else list(template.attributes)
