"""The KMIP XML and JSON encodings: value formats, names by tag and version, errors, limits."""

from __future__ import annotations

import contextlib
import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmipd.protocol import tables, ttlv
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.json_encoding import from_json, item_from_obj, to_json
from kmipd.protocol.limits import Limits
from kmipd.protocol.ttlv import (
    BIG_INTEGER,
    BOOLEAN,
    BYTE_STRING,
    DATE_TIME,
    DATE_TIME_EXTENDED,
    ENUMERATION,
    INTEGER,
    INTERVAL,
    LONG_INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
)
from kmipd.protocol.xml_encoding import from_xml, item_from_element, message_version, to_xml


def tag(name: str) -> int:
    value = tables.tag_value(name)
    assert value is not None, name
    return value


USAGE_MASK = tag("CryptographicUsageMask")
CRYPTO_ALG = tag("CryptographicAlgorithm")
HASH_ALG = tag("HashingAlgorithm")
OBJECT_TYPE = tag("ObjectType")
RESULT_REASON = tag("ResultReason")
ACTIVATION_DATE = tag("ActivationDate")
KEY_MATERIAL = tag("KeyMaterial")
CRYPTO_LENGTH = tag("CryptographicLength")
ATTRIBUTE = tag("Attribute")
ATTRIBUTE_NAME = tag("AttributeName")
ATTRIBUTE_VALUE = tag("AttributeValue")
ATTRIBUTE_REFERENCE = tag("AttributeReference")
VENDOR_TAG = 0x540001
EXAMPLE_TAG = 0x420020  # the tag of the spec's §9.1.2 examples

SHA3_256_HASHING = 0x0F
SHA3_256_CRYPTO = 0x20
ENCRYPT, DECRYPT, CONTENT_COMMITMENT = 0x04, 0x08, 0x400


def xml_item(tag_name: str, type_name: str, value: str) -> Item:
    return from_xml(f'<{tag_name} type="{type_name}" value="{value}"/>')


def json_item(tag_name: str, type_name: str, value: object) -> Item:
    return from_json(json.dumps({"tag": tag_name, "type": type_name, "value": value}))


def message(version: tuple[int, int], *children: str, response: bool = False) -> str:
    kind = "Response" if response else "Request"
    return (
        f"<{kind}Message><{kind}Header><ProtocolVersion>"
        f'<ProtocolVersionMajor type="Integer" value="{version[0]}"/>'
        f'<ProtocolVersionMinor type="Integer" value="{version[1]}"/>'
        f'</ProtocolVersion><BatchCount type="Integer" value="1"/></{kind}Header>'
        f"<BatchItem>{''.join(children)}</BatchItem></{kind}Message>"
    )


def attribute(name: str, type_name: str, value: str) -> str:
    return (
        f'<Attribute><AttributeName type="TextString" value="{name}"/>'
        f'<AttributeValue type="{type_name}" value="{value}"/></Attribute>'
    )


def assert_round_trips(item: Item, version: tuple[int, int] | None = None) -> None:
    raw = ttlv.encode(item)
    assert ttlv.encode(from_xml(to_xml(item, version), version=version)) == raw
    assert ttlv.encode(from_json(to_json(item, version), version=version)) == raw


# --------------------------------------------------------------------------------------------
# Value formats, XML
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "text", "typ", "value"),
    [
        ("Integer", "8", INTEGER, 8),
        ("Integer", "-1", INTEGER, -1),
        ("Integer", "2147483647", INTEGER, 2**31 - 1),
        ("Integer", "-2147483648", INTEGER, -(2**31)),
        ("Integer", "0x0000000A", INTEGER, 10),
        ("Integer", "0xFFFFFFFF", INTEGER, -1),
        ("LongInteger", "123456789000000000", LONG_INTEGER, 123456789000000000),
        ("LongInteger", "-9223372036854775808", LONG_INTEGER, -(2**63)),
        ("BigInteger", "0000000003FD35EB6BC2DF4618080000", BIG_INTEGER, 1234567890 * 10**18),
        ("BigInteger", "FFFFFFFFFFFFFFFF", BIG_INTEGER, -1),
        ("BigInteger", "0x010001", BIG_INTEGER, 65537),
        ("BigInteger", "abc", BIG_INTEGER, 0xABC),
        ("Enumeration", "0x000000FF", ENUMERATION, 255),
        ("Boolean", "true", BOOLEAN, True),
        ("Boolean", "false", BOOLEAN, False),
        ("TextString", "Hello World", TEXT_STRING, "Hello World"),
        ("TextString", "", TEXT_STRING, ""),
        ("ByteString", "010203", BYTE_STRING, b"\x01\x02\x03"),
        ("ByteString", "DEADbeef", BYTE_STRING, b"\xde\xad\xbe\xef"),
        ("ByteString", "", BYTE_STRING, b""),
        ("DateTime", "2008-03-14T11:56:40+00:00", DATE_TIME, 1205495800),
        ("DateTime", "2008-03-14T11:56:40Z", DATE_TIME, 1205495800),
        ("DateTime", "2008-03-14T21:56:40+10:00", DATE_TIME, 1205495800),
        ("DateTime", "2008-03-14T06:26:40-05:30", DATE_TIME, 1205495800),
        ("DateTime", "2008-03-14T11:56:40", DATE_TIME, 1205495800),
        ("DateTime", "1969-12-31T23:59:59+00:00", DATE_TIME, -1),
        ("DateTime", "0x0000000047DA67F8", DATE_TIME, 1205495800),
        (
            "DateTimeExtended",
            "2008-03-14T11:56:40.000001+00:00",
            DATE_TIME_EXTENDED,
            1205495800_000001,
        ),
        ("DateTimeExtended", "2008-03-14T11:56:40.5Z", DATE_TIME_EXTENDED, 1205495800_500000),
        ("DateTimeExtended", "2008-03-14T11:56:40Z", DATE_TIME_EXTENDED, 1205495800_000000),
        ("Interval", "864000", INTERVAL, 864000),
        ("Interval", "4294967295", INTERVAL, 2**32 - 1),
    ],
)
def test_xml_values(type_name: str, text: str, typ: int, value: object) -> None:
    item = from_xml(f'<TTLV tag="0x420020" type="{type_name}" value="{text}"/>')
    assert item == Item(EXAMPLE_TAG, typ, value)
    assert_round_trips(item)


def test_xml_element_names_and_structure_default() -> None:
    item = from_xml(
        '<TemplateAttribute>\n  <Name><NameValue type="TextString" value="k"/>'
        '<NameType type="Enumeration" value="UninterpretedTextString"/></Name>\n'
        "</TemplateAttribute>"
    )
    name = tag("Name")
    assert item == Item(
        tag("TemplateAttribute"),
        STRUCTURE,
        [
            Item(
                name,
                STRUCTURE,
                [Item(tag("NameValue"), TEXT_STRING, "k"), Item(tag("NameType"), ENUMERATION, 1)],
            )
        ],
    )
    assert from_xml('<Name type="Structure"/>') == Item(name, STRUCTURE, [])


def test_xml_output_format() -> None:
    item = Item(
        tag("RequestPayload"),
        STRUCTURE,
        [
            Item(OBJECT_TYPE, ENUMERATION, 2),
            Item(USAGE_MASK, INTEGER, ENCRYPT | DECRYPT),
            Item(ACTIVATION_DATE, DATE_TIME, 1335514344),
            Item(KEY_MATERIAL, BYTE_STRING, b"\x00\xff"),
            Item(tag("Sensitive"), BOOLEAN, False),
            Item(VENDOR_TAG, TEXT_STRING, 'a&b<c>"d"\n\te'),
            Item(VENDOR_TAG + 1, STRUCTURE, [Item(VENDOR_TAG + 2, ENUMERATION, 10)]),
        ],
    )
    assert to_xml(item) == (
        "<RequestPayload>\n"
        '  <ObjectType type="Enumeration" value="SymmetricKey"/>\n'
        '  <CryptographicUsageMask type="Integer" value="Encrypt Decrypt"/>\n'
        '  <ActivationDate type="DateTime" value="2012-04-27T08:12:24+00:00"/>\n'
        '  <KeyMaterial type="ByteString" value="00ff"/>\n'
        '  <Sensitive type="Boolean" value="false"/>\n'
        '  <TTLV tag="0x540001" type="TextString" '
        'value="a&amp;b&lt;c&gt;&quot;d&quot;&#10;&#9;e"/>\n'
        '  <TTLV tag="0x540002" type="Structure">\n'
        '    <TTLV tag="0x540003" type="Enumeration" value="0x0000000A"/>\n'
        "  </TTLV>\n"
        "</RequestPayload>\n"
    )
    assert to_xml(item, indent=None).count("\n") == 0
    assert_round_trips(item)


def test_date_time_extended_output() -> None:
    item = Item(EXAMPLE_TAG, DATE_TIME_EXTENDED, 1205495800_000123)
    assert 'value="2008-03-14T11:56:40.000123+00:00"' in to_xml(item)
    assert json.loads(to_json(item))["value"] == "2008-03-14T11:56:40.000123+00:00"


def test_dates_outside_iso_years_are_written_as_hex() -> None:
    for value in (2**62, -(2**62)):
        item = Item(ACTIVATION_DATE, DATE_TIME, value)
        assert 'value="0x' in to_xml(item)
        assert_round_trips(item)


def test_big_integer_output_is_sign_extended_hex() -> None:
    assert 'value="0000000000010001"' in to_xml(Item(EXAMPLE_TAG, BIG_INTEGER, 65537))
    assert json.loads(to_json(Item(EXAMPLE_TAG, BIG_INTEGER, -1)))["value"] == (
        "0xffffffffffffffff"
    )


# --------------------------------------------------------------------------------------------
# Masks and enumerations by tag
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Encrypt Decrypt", ENCRYPT | DECRYPT),
        ("Encrypt   Decrypt  ", ENCRYPT | DECRYPT),
        ("Decrypt Encrypt", ENCRYPT | DECRYPT),
        ("0x0000000C", ENCRYPT | DECRYPT),
        ("Encrypt 0x00000008", ENCRYPT | DECRYPT),
        ("12", ENCRYPT | DECRYPT),
        ("0", 0),
        ("0x80000000", -(2**31)),
    ],
)
def test_xml_masks(text: str, value: int) -> None:
    assert xml_item("CryptographicUsageMask", "Integer", text) == Item(USAGE_MASK, INTEGER, value)


def test_mask_output_with_unnamed_bits() -> None:
    item = Item(USAGE_MASK, INTEGER, ENCRYPT | 0x40000000)
    assert 'value="Encrypt 0x40000000"' in to_xml(item)
    assert json.loads(to_json(item))["value"] == "Encrypt|0x40000000"
    assert_round_trips(item)
    assert 'value="0"' in to_xml(Item(USAGE_MASK, INTEGER, 0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Encrypt|Decrypt", ENCRYPT | DECRYPT),
        ("Encrypt | Decrypt", ENCRYPT | DECRYPT),
        ("0x0000000C", ENCRYPT | DECRYPT),
        ("Encrypt|0x00000008", ENCRYPT | DECRYPT),
        (12, ENCRYPT | DECRYPT),
    ],
)
def test_json_masks(value: object, expected: int) -> None:
    assert json_item("CryptographicUsageMask", "Integer", value) == Item(
        USAGE_MASK, INTEGER, expected
    )


def test_sha3_names_depend_on_the_tag() -> None:
    assert xml_item("HashingAlgorithm", "Enumeration", "SHA3_256").value == SHA3_256_HASHING
    assert xml_item("CryptographicAlgorithm", "Enumeration", "SHA3_256").value == SHA3_256_CRYPTO
    assert json_item("HashingAlgorithm", "Enumeration", "SHA3_256").value == SHA3_256_HASHING
    assert json_item("CryptographicAlgorithm", "Enumeration", "SHA3_256").value == (SHA3_256_CRYPTO)
    # Mask Generator Hashing Algorithm draws from Hashing Algorithm.
    assert xml_item("MaskGeneratorHashingAlgorithm", "Enumeration", "SHA3_256").value == (
        SHA3_256_HASHING
    )
    assert 'value="SHA3_256"' in to_xml(Item(HASH_ALG, ENUMERATION, SHA3_256_HASHING))
    assert 'value="SHA3_256"' in to_xml(Item(CRYPTO_ALG, ENUMERATION, SHA3_256_CRYPTO))


def test_enumeration_spellings() -> None:
    # xml_name, xml_name_short (as in the OASIS files) and hex all give the value.
    for text in ("SHA_256WithRSAEncryptionPKCS_1V1_5", "SHA_256WithRSAEncryption", "0x00000005"):
        assert xml_item("DigitalSignatureAlgorithm", "Enumeration", text).value == 5
    assert json_item("ObjectType", "Enumeration", "SymmetricKey").value == 2
    assert json_item("ObjectType", "Enumeration", 2).value == 2
    assert json_item("ObjectType", "Enumeration", "0x00000002").value == 2
    # A value without a name is written as hex.
    assert 'value="0x00ABCDEF"' in to_xml(Item(OBJECT_TYPE, ENUMERATION, 0xABCDEF))
    assert json.loads(to_json(Item(OBJECT_TYPE, ENUMERATION, 0xABCDEF)))["value"] == "0x00ABCDEF"


def test_enumeration_names_follow_the_message_version() -> None:
    # Content Commitment: a mask bit of 1.x and 2.0 drafts, gone in 2.1.
    cc = attribute("Cryptographic Usage Mask", "Integer", "ContentCommitment")
    assert from_xml(message((1, 4), cc)) is not None
    assert from_xml(message((2, 0), cc)) is not None
    with pytest.raises(DecodeError, match=r"not defined in KMIP 2\.1"):
        from_xml(message((2, 1), cc))
    mask = '<CryptographicUsageMask type="Integer" value="ContentCommitment Sign"/>'
    assert from_xml(mask, version=(1, 4)).value == CONTENT_COMMITMENT | 1
    with pytest.raises(DecodeError):
        from_xml(mask, version=(2, 1))
    # A value renamed between versions is read in either spelling, written in the version's.
    for spelling in ("NotAuthorized", "NotAuthorised"):
        reason = f'<ResultReason type="Enumeration" value="{spelling}"/>'
        for version in ((2, 0), (2, 1)):
            response = from_xml(message(version, reason, response=True))
            assert response.value[1].value[0] == Item(RESULT_REASON, ENUMERATION, 0x39)
    item = Item(RESULT_REASON, ENUMERATION, 0x39)
    assert 'value="NotAuthorized"' in to_xml(item, (2, 0))
    assert 'value="NotAuthorised"' in to_xml(item, (2, 1))


def test_message_version_is_read_from_the_header() -> None:
    item = from_xml(message((1, 4), '<Operation type="Enumeration" value="Create"/>'))
    assert message_version(item) == (1, 4)
    assert message_version(Item(EXAMPLE_TAG, INTEGER, 1)) is None


def test_attribute_value_takes_the_enumeration_of_its_attribute_name() -> None:
    xml = (
        "<TemplateAttribute>"
        + attribute("Cryptographic Algorithm", "Enumeration", "AES")
        + attribute("Cryptographic Usage Mask", "Integer", "Encrypt Decrypt")
        + attribute("Object Type", "Enumeration", "SymmetricKey")
        + attribute("x-Vendor", "Enumeration", "0x00000003")
        + attribute("Cryptographic Length", "Integer", "256")
        + "</TemplateAttribute>"
    )
    item = from_xml(xml)
    values = [a.value[1].value for a in item.value]
    assert values == [3, ENCRYPT | DECRYPT, 2, 3, 256]
    text = to_xml(item)
    assert 'value="AES"' in text and 'value="Encrypt Decrypt"' in text
    assert 'value="SymmetricKey"' in text and 'value="0x00000003"' in text
    obj = json.loads(to_json(item))
    assert [a["value"][1]["value"] for a in obj["value"]] == [
        "AES",
        "Encrypt|Decrypt",
        "SymmetricKey",
        "0x00000003",
        256,
    ]
    assert from_json(to_json(item)) == item
    # A name needs an enumeration: a custom attribute has none.
    with pytest.raises(DecodeError):
        from_xml(attribute("x-Vendor", "Enumeration", "AES"))
    # The rule follows the name, wherever the AttributeName is among the siblings.
    reordered = (
        '<Attribute><AttributeValue type="Enumeration" value="SHA3_256"/>'
        '<AttributeName type="TextString" value="Hashing Algorithm"/></Attribute>'
    )
    assert from_xml(reordered).value[0].value == SHA3_256_HASHING


def test_attribute_reference_values_are_tags() -> None:
    item = xml_item("AttributeReference", "Enumeration", "CryptographicAlgorithm")
    assert item == Item(ATTRIBUTE_REFERENCE, ENUMERATION, CRYPTO_ALG)
    assert 'value="CryptographicAlgorithm"' in to_xml(item)
    assert json_item("AttributeReference", "Enumeration", "CryptographicAlgorithm") == item


# --------------------------------------------------------------------------------------------
# Unknown tags
# --------------------------------------------------------------------------------------------


def test_unknown_tags_as_ttlv_elements() -> None:
    item = Item(VENDOR_TAG, STRUCTURE, [Item(0x54FFFF, LONG_INTEGER, -5)])
    text = to_xml(item, indent=None)
    assert text == (
        '<TTLV tag="0x540001" type="Structure">'
        '<TTLV tag="0x54FFFF" type="LongInteger" value="-5"/></TTLV>'
    )
    assert from_xml(text) == item
    assert from_xml('<TTLV tag="0x540001"/>') == Item(VENDOR_TAG, STRUCTURE, [])
    obj = json.loads(to_json(item))
    assert obj == {
        "tag": "0x540001",
        "value": [{"tag": "0x54FFFF", "type": "LongInteger", "value": -5}],
    }
    assert from_json(json.dumps(obj)) == item
    # A known tag written as hex is accepted too.
    assert from_xml('<TTLV tag="0x42002A" type="Integer" value="128"/>') == Item(
        CRYPTO_LENGTH, INTEGER, 128
    )


# --------------------------------------------------------------------------------------------
# JSON specifics
# --------------------------------------------------------------------------------------------


def test_json_message_with_type_left_out() -> None:
    text = json.dumps(
        {
            "tag": "RequestMessage",
            "value": [
                {
                    "tag": "RequestHeader",
                    "type": "Structure",
                    "value": [
                        {
                            "tag": "ProtocolVersion",
                            "value": [
                                {
                                    "tag": "ProtocolVersionMajor",
                                    "type": "Integer",
                                    "value": "0x00000001",
                                },
                                {"tag": "ProtocolVersionMinor", "type": "Integer", "value": 4},
                            ],
                        },
                        {"tag": "BatchCount", "type": "Integer", "value": 1},
                    ],
                },
            ],
        }
    )
    item = from_json(text)
    assert message_version(item) == (1, 4)
    assert json.loads(to_json(item))["value"][0]["value"][0]["value"][0]["value"] == 1
    assert to_json(item) == to_json(from_json(to_json(item)))


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("Integer", -1, -1),
        ("Integer", "0xFFFFFFFF", -1),
        ("LongInteger", 2**52 - 1, 2**52 - 1),
        ("LongInteger", 2**60, 2**60),
        ("LongInteger", "0x1000000000000000", 2**60),
        ("LongInteger", "0xFFFFFFFFFFFFFFFF", -1),
        ("BigInteger", 12345, 12345),
        ("BigInteger", "0x00000000000000FF", 255),
        ("Interval", "0x00000010", 16),
        ("Boolean", True, True),
        ("Boolean", "0x0000000000000001", True),
        ("Boolean", "0x0000000000000000", False),
        ("DateTime", "2012-04-27T08:12:24Z", 1335514344),
        ("DateTime", "0x000000004F9A54E8", 1335514344),
        ("DateTimeExtended", "2012-04-27T08:12:24.25+00:00", 1335514344_250000),
        ("ByteString", "00ff", b"\x00\xff"),
        ("TextString", "é", "é"),
    ],
)
def test_json_values(type_name: str, value: object, expected: object) -> None:
    assert json_item("0x420020", type_name, value).value == expected


def test_json_large_numbers_are_written_as_hex() -> None:
    small = json.loads(to_json(Item(EXAMPLE_TAG, LONG_INTEGER, 2**52 - 1)))["value"]
    assert small == 2**52 - 1
    for value in (2**52, -(2**52), 2**63 - 1):
        item = Item(EXAMPLE_TAG, LONG_INTEGER, value)
        written = json.loads(to_json(item))["value"]
        assert isinstance(written, str) and written.startswith("0x")
        assert from_json(to_json(item)) == item


def test_item_from_obj() -> None:
    obj = {"tag": "CryptographicLength", "type": "Integer", "value": 128}
    assert item_from_obj(obj) == Item(CRYPTO_LENGTH, INTEGER, 128)


# --------------------------------------------------------------------------------------------
# Errors: DecodeError only, and no input values in the message
# --------------------------------------------------------------------------------------------

SECRET = "c0ffee15deadbeef"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not xml",
        "<CryptographicLength",
        '<CryptographicLength type="Integer" value="2147483648"/>',
        '<CryptographicLength type="Integer" value="-2147483649"/>',
        '<CryptographicLength type="Integer" value="12a"/>',
        '<CryptographicLength type="Integer" value=" 12"/>',
        '<CryptographicLength type="Integer" value="1_2"/>',
        '<CryptographicLength type="Integer" value=""/>',
        '<CryptographicLength type="Integer" value="0x123456789"/>',
        '<CryptographicLength type="Integer"/>',
        '<CryptographicLength type="Integr" value="1"/>',
        '<CryptographicLength type="Integer" value="1" extra="x"/>',
        '<CryptographicLength type="Integer">1</CryptographicLength>',
        '<CryptographicLength type="Integer" value="1"><Name/></CryptographicLength>',
        '<LongInteger type="LongInteger" value="1"/>',
        f'<Unknown{SECRET} type="Integer" value="1"/>',
        '<TTLV type="Integer" value="1"/>',
        '<TTLV tag="0x4200" type="Integer" value="1"/>',
        '<TTLV tag="0x430001" type="Integer" value="1"/>',
        '<TTLV tag="0x42000G" type="Integer" value="1"/>',
        '<ns:Name xmlns:ns="urn:x"/>',
        '<Name value="x"/>',
        "<Name>text</Name>",
        '<Name><NameValue type="TextString" value="a"/>tail</Name>',
        '<TTLV tag="0x420020" type="LongInteger" value="9223372036854775808"/>',
        '<TTLV tag="0x420020" type="Interval" value="-1"/>',
        '<TTLV tag="0x420020" type="Interval" value="4294967296"/>',
        '<TTLV tag="0x420020" type="Enumeration" value="-1"/>',
        '<TTLV tag="0x420020" type="Enumeration" value="10"/>',
        '<TTLV tag="0x420020" type="Enumeration" value="0x100000000"/>',
        '<TTLV tag="0x420020" type="Enumeration" value="SymmetricKey"/>',
        f'<ObjectType type="Enumeration" value="{SECRET}"/>',
        '<ObjectType type="Enumeration" value="0x_1"/>',
        '<ObjectType type="Enumeration" value="symmetrickey"/>',
        f'<KeyMaterial type="ByteString" value="{SECRET}g"/>',
        f'<KeyMaterial type="ByteString" value="{SECRET}0"/>',
        '<KeyMaterial type="ByteString" value="01 02"/>',
        '<KeyMaterial type="ByteString" value="0x0102"/>',
        '<TTLV tag="0x420020" type="BigInteger" value=""/>',
        f'<TTLV tag="0x420020" type="BigInteger" value="{SECRET}z"/>',
        '<ActivationDate type="DateTime" value="2012-13-27T08:12:24+00:00"/>',
        '<ActivationDate type="DateTime" value="2012-02-30T08:12:24+00:00"/>',
        '<ActivationDate type="DateTime" value="2012-04-27T25:12:24+00:00"/>',
        '<ActivationDate type="DateTime" value="2012-04-27T08:12:24.5+00:00"/>',
        '<ActivationDate type="DateTime" value="2012-04-27T08:12:24+24:00"/>',
        '<ActivationDate type="DateTime" value="2012-04-27"/>',
        '<ActivationDate type="DateTime" value="yesterday"/>',
        '<TTLV tag="0x420020" type="DateTimeExtended" value="2012-04-27T08:12:24.1234567Z"/>',
        '<Sensitive type="Boolean" value="yes"/>',
        '<Sensitive type="Boolean" value="0x0000000000000002"/>',
        f'<CryptographicUsageMask type="Integer" value="Encrypt {SECRET}"/>',
        '<CryptographicUsageMask type="Integer" value="Encrypt|Decrypt"/>',
        '<CryptographicUsageMask type="Integer" value="0x100000000"/>',
        '<CryptographicUsageMask type="Integer" value="  "/>',
        attribute("x-custom", "Enumeration", "AES"),
        attribute("Cryptographic Algorithm", "Enumeration", "Encrypt"),
    ],
)
def test_malformed_xml_raises_decode_error(text: str) -> None:
    with pytest.raises(DecodeError) as info:
        from_xml(text)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[",
        "[]",
        "null",
        '{"tag": "CryptographicLength", "type": "Integer"}',
        '{"type": "Integer", "value": 1}',
        '{"tag": 42, "type": "Integer", "value": 1}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": 1, "extra": 1}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": 1, "value": 2}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": 1.0}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": 1e3}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": NaN}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": true}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": "12"}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": 2147483648}',
        '{"tag": "CryptographicLength", "type": "Integer", "value": "0x123456789"}',
        '{"tag": "CryptographicLength", "type": 2, "value": 1}',
        '{"tag": "CryptographicLength", "type": "Int", "value": 1}',
        '{"tag": "Unknown", "type": "Integer", "value": 1}',
        '{"tag": "0x430001", "type": "Integer", "value": 1}',
        '{"tag": "Name", "value": {}}',
        '{"tag": "Name", "value": [1]}',
        '{"tag": "0x420020", "type": "LongInteger", "value": 9223372036854775808}',
        '{"tag": "0x420020", "type": "Interval", "value": -1}',
        '{"tag": "0x420020", "type": "Boolean", "value": 1}',
        '{"tag": "0x420020", "type": "Boolean", "value": "true"}',
        '{"tag": "0x420020", "type": "TextString", "value": 1}',
        '{"tag": "0x420020", "type": "TextString", "value": "\\ud800"}',
        f'{{"tag": "0x420020", "type": "ByteString", "value": "{SECRET}z"}}',
        '{"tag": "0x420020", "type": "ByteString", "value": 12}',
        '{"tag": "0x420020", "type": "BigInteger", "value": "12"}',
        '{"tag": "0x420020", "type": "DateTime", "value": 1335514344}',
        '{"tag": "0x420020", "type": "DateTime", "value": "2012-04-27T08:12:24.5Z"}',
        '{"tag": "0x420020", "type": "Enumeration", "value": -1}',
        '{"tag": "0x420020", "type": "Enumeration", "value": "SymmetricKey"}',
        f'{{"tag": "ObjectType", "type": "Enumeration", "value": "{SECRET}"}}',
        f'{{"tag": "CryptographicUsageMask", "type": "Integer", "value": "Encrypt|{SECRET}"}}',
        '{"tag": "CryptographicUsageMask", "type": "Integer", "value": "Encrypt Decrypt"}',
        '{"tag": "0x420020", "type": "Integer", "value": "' + "9" * 5000 + '"}',
        '{"tag": "0x420020", "type": "BigInteger", "value": ' + "9" * 5000 + "}",
        b'"\xff"',
    ],
)
def test_malformed_json_raises_decode_error(text: str | bytes) -> None:
    with pytest.raises(DecodeError) as info:
        from_json(text)
    assert SECRET not in str(info.value)


def test_error_messages_name_the_path() -> None:
    text = message((1, 4), '<Operation type="Enumeration" value="Nope"/>')
    with pytest.raises(DecodeError, match=r"at RequestMessage/BatchItem\[1\]/Operation\[0\]"):
        from_xml(text)


def test_to_xml_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(EncodeError):
        to_xml(Item(EXAMPLE_TAG, TEXT_STRING, "a\x01b"))
    with pytest.raises(EncodeError):
        to_xml(Item(EXAMPLE_TAG, INTEGER, "1"))
    with pytest.raises(EncodeError):
        to_json(Item(EXAMPLE_TAG, BOOLEAN, 1))


# --------------------------------------------------------------------------------------------
# Security and limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE Name [<!ENTITY x "y">]><Name/>',
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<TTLV tag="0x420020" type="TextString" value="&lol2;"/>',
        '<!DOCTYPE Name SYSTEM "http://127.0.0.1/evil.dtd"><Name/>',
        '<!DOCTYPE Name [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<TTLV tag="0x420020" type="TextString" value="&xxe;"/>',
        '<?xml version="1.0"?><!DOCTYPE Name><Name/>',
    ],
)
def test_xml_with_doctype_or_entities_is_refused(text: str) -> None:
    with pytest.raises(DecodeError, match="DTD"):
        from_xml(text)


def test_deep_nesting_is_refused() -> None:
    limits = Limits()
    deep_xml = "<Name>" * (limits.max_depth + 1) + "</Name>" * (limits.max_depth + 1)
    with pytest.raises(DecodeError, match="nesting deeper"):
        from_xml(deep_xml)
    ok_xml = "<Name>" * limits.max_depth + "</Name>" * limits.max_depth
    assert from_xml(ok_xml).tag == tag("Name")
    deep_json = '{"tag":"Name","value":[' * (limits.max_depth + 1) + "]}" * (limits.max_depth + 1)
    with pytest.raises(DecodeError, match="nesting deeper"):
        from_json(deep_json)
    # Far deeper than Python's recursion limit: refused, not a RecursionError.
    with pytest.raises(DecodeError):
        from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DecodeError):
        from_xml("<Name>" * 100_000 + "</Name>" * 100_000)


def test_huge_text_is_refused_before_parsing() -> None:
    limits = Limits(max_text_bytes=1000)
    text = '<TTLV tag="0x420020" type="TextString" value="' + "a" * 1000 + '"/>'
    with pytest.raises(DecodeError, match="exceeds the limit"):
        from_xml(text, limits)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        from_xml(text.encode(), limits)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        from_json(
            json.dumps({"tag": "0x420020", "type": "TextString", "value": "a" * 1000}), limits
        )
    # Multi-byte characters count in bytes.
    with pytest.raises(DecodeError, match="exceeds the limit"):
        from_xml('<TTLV tag="0x420020" type="TextString" value="' + "é" * 480 + '"/>', limits)


def test_field_and_item_limits() -> None:
    limits = Limits(max_field_bytes=4, max_items_per_structure=3)
    assert xml_item("KeyMaterial", "ByteString", "01020304").value == b"\x01\x02\x03\x04"
    with pytest.raises(DecodeError, match="field limit"):
        from_xml('<KeyMaterial type="ByteString" value="0102030405"/>', limits)
    with pytest.raises(DecodeError, match="field limit"):
        from_xml('<TTLV tag="0x420020" type="TextString" value="abcde"/>', limits)
    with pytest.raises(DecodeError, match="field limit"):
        from_xml('<TTLV tag="0x420020" type="TextString" value="éé€"/>', limits)
    with pytest.raises(DecodeError, match="field limit"):
        from_json('{"tag":"0x420020","type":"BigInteger","value":"0x0102030405060708"}', limits)
    with pytest.raises(DecodeError, match="field limit"):
        from_json('{"tag":"0x420020","type":"BigInteger","value":' + str(2**40) + "}", limits)
    four = "<Name>" + "<Name/>" * 4 + "</Name>"
    with pytest.raises(DecodeError, match="items in one structure"):
        from_xml(four, limits)
    assert len(from_xml(four).value) == 4
    four_json = json.dumps({"tag": "Name", "value": [{"tag": "Name", "value": []}] * 4})
    with pytest.raises(DecodeError, match="items in one structure"):
        from_json(four_json, limits)


def test_item_from_element_on_a_parsed_tree() -> None:
    import defusedxml.ElementTree as DET

    root = DET.fromstring(
        "<KMIP>" + message((1, 4), '<Operation type="Enumeration" value="Create"/>') + "</KMIP>"
    )
    item = item_from_element(root[0])
    assert item.tag == tag("RequestMessage")
    assert item.value[1].value[0] == Item(tag("Operation"), ENUMERATION, 1)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_LEAF_TAGS = st.sampled_from(
    [EXAMPLE_TAG, VENDOR_TAG, CRYPTO_LENGTH, ACTIVATION_DATE, KEY_MATERIAL, 0x5400FF]
)
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"),
    max_size=20,
).filter(lambda s: not any(ord(c) < 0x20 and c not in "\t\n\r" for c in s))
_LEAVES = st.one_of(
    st.builds(Item, _LEAF_TAGS, st.just(INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.builds(Item, _LEAF_TAGS, st.just(LONG_INTEGER), st.integers(-(2**63), 2**63 - 1)),
    st.builds(Item, _LEAF_TAGS, st.just(BIG_INTEGER), st.integers(-(2**200), 2**200)),
    st.builds(Item, _LEAF_TAGS, st.just(ENUMERATION), st.integers(0, 2**32 - 1)),
    st.builds(Item, _LEAF_TAGS, st.just(BOOLEAN), st.booleans()),
    st.builds(Item, _LEAF_TAGS, st.just(TEXT_STRING), _TEXT),
    st.builds(Item, _LEAF_TAGS, st.just(BYTE_STRING), st.binary(max_size=20)),
    st.builds(Item, _LEAF_TAGS, st.just(DATE_TIME), st.integers(-(2**63), 2**63 - 1)),
    st.builds(Item, _LEAF_TAGS, st.just(DATE_TIME_EXTENDED), st.integers(-(2**63), 2**63 - 1)),
    st.builds(Item, _LEAF_TAGS, st.just(INTERVAL), st.integers(0, 2**32 - 1)),
    st.builds(
        Item,
        st.sampled_from([USAGE_MASK, OBJECT_TYPE]),
        st.just(INTEGER),
        st.integers(-(2**31), 2**31 - 1),
    ),
    st.builds(
        Item,
        st.sampled_from([OBJECT_TYPE, HASH_ALG, RESULT_REASON]),
        st.just(ENUMERATION),
        st.integers(0, 2**32 - 1),
    ),
)
_TREES = st.recursive(
    _LEAVES,
    lambda children: st.builds(
        Item,
        st.sampled_from([tag("Name"), VENDOR_TAG]),
        st.just(STRUCTURE),
        st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_TREES)
def test_any_tree_round_trips(item: Item) -> None:
    assert_round_trips(item)
    for version in ((1, 0), (1, 4), (2, 1)):
        assert_round_trips(item, version)


_SAMPLE_XML = message(
    (1, 4),
    '<Operation type="Enumeration" value="Create"/>',
    attribute("Cryptographic Usage Mask", "Integer", "Encrypt Decrypt"),
    '<TTLV tag="0x540001" type="DateTime" value="2012-04-27T08:12:24+00:00"/>',
    '<KeyMaterial type="ByteString" value="00ff"/>',
)
_SAMPLE_JSON = to_json(from_xml(_SAMPLE_XML))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(_SAMPLE_XML) - 1), st.integers(1, 8), st.text(string.printable, max_size=4)
)
def test_mutated_xml_raises_only_decode_error(position: int, length: int, insert: str) -> None:
    text = _SAMPLE_XML[:position] + insert + _SAMPLE_XML[position + length :]
    with contextlib.suppress(DecodeError):
        from_xml(text)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(_SAMPLE_JSON) - 1), st.integers(1, 8), st.text(string.printable, max_size=4)
)
def test_mutated_json_raises_only_decode_error(position: int, length: int, insert: str) -> None:
    text = _SAMPLE_JSON[:position] + insert + _SAMPLE_JSON[position + length :]
    with contextlib.suppress(DecodeError):
        from_json(text)


@pytest.mark.parametrize("seconds", [-30_610_224_001, -62_135_596_800, 0, 253_402_300_799])
def test_dates_before_year_1000_keep_four_digit_years(seconds: int) -> None:
    # Found by Hypothesis: glibc's strftime("%Y") wrote year 999 as "999".
    item = Item(0x420020, ttlv.DATE_TIME, seconds)
    assert from_xml(to_xml(item)) == item
    assert from_json(to_json(item)) == item


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_dates_pushed_out_of_range_by_their_offset_are_refused(text: str) -> None:
    # Found by Hypothesis (6.170): the offset moved the moment past datetime's range.
    with pytest.raises(DecodeError):
        from_xml(f'<ActivationDate type="DateTime" value="{text}"/>')
    with pytest.raises(DecodeError):
        from_json(f'{{"tag":"ActivationDate","type":"DateTime","value":"{text}"}}')
