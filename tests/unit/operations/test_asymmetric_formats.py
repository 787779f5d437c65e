"""Register and Get of private keys, public keys and certificates in the formats the profiles
use, through the engine in process (see conftest.py), on SQLite and PostgreSQL.

Keys are made by ``cryptography`` here, registered in one Key Format Type and fetched in every
other: the fetched key must be the same key (its public numbers, and a signature of the
fetched private key verifying under the registered public key).
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from kmipd.keys import asymmetric
from kmipd.protocol._generated import (
    CertificateType,
    CryptographicAlgorithm,
    KeyFormatType,
    LinkType,
    ObjectType,
    Operation,
    ResultReason,
    ResultStatus,
    Tag,
)
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.objects import Certificate, KeyBlock, KeyValue, PrivateKey, PublicKey
from kmipd.protocol.payloads import (
    CreateKeyPairRequest,
    GetAttributesRequest,
    GetRequest,
    RegisterRequest,
)
from kmipd.protocol.ttlv import BIG_INTEGER, ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item
from tests.unit.operations.conftest import EngineHarness
from tests.unit.operations.test_create_key_pair import call_while_ticking

A = CryptographicAlgorithm
F = KeyFormatType
OK = ResultStatus.SUCCESS

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())

PRIVATE_FORMATS = {
    "rsa": (F.PKCS_1, F.PKCS_8, F.TRANSPARENT_RSA_PRIVATE_KEY),
    "ec": (F.PKCS_8, F.ECPRIVATEKEY, F.TRANSPARENT_EC_PRIVATE_KEY),
}
PUBLIC_FORMATS = {
    "rsa": (F.PKCS_1, F.X_509, F.TRANSPARENT_RSA_PUBLIC_KEY),
    "ec": (F.X_509, F.TRANSPARENT_EC_PUBLIC_KEY),
}
KEYS = {"rsa": (RSA_KEY, A.RSA), "ec": (EC_KEY, A.EC)}


def bare_private(key: asymmetric.PrivateKeyObject, fmt: F) -> PrivateKey:
    """A private key block without Cryptographic Algorithm and Length: the material alone."""
    material = asymmetric.private_material(key, fmt)
    return PrivateKey(key_block=KeyBlock(key_format_type=fmt, key_value=KeyValue(material)))


def register(kmip: EngineHarness, body: object, *attributes: Attribute) -> str:
    result = kmip.call(Operation.REGISTER, register_request(body, list(attributes)))
    assert result.result_status == OK, result.result_message
    return str(result.payload.unique_identifier)


def register_request(body: object, attributes: list[Attribute]) -> RegisterRequest:
    object_type = {
        PrivateKey: ObjectType.PRIVATE_KEY,
        PublicKey: ObjectType.PUBLIC_KEY,
        Certificate: ObjectType.CERTIFICATE,
    }[type(body)]
    return RegisterRequest(object_type=object_type, attributes=attributes, managed_object=body)


def fetch(kmip: EngineHarness, uid: str, fmt: int | None = None) -> KeyBlock:
    result = kmip.call(Operation.GET, GetRequest(unique_identifier=uid, key_format_type=fmt))
    assert result.result_status == OK, result.result_message
    return result.payload.managed_object.key_block


def block_key(block: KeyBlock, private: bool) -> object:
    return asymmetric.load_private(block) if private else asymmetric.load_public(block)


def attribute_values(kmip: EngineHarness, uid: str, *names: str) -> dict[str, object]:
    result = kmip.call(
        Operation.GET_ATTRIBUTES,
        GetAttributesRequest(unique_identifier=uid, attribute_names=list(names)),
    )
    assert result.result_status == OK, result.result_message
    return {a.name: a.value for a in result.payload.attributes}


def signs_for(private_key: object, public_key: object) -> None:
    """``private_key`` signs what ``public_key`` verifies (they are one pair)."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        assert isinstance(public_key, rsa.RSAPublicKey)
        signature = private_key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
        public_key.verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        signature = private_key.sign(b"data", ec.ECDSA(hashes.SHA256()))
        public_key.verify(signature, b"data", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("kind", "given", "wanted"),
    [
        (kind, given, wanted)
        for kind, formats in PRIVATE_FORMATS.items()
        for given in formats
        for wanted in formats
    ],
)
def test_private_key_in_every_format(kmip: EngineHarness, kind: str, given: F, wanted: F) -> None:
    key, algorithm = KEYS[kind]
    body = asymmetric.private_key_object(key, algorithm, given)  # type: ignore[arg-type]
    uid = register(kmip, body)
    block = fetch(kmip, uid, wanted)
    assert block.key_format_type == wanted
    assert block.cryptographic_algorithm == algorithm
    fetched = block_key(block, private=True)
    assert fetched.private_numbers() == key.private_numbers()  # type: ignore[attr-defined]
    signs_for(fetched, key.public_key())


@pytest.mark.parametrize(
    ("kind", "given", "wanted"),
    [
        (kind, given, wanted)
        for kind, formats in PUBLIC_FORMATS.items()
        for given in formats
        for wanted in formats
    ],
)
def test_public_key_in_every_format(kmip: EngineHarness, kind: str, given: F, wanted: F) -> None:
    key, algorithm = KEYS[kind]
    body = asymmetric.public_key_object(key.public_key(), algorithm, given)  # type: ignore[arg-type]
    uid = register(kmip, body)
    block = fetch(kmip, uid, wanted)
    assert block.key_format_type == wanted
    fetched = block_key(block, private=False)
    assert fetched.public_numbers() == key.public_key().public_numbers()  # type: ignore[attr-defined]
    signs_for(key, fetched)


def test_registered_key_gets_its_algorithm_and_length_from_the_material(
    kmip: EngineHarness,
) -> None:
    der = RSA_KEY.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = PrivateKey(key_block=KeyBlock(key_format_type=F.PKCS_8, key_value=KeyValue(der)))
    uid = register(kmip, body)
    found = attribute_values(kmip, uid, "Cryptographic Algorithm", "Cryptographic Length")
    assert found == {"Cryptographic Algorithm": A.RSA, "Cryptographic Length": 2048}
    # Stored as given: fetched without a format, the bytes are the registered ones.
    assert fetch(kmip, uid).key_value.key_material == der


@pytest.mark.parametrize(
    ("body", "attributes", "reason", "says"),
    [
        (
            PrivateKey(key_block=KeyBlock(key_format_type=F.PKCS_8, key_value=KeyValue(b"\x30"))),
            [],
            ResultReason.INVALID_FIELD,
            "not a DER private key",
        ),
        (
            bare_private(EC_KEY, F.PKCS_8),
            [Attribute("Cryptographic Algorithm", A.RSA, None, ENUMERATION)],
            ResultReason.INVALID_FIELD,
            "does not match the key material (an EC key)",
        ),
        (
            bare_private(RSA_KEY, F.PKCS_1),
            [Attribute("Cryptographic Length", 4096, None, INTEGER)],
            ResultReason.INVALID_FIELD,
            "Cryptographic Length does not match",
        ),
        (
            # PKCS#1 holds RSA keys; this is an EC key in PKCS#8.
            PrivateKey(
                key_block=KeyBlock(
                    key_format_type=F.PKCS_1,
                    key_value=KeyValue(
                        asymmetric.private_material(EC_KEY, F.PKCS_8)  # type: ignore[arg-type]
                    ),
                )
            ),
            [],
            ResultReason.INVALID_FIELD,
            "PKCS#1 holds RSA keys only",
        ),
        (
            PublicKey(
                key_block=KeyBlock(
                    key_format_type=F.TRANSPARENT_RSA_PUBLIC_KEY,
                    key_value=KeyValue(
                        Item(
                            Tag.KEY_MATERIAL,
                            STRUCTURE,
                            [
                                Item(
                                    Tag.MODULUS,
                                    BIG_INTEGER,
                                    RSA_KEY.public_key().public_numbers().n,
                                )
                            ],
                        )
                    ),
                )
            ),
            [],
            ResultReason.INVALID_FIELD,
            "lacks PUBLIC_EXPONENT",
        ),
        (
            PublicKey(key_block=KeyBlock(key_format_type=F.RAW, key_value=KeyValue(b"\x01" * 32))),
            [],
            ResultReason.INVALID_FIELD,
            "not one for an asymmetric key",
        ),
    ],
    ids=[
        "not-der",
        "algorithm-mismatch",
        "length-mismatch",
        "ec-as-pkcs1",
        "transparent-rsa-no-exponent",
        "raw-public-key",
    ],
)
def test_bad_material_is_refused_precisely(
    kmip: EngineHarness,
    body: object,
    attributes: list[Attribute],
    reason: ResultReason,
    says: str,
) -> None:
    result = kmip.call(Operation.REGISTER, register_request(body, attributes))
    assert result.result_status == ResultStatus.OPERATION_FAILED
    assert (result.result_reason, says in str(result.result_message)) == (reason, True), (
        result.result_message
    )


@pytest.mark.parametrize(
    ("kind", "private", "wanted"),
    [
        ("ec", True, F.PKCS_1),  # PKCS#1 holds RSA keys only
        ("ec", False, F.PKCS_1),
        ("rsa", True, F.ECPRIVATEKEY),
        ("rsa", True, F.TRANSPARENT_EC_PRIVATE_KEY),
        ("rsa", False, F.TRANSPARENT_EC_PUBLIC_KEY),
        ("rsa", True, F.RAW),
        ("rsa", False, F.TRANSPARENT_SYMMETRIC_KEY),
        ("rsa", True, F.PKCS_12),
    ],
)
def test_get_in_a_format_the_key_cannot_take_is_key_format_type_not_supported(
    kmip: EngineHarness, kind: str, private: bool, wanted: F
) -> None:
    key, algorithm = KEYS[kind]
    body = (
        asymmetric.private_key_object(key, algorithm, F.PKCS_8)  # type: ignore[arg-type]
        if private
        else asymmetric.public_key_object(key.public_key(), algorithm, F.X_509)  # type: ignore[arg-type]
    )
    uid = register(kmip, body)
    result = kmip.call(Operation.GET, GetRequest(unique_identifier=uid, key_format_type=wanted))
    assert result.result_reason == ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def _link(link_type: LinkType, uid: str) -> Attribute:
    value = Item(
        Tag.LINK,
        STRUCTURE,
        [
            Item(Tag.LINK_TYPE, ENUMERATION, link_type),
            Item(Tag.LINKED_OBJECT_IDENTIFIER, TEXT_STRING, uid),
        ],
    )
    return Attribute("Link", value, None, STRUCTURE)


def test_registered_certificate_and_keys_keep_their_links(kmip: EngineHarness) -> None:
    der = _certificate(RSA_KEY)
    certificate_uid = register(
        kmip, Certificate(certificate_type=CertificateType.X_509, certificate_value=der)
    )
    public_uid = register(
        kmip,
        asymmetric.public_key_object(RSA_KEY.public_key(), A.RSA, F.X_509),
        _link(LinkType.CERTIFICATE_LINK, certificate_uid),
    )
    private_uid = register(
        kmip,
        asymmetric.private_key_object(RSA_KEY, A.RSA, F.PKCS_1),
        _link(LinkType.PUBLIC_KEY_LINK, public_uid),
        _link(LinkType.CERTIFICATE_LINK, certificate_uid),
    )
    links = kmip.call(
        Operation.GET_ATTRIBUTES,
        GetAttributesRequest(unique_identifier=private_uid, attribute_names=["Link"]),
    ).payload.attributes
    found = {
        (link.value.find(Tag.LINK_TYPE).value, link.value.find(Tag.LINKED_OBJECT_IDENTIFIER).value)
        for link in links
    }
    assert found == {
        (LinkType.PUBLIC_KEY_LINK, public_uid),
        (LinkType.CERTIFICATE_LINK, certificate_uid),
    }
    got = kmip.call(Operation.GET, GetRequest(unique_identifier=certificate_uid))
    assert got.payload.managed_object.certificate_value == der
    certificate = x509.load_der_x509_certificate(der)
    fetched = block_key(fetch(kmip, public_uid, F.PKCS_1), private=False)
    assert fetched.public_numbers() == certificate.public_key().public_numbers()  # type: ignore[attr-defined]


def test_created_pair_converts_like_a_registered_one(kmip: EngineHarness) -> None:
    request = CreateKeyPairRequest(
        common_attributes=[
            Attribute("Cryptographic Algorithm", A.RSA, None, ENUMERATION),
            Attribute("Cryptographic Length", 3072, None, INTEGER),
        ],
        private_key_attributes=[],
        public_key_attributes=[],
    )
    result = kmip.call(Operation.CREATE_KEY_PAIR, request)
    assert result.result_status == OK, result.result_message
    private_uid = str(result.payload.private_key_unique_identifier)
    public_uid = str(result.payload.public_key_unique_identifier)
    transparent = fetch(kmip, private_uid, F.TRANSPARENT_RSA_PRIVATE_KEY)
    assert transparent.key_value.key_material.find(Tag.MODULUS) is not None
    private_key = block_key(transparent, private=True)
    public_key = block_key(fetch(kmip, public_uid, F.X_509), private=False)
    assert private_key.key_size == 3072  # type: ignore[attr-defined]
    signs_for(private_key, public_key)


def test_transparent_rsa_private_key_with_only_the_exponents(kmip: EngineHarness) -> None:
    """KMIP lets a Transparent RSA Private Key carry the Modulus and the two exponents
    without the primes: kmipd recovers them, so the key converts to PKCS#1."""
    numbers = RSA_KEY.private_numbers()
    material = Item(
        Tag.KEY_MATERIAL,
        STRUCTURE,
        [
            Item(Tag.MODULUS, BIG_INTEGER, numbers.public_numbers.n),
            Item(Tag.PRIVATE_EXPONENT, BIG_INTEGER, numbers.d),
            Item(Tag.PUBLIC_EXPONENT, BIG_INTEGER, numbers.public_numbers.e),
        ],
    )
    body = PrivateKey(
        key_block=KeyBlock(
            key_format_type=F.TRANSPARENT_RSA_PRIVATE_KEY, key_value=KeyValue(material)
        )
    )
    uid = register(kmip, body)
    assert attribute_values(kmip, uid, "Cryptographic Length") == {"Cryptographic Length": 2048}
    fetched = block_key(fetch(kmip, uid, F.PKCS_1), private=True)
    assert fetched.private_numbers() == numbers  # type: ignore[attr-defined]


def _p521_public() -> PublicKey:
    der = (
        ec.generate_private_key(ec.SECP521R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return PublicKey(key_block=KeyBlock(key_format_type=F.X_509, key_value=KeyValue(der)))


def _ed25519_private() -> PrivateKey:
    der = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return PrivateKey(key_block=KeyBlock(key_format_type=F.PKCS_8, key_value=KeyValue(der)))


def _dsa_public() -> PublicKey:
    """A Transparent DSA Public Key, as the 2.1 Baseline test BL-M-12-21 registers one."""
    numbers = dsa.generate_private_key(1024).public_key().public_numbers()
    parameters = numbers.parameter_numbers
    material = Item(
        Tag.KEY_MATERIAL,
        STRUCTURE,
        [
            Item(Tag.P, BIG_INTEGER, parameters.p),
            Item(Tag.Q, BIG_INTEGER, parameters.q),
            Item(Tag.G, BIG_INTEGER, parameters.g),
            Item(Tag.Y, BIG_INTEGER, numbers.y),
        ],
    )
    return PublicKey(
        key_block=KeyBlock(
            key_format_type=F.TRANSPARENT_DSA_PUBLIC_KEY,
            key_value=KeyValue(material),
            cryptographic_algorithm=A.DSA,
            cryptographic_length=1024,
        )
    )


@pytest.mark.parametrize(
    ("body", "other_format"),
    [
        (_p521_public(), F.TRANSPARENT_EC_PUBLIC_KEY),
        (_ed25519_private(), F.PKCS_1),
        (_dsa_public(), F.X_509),
    ],
    ids=["ec-p521", "ed25519", "dsa"],
)
def test_keys_kmipd_does_not_read_are_stored_as_given(
    kmip: EngineHarness, body: PrivateKey | PublicKey, other_format: F
) -> None:
    """Not refused (kmipd stored any public or private key before it read RSA and EC), and
    served in their own format only."""
    uid = register(kmip, body)
    assert body.key_block is not None
    given = body.key_block.key_value
    assert isinstance(given, KeyValue)
    assert fetch(kmip, uid).key_value.key_material == given.key_material
    result = kmip.call(
        Operation.GET, GetRequest(unique_identifier=uid, key_format_type=other_format)
    )
    assert result.result_reason == ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED


def test_an_inconsistent_rsa_private_key_is_refused(kmip: EngineHarness) -> None:
    """The primes and the modulus agree, the private exponent does not: OpenSSL's check
    (run in a worker process) refuses it."""
    body = _transparent_rsa_private(PRIVATE_EXPONENT=RSA_KEY.private_numbers().d + 2)
    result = kmip.call(Operation.REGISTER, register_request(body, []))
    assert result.result_reason == ResultReason.INVALID_FIELD
    assert result.result_message == "the RSA private key's numbers are inconsistent"


def _transparent_rsa_private(**changed: int) -> PrivateKey:
    """RSA_KEY as a Transparent RSA Private Key with every number, some ``changed`` (by
    tag name)."""
    numbers = RSA_KEY.private_numbers()
    values = {
        Tag.MODULUS: numbers.public_numbers.n,
        Tag.PRIVATE_EXPONENT: numbers.d,
        Tag.PUBLIC_EXPONENT: numbers.public_numbers.e,
        Tag.P: numbers.p,
        Tag.Q: numbers.q,
        Tag.PRIME_EXPONENT_P: numbers.dmp1,
        Tag.PRIME_EXPONENT_Q: numbers.dmq1,
        Tag.CRT_COEFFICIENT: numbers.iqmp,
    }
    values.update({Tag[name]: value for name, value in changed.items()})
    material = Item(
        Tag.KEY_MATERIAL, STRUCTURE, [Item(tag, BIG_INTEGER, v) for tag, v in values.items()]
    )
    return PrivateKey(
        key_block=KeyBlock(
            key_format_type=F.TRANSPARENT_RSA_PRIVATE_KEY, key_value=KeyValue(material)
        )
    )


def test_checking_a_registered_rsa_key_does_not_hold_the_event_loop(kmip: EngineHarness) -> None:
    """OpenSSL's check of a 4096-bit RSA key holds the GIL for about a second here: it runs in
    a worker process, so other connections are served meanwhile."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    body = asymmetric.private_key_object(key, A.RSA, F.PKCS_1)
    item, gaps = call_while_ticking(kmip, Operation.REGISTER, register_request(body, []))
    assert item.result_status == OK, item.result_message
    assert len(gaps) >= 5, gaps
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"


def test_a_transparent_rsa_private_key_with_a_negative_number_is_invalid_field(
    kmip: EngineHarness,
) -> None:
    """Found by fuzzing (CI): a negative CRT value reached OpenSSL and raised OverflowError,
    which the engine answered with General Failure."""
    body = _transparent_rsa_private(PRIME_EXPONENT_P=-RSA_KEY.private_numbers().dmp1)
    result = kmip.call(Operation.REGISTER, register_request(body, []))
    assert result.result_reason == ResultReason.INVALID_FIELD, result.result_message
