"""Create Key Pair through the engine in process (see conftest.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kmipd.protocol import messages
from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    CryptographicAlgorithm,
    KeyFormatType,
    LinkType,
    ObjectType,
    Operation,
    RecommendedCurve,
    ResultReason,
    ResultStatus,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import (
    CreateKeyPairRequest,
    GetAttributesRequest,
    GetRequest,
    LocateRequest,
    QueryRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import (
    BOOLEAN,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
)
from kmipd.service.identity import ClientIdentity
from tests.support.kmip import name_attribute
from tests.unit.operations.conftest import NOW, EngineHarness

A = CryptographicAlgorithm
OK = ResultStatus.SUCCESS
SIGN, VERIFY = 1, 2


def algorithm(value: int) -> Attribute:
    return Attribute("Cryptographic Algorithm", value, None, ENUMERATION)


def length(value: int) -> Attribute:
    return Attribute("Cryptographic Length", value, None, INTEGER)


def usage(value: int) -> Attribute:
    return Attribute("Cryptographic Usage Mask", value, None, INTEGER)


def curve(value: int) -> Attribute:
    domain = Item(
        Tag.CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
        STRUCTURE,
        [Item(Tag.RECOMMENDED_CURVE, ENUMERATION, value)],
    )
    return Attribute("Cryptographic Domain Parameters", domain, None, STRUCTURE)


def pair_request(
    common: list[Attribute],
    private: list[Attribute] | None = None,
    public: list[Attribute] | None = None,
    version: tuple[int, int] = (2, 1),
) -> CreateKeyPairRequest:
    private = [usage(SIGN)] if private is None else private
    public = [usage(VERIFY)] if public is None else public
    if version >= (2, 0):
        return CreateKeyPairRequest(
            common_attributes=common, private_key_attributes=private, public_key_attributes=public
        )
    return CreateKeyPairRequest(
        common_template_attribute=TemplateAttribute(names=[], attributes=common),
        private_key_template_attribute=TemplateAttribute(names=[], attributes=private),
        public_key_template_attribute=TemplateAttribute(names=[], attributes=public),
    )


def create_pair(
    kmip: EngineHarness, *common: Attribute, version: tuple[int, int] = (2, 1), **parts: object
) -> tuple[str, str]:
    result = kmip.call(
        Operation.CREATE_KEY_PAIR,
        pair_request(list(common), version=version, **parts),  # type: ignore[arg-type]
        version=version,
    )
    assert result.result_status == OK, result.result_message
    return (
        str(result.payload.private_key_unique_identifier),
        str(result.payload.public_key_unique_identifier),
    )


def refused(kmip: EngineHarness, request: CreateKeyPairRequest) -> tuple[ResultReason, str]:
    result = kmip.call(Operation.CREATE_KEY_PAIR, request)
    assert result.result_status == ResultStatus.OPERATION_FAILED
    return ResultReason(result.result_reason), str(result.result_message)


def get(kmip: EngineHarness, uid: str, fmt: int | None = None, **kwargs: object) -> object:
    result = kmip.call(
        Operation.GET,
        GetRequest(unique_identifier=uid, key_format_type=fmt),
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.result_status == OK, result.result_message
    return result.payload


def attributes(kmip: EngineHarness, uid: str) -> dict[str, list[object]]:
    result = kmip.call(Operation.GET_ATTRIBUTES, GetAttributesRequest(unique_identifier=uid))
    assert result.result_status == OK, result.result_message
    found: dict[str, list[object]] = {}
    for attribute in result.payload.attributes:
        found.setdefault(attribute.name, []).append(attribute.value)
    return found


def link_of(found: dict[str, list[object]], link_type: LinkType) -> str | None:
    for value in found.get("Link", []):
        assert isinstance(value, Item)
        kind, target = value.find(Tag.LINK_TYPE), value.find(Tag.LINKED_OBJECT_IDENTIFIER)
        if kind is not None and kind.value == link_type and target is not None:
            return str(target.value)
    return None


@pytest.mark.parametrize("version", [(1, 4), (2, 1)], ids=["1.4", "2.1"])
def test_rsa_pair_is_linked_and_signs(kmip: EngineHarness, version: tuple[int, int]) -> None:
    private_uid, public_uid = create_pair(
        kmip,
        algorithm(A.RSA),
        length(2048),
        private=[name_attribute("signing key"), usage(SIGN)],
        public=[name_attribute("verifying key"), usage(VERIFY)],
        version=version,
    )
    private_attrs, public_attrs = attributes(kmip, private_uid), attributes(kmip, public_uid)
    assert private_attrs["Object Type"] == [ObjectType.PRIVATE_KEY]
    assert public_attrs["Object Type"] == [ObjectType.PUBLIC_KEY]
    for found in (private_attrs, public_attrs):
        assert found["State"] == [State.PRE_ACTIVE]
        assert found["Cryptographic Algorithm"] == [A.RSA]
        assert found["Cryptographic Length"] == [2048]
        assert found["Key Format Type"] == [KeyFormatType.PKCS_1]
    assert private_attrs["Cryptographic Usage Mask"] == [SIGN]
    assert public_attrs["Cryptographic Usage Mask"] == [VERIFY]
    assert link_of(private_attrs, LinkType.PUBLIC_KEY_LINK) == public_uid
    assert link_of(public_attrs, LinkType.PRIVATE_KEY_LINK) == private_uid

    private_der = get(kmip, private_uid).managed_object.key_block.key_value.key_material
    public_der = get(kmip, public_uid).managed_object.key_block.key_value.key_material
    private_key = serialization.load_der_private_key(private_der, None)
    public_key = serialization.load_der_public_key(public_der)
    assert isinstance(private_key, rsa.RSAPrivateKey) and isinstance(public_key, rsa.RSAPublicKey)
    assert private_key.key_size == 2048
    signature = private_key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    public_key.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize(
    ("given", "expected_curve", "bits"),
    [
        ([algorithm(A.EC), length(256)], ec.SECP256R1, 256),
        ([algorithm(A.ECDSA), curve(RecommendedCurve.P_384)], ec.SECP384R1, 384),
        ([algorithm(A.EC), length(384), curve(RecommendedCurve.P_384)], ec.SECP384R1, 384),
    ],
    ids=["EC-256", "ECDSA-P384", "EC-384-and-curve"],
)
def test_ec_pair(
    kmip: EngineHarness, given: list[Attribute], expected_curve: type, bits: int
) -> None:
    private_uid, public_uid = create_pair(kmip, *given)
    private_block = get(kmip, private_uid).managed_object.key_block
    public_block = get(kmip, public_uid).managed_object.key_block
    assert private_block.key_format_type == KeyFormatType.PKCS_8
    assert public_block.key_format_type == KeyFormatType.X_509
    assert private_block.cryptographic_length == bits
    private_key = serialization.load_der_private_key(private_block.key_value.key_material, None)
    public_key = serialization.load_der_public_key(public_block.key_value.key_material)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(private_key.curve, expected_curve)
    signature = private_key.sign(b"message", ec.ECDSA(hashes.SHA256()))
    public_key.verify(signature, b"message", ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    assert attributes(kmip, public_uid)["Cryptographic Length"] == [bits]


def test_the_id_placeholder_is_the_private_key(kmip: EngineHarness) -> None:
    results = kmip.batch(
        (Operation.CREATE_KEY_PAIR, pair_request([algorithm(A.EC), length(256)])),
        (Operation.ACTIVATE, UidRequest()),
    )
    assert [r.result_status for r in results] == [OK, OK]
    private_uid = results[0].payload.private_key_unique_identifier
    assert results[1].payload.unique_identifier == private_uid
    assert attributes(kmip, private_uid)["State"] == [State.ACTIVE]


def test_own_attributes_replace_common_ones(kmip: EngineHarness) -> None:
    private_uid, public_uid = create_pair(
        kmip,
        algorithm(A.RSA),
        length(2048),
        usage(SIGN | VERIFY),
        private=[],
        public=[usage(VERIFY)],
    )
    assert attributes(kmip, private_uid)["Cryptographic Usage Mask"] == [SIGN | VERIFY]
    assert attributes(kmip, public_uid)["Cryptographic Usage Mask"] == [VERIFY]


def test_an_activation_date_in_the_past_activates_both(kmip: EngineHarness) -> None:
    past = Attribute("Activation Date", NOW - 10, None, DATE_TIME)
    private_uid, public_uid = create_pair(kmip, algorithm(A.EC), length(256), past)
    assert attributes(kmip, private_uid)["State"] == [State.ACTIVE]
    assert attributes(kmip, public_uid)["State"] == [State.ACTIVE]


def test_both_keys_belong_to_the_callers_instance(kmip: EngineHarness) -> None:
    kmip.add_instance("other")
    private_uid, public_uid = create_pair(kmip, algorithm(A.EC), length(256))
    for uid in (private_uid, public_uid):
        result = kmip.call(Operation.GET, GetRequest(unique_identifier=uid), instance="other")
        assert result.result_reason == ResultReason.OBJECT_NOT_FOUND


@pytest.mark.parametrize(
    ("common", "reason", "says"),
    [
        ([length(2048)], ResultReason.MISSING_DATA, "Cryptographic Algorithm"),
        ([algorithm(A.RSA)], ResultReason.MISSING_DATA, "Cryptographic Length"),
        ([algorithm(A.RSA), length(1024)], ResultReason.INVALID_FIELD, "2048, 3072 or 4096"),
        ([algorithm(A.EC), length(521)], ResultReason.INVALID_FIELD, "256 or 384"),
        ([algorithm(A.EC)], ResultReason.MISSING_DATA, "Recommended Curve"),
        (
            [algorithm(A.EC), curve(RecommendedCurve.K_163)],
            ResultReason.INVALID_FIELD,
            "P-256, P-384 or secp256k1",
        ),
        (
            [algorithm(A.EC), length(256), curve(RecommendedCurve.P_384)],
            ResultReason.INVALID_FIELD,
            "does not match",
        ),
        ([algorithm(A.AES), length(256)], ResultReason.INVALID_FIELD, "no key pairs"),
        ([algorithm(A.DSA), length(2048)], ResultReason.FEATURE_NOT_SUPPORTED, "RSA and EC"),
        (
            [algorithm(A.RSA), length(2048), name_attribute("both")],
            ResultReason.NON_UNIQUE_NAME_ATTRIBUTE,
            "same Name",
        ),
    ],
    ids=[
        "no-algorithm",
        "rsa-no-length",
        "rsa-1024",
        "ec-521",
        "ec-no-length",
        "ec-k163",
        "ec-length-vs-curve",
        "aes",
        "dsa",
        "common-name",
    ],
)
def test_bad_parameters_are_refused_precisely(
    kmip: EngineHarness, common: list[Attribute], reason: ResultReason, says: str
) -> None:
    got, message = refused(kmip, pair_request(common))
    assert (got, says in message) == (reason, True), message


def test_private_and_public_asking_for_different_keys_is_refused(kmip: EngineHarness) -> None:
    request = pair_request([algorithm(A.RSA)], private=[length(2048)], public=[length(3072)])
    assert refused(kmip, request) == (
        ResultReason.INVALID_FIELD,
        "the private and public key attributes ask for different keys",
    )


def test_a_taken_name_is_refused_and_nothing_is_created(kmip: EngineHarness) -> None:
    first = create_pair(kmip, algorithm(A.EC), length(256), private=[name_attribute("taken")])
    reason, _ = refused(
        kmip,
        pair_request([algorithm(A.EC), length(256)], private=[], public=[name_attribute("taken")]),
    )
    assert reason == ResultReason.NON_UNIQUE_NAME_ATTRIBUTE
    located = kmip.call(Operation.LOCATE, LocateRequest())
    assert sorted(located.payload.unique_identifiers) == sorted(first)


def test_a_server_attribute_is_refused(kmip: EngineHarness) -> None:
    request = pair_request(
        [algorithm(A.EC), length(256)],
        private=[Attribute("Object Type", ObjectType.PRIVATE_KEY, None, ENUMERATION)],
    )
    assert refused(kmip, request)[0] == ResultReason.ATTRIBUTE_READ_ONLY


def test_query_reports_create_key_pair(kmip: EngineHarness) -> None:
    result = kmip.call(Operation.QUERY, QueryRequest(query_functions=[1]))  # Query Operations
    assert Operation.CREATE_KEY_PAIR in result.payload.operations


@pytest.mark.parametrize(
    "common",
    [
        [algorithm(A.RSA), Attribute("Cryptographic Length", "2048", None, TEXT_STRING)],
        [Attribute("Cryptographic Algorithm", "RSA", None, TEXT_STRING), length(2048)],
        [
            algorithm(A.EC),
            length(256),
            Attribute(
                "Cryptographic Domain Parameters",
                Item(
                    Tag.CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
                    STRUCTURE,
                    [Item(Tag.RECOMMENDED_CURVE, TEXT_STRING, "P-256")],
                ),
                None,
                STRUCTURE,
            ),
        ],
    ],
    ids=["length-as-text", "algorithm-as-text", "curve-as-text"],
)
def test_values_of_the_wrong_type_are_invalid_field(
    kmip: EngineHarness, common: list[Attribute]
) -> None:
    result = kmip.call(
        Operation.CREATE_KEY_PAIR, pair_request(common, version=(1, 4)), version=(1, 4)
    )
    assert result.result_status == ResultStatus.OPERATION_FAILED
    assert result.result_reason == ResultReason.INVALID_FIELD, result.result_message


def call_while_ticking(
    kmip: EngineHarness, operation: Operation, payload: object
) -> tuple[messages.ResponseBatchItem, list[float]]:
    """Run one request while a coroutine ticks every 10 ms on the same event loop; the
    response and the gaps between ticks (a long gap: the loop was held)."""
    request = messages.RequestMessage(
        header=messages.RequestHeader(protocol_version=ProtocolVersion.of((2, 1)), batch_count=1),
        batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
    )
    client = ClientIdentity("default", "fingerprint-default", "CN=test")
    gaps: list[float] = []

    async def run() -> messages.ResponseMessage:
        finished = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not finished.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        try:
            tree = await kmip.engine.process(messages.request_to_item(request), client)
        finally:
            finished.set()
            await task
        return messages.response_from_item(tree)

    response = kmip.loop.run_until_complete(run())
    return response.batch_items[0], gaps


def test_rsa_generation_does_not_hold_the_event_loop(kmip: EngineHarness) -> None:
    """OpenSSL holds the GIL while it generates an RSA key (about 2 s for 4096 bits here):
    kmipd generates in a worker process, so other connections are served meanwhile."""
    item, gaps = call_while_ticking(
        kmip, Operation.CREATE_KEY_PAIR, pair_request([algorithm(A.RSA), length(4096)])
    )
    assert item.result_status == OK, item.result_message
    assert len(gaps) >= 5, gaps  # the generation took a while: the loop ran meanwhile
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"


def test_undo_removes_both_keys(kmip: EngineHarness) -> None:
    results = kmip.batch(
        (Operation.CREATE_KEY_PAIR, pair_request([algorithm(A.EC), length(256)])),
        (Operation.GET, GetRequest(unique_identifier="no-such-object")),
        option=BatchErrorContinuationOption.UNDO,
    )
    assert [r.result_status for r in results] == [
        ResultStatus.OPERATION_UNDONE,
        ResultStatus.OPERATION_FAILED,
    ]
    located = kmip.call(Operation.LOCATE, LocateRequest())
    assert located.payload.unique_identifiers == []


def test_a_sensitive_private_key_is_not_served_but_its_public_key_is(
    kmip: EngineHarness,
) -> None:
    private_uid, public_uid = create_pair(
        kmip,
        algorithm(A.RSA),
        length(2048),
        private=[usage(SIGN), Attribute("Sensitive", True, None, BOOLEAN)],
    )
    refused = kmip.call(Operation.GET, GetRequest(unique_identifier=private_uid))
    assert refused.result_reason == ResultReason.SENSITIVE
    public = get(kmip, public_uid).managed_object.key_block
    assert isinstance(
        serialization.load_der_public_key(public.key_value.key_material), rsa.RSAPublicKey
    )
