"""One attribute representation, 1.x and 2.x wire forms."""

from __future__ import annotations

import pytest

from kmipd.protocol import messages, ttlv
from kmipd.protocol._generated import CryptographicAlgorithm, NameType, Tag
from kmipd.protocol.attributes import (
    ATTRIBUTE_REFERENCE,
    Attribute,
    TemplateAttribute,
    from_v1_item,
    from_v2_item,
    to_v1_item,
    to_v2_item,
)
from kmipd.protocol.codec import from_item, to_item
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.payloads import CreateRequest, requested_attributes
from kmipd.protocol.ttlv import (
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
)
from tests.support.shared import KMIP_TESTCASES, require

NAME_V1 = Item(
    Tag.ATTRIBUTE,
    STRUCTURE,
    [
        Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, "Name"),
        Item(Tag.ATTRIBUTE_INDEX, INTEGER, 0),
        Item(
            Tag.ATTRIBUTE_VALUE,
            STRUCTURE,
            [
                Item(Tag.NAME_VALUE, TEXT_STRING, "key1"),
                Item(Tag.NAME_TYPE, ENUMERATION, 1),
            ],
        ),
    ],
)
ALG_V1 = Item(
    Tag.ATTRIBUTE,
    STRUCTURE,
    [
        Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, "Cryptographic Algorithm"),
        Item(Tag.ATTRIBUTE_VALUE, ENUMERATION, 3),
    ],
)
CUSTOM_V1 = Item(
    Tag.ATTRIBUTE,
    STRUCTURE,
    [
        Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, "x-Product"),
        Item(Tag.ATTRIBUTE_VALUE, TEXT_STRING, "VMware vSphere"),
    ],
)
CUSTOM_V2 = Item(
    Tag.ATTRIBUTE,
    STRUCTURE,
    [
        Item(Tag.VENDOR_IDENTIFICATION, TEXT_STRING, "x"),
        Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, "Product"),
        Item(Tag.ATTRIBUTE_VALUE, TEXT_STRING, "VMware vSphere"),
    ],
)


def test_v1_attribute_decoding() -> None:
    name = from_v1_item(NAME_V1)
    assert name.name == "Name" and name.index == 0 and name.type == STRUCTURE
    assert isinstance(name.value, Item) and name.value.tag == Tag.NAME
    alg = from_v1_item(ALG_V1)
    assert alg.value is CryptographicAlgorithm.AES and alg.type == ENUMERATION
    assert from_v1_item(CUSTOM_V1) == Attribute("x-Product", "VMware vSphere", None, TEXT_STRING)


def test_v1_round_trip_is_exact() -> None:
    for item in (NAME_V1, ALG_V1, CUSTOM_V1):
        assert to_v1_item(from_v1_item(item)) == item


def test_1x_to_2x_and_back() -> None:
    alg = from_v1_item(ALG_V1)
    assert to_v2_item(alg) == Item(Tag.CRYPTOGRAPHIC_ALGORITHM, ENUMERATION, 3)
    assert to_v2_item(from_v1_item(CUSTOM_V1)) == CUSTOM_V2
    assert from_v2_item(CUSTOM_V2) == from_v1_item(CUSTOM_V1)
    name_v2 = to_v2_item(from_v1_item(NAME_V1))
    assert name_v2.tag == Tag.NAME and name_v2.value == NAME_V1.value[2].value
    back = from_v2_item(name_v2)
    assert back.name == "Name" and back.value.value[1].value == NameType.UNINTERPRETED_TEXT_STRING
    assert to_v1_item(Attribute("x-Product", "VMware vSphere")) == CUSTOM_V1


def test_date_time_attribute_keeps_its_type() -> None:
    item = Item(Tag.ACTIVATION_DATE, DATE_TIME, 1_700_000_000)
    attr = from_v2_item(item)
    assert attr == Attribute("Activation Date", 1_700_000_000, None, DATE_TIME)
    assert to_v2_item(attr) == item
    assert to_v1_item(attr).value[1] == Item(Tag.ATTRIBUTE_VALUE, DATE_TIME, 1_700_000_000)


def test_attribute_reference_forms() -> None:
    assert ATTRIBUTE_REFERENCE.encode("State", Tag.ATTRIBUTE_REFERENCE, (2, 1)) == Item(
        Tag.ATTRIBUTE_REFERENCE, ENUMERATION, Tag.STATE
    )
    vendor = ATTRIBUTE_REFERENCE.encode("x-Name", Tag.ATTRIBUTE_REFERENCE, (2, 1))
    assert vendor.type == STRUCTURE
    assert ATTRIBUTE_REFERENCE.decode(vendor, (2, 1)) == "x-Name"
    assert (
        ATTRIBUTE_REFERENCE.decode(Item(Tag.ATTRIBUTE_REFERENCE, ENUMERATION, Tag.STATE), (2, 1))
        == "State"
    )


def test_malformed_attribute_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        from_v1_item(Item(Tag.ATTRIBUTE, STRUCTURE, [Item(Tag.ATTRIBUTE_VALUE, INTEGER, 1)]))
    with pytest.raises(DecodeError):
        from_v1_item(Item(Tag.ATTRIBUTE, TEXT_STRING, "x"))


def test_create_template_attribute_and_attributes_agree() -> None:
    attrs = [from_v1_item(ALG_V1), from_v1_item(CUSTOM_V1)]
    v1 = CreateRequest(object_type=2, template_attribute=TemplateAttribute(attributes=attrs))
    v2 = CreateRequest(object_type=2, attributes=attrs)
    tree1 = to_item(v1, Tag.REQUEST_PAYLOAD, (1, 1))
    tree2 = to_item(v2, Tag.REQUEST_PAYLOAD, (2, 1))
    assert tree1.value[1].tag == Tag.TEMPLATE_ATTRIBUTE
    assert tree2.value[1] == Item(
        Tag.ATTRIBUTES, STRUCTURE, [Item(Tag.CRYPTOGRAPHIC_ALGORITHM, ENUMERATION, 3), CUSTOM_V2]
    )
    assert requested_attributes(from_item(CreateRequest, tree1, (1, 1))) == attrs
    assert requested_attributes(from_item(CreateRequest, tree2, (2, 1))) == attrs


@pytest.mark.shared
def test_oasis_sklc_create_1x_attributes_match_2x() -> None:
    """SKLC-M-1-14 and SKLC-M-1-21 create the same key: the attributes must agree."""
    require(KMIP_TESTCASES)
    from kmipd.protocol.xml_encoding import item_from_element
    from tests.support import oasis

    def first_create(path: str) -> list[Attribute]:
        case = oasis.load_case(KMIP_TESTCASES / path)
        for step in case.steps:
            tree = item_from_element(oasis.substitute(step.request, now=0, unbound="fill"))
            msg = messages.request_from_item(tree)
            payload = msg.batch_items[0].payload
            if isinstance(payload, CreateRequest):
                attrs = requested_attributes(payload)
                # Re-encode the 1.x attributes as 2.x items and back: same values.
                for attr in attrs:
                    assert from_v2_item(to_v2_item(attr)).value == attr.value
                    ttlv.encode(to_v2_item(attr))
                return attrs
        raise AssertionError("no Create")

    v1 = first_create("v1.4/profiles/mandatory/SKLC-M-1-14.xml")
    v2 = first_create("v2.1/profiles/mandatory/SKLC-M-1-21.xml")
    assert [a.name for a in v1] == [a.name for a in v2]
    for a1, a2 in zip(v1, v2, strict=True):
        if a1.name != "Name":  # the name carries the test ID
            assert (a1.value, a1.type) == (a2.value, a2.type)
