"""Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify, Hash and RNG Retrieve through
the engine in process (real store, real keyring; see conftest.py). Expected outputs are
computed here with ``cryptography``/``hashlib`` independently of kmipd, or are published
test vectors."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kmipd.protocol._generated import (
    BlockCipherMode,
    CryptographicAlgorithm,
    CryptographicUsageMask,
    DigitalSignatureAlgorithm,
    HashingAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    PaddingMethod,
    QueryFunction,
    ResultReason,
    ResultStatus,
    RevocationReasonCode,
    SecretDataType,
    Tag,
    UsageLimitsUnit,
    ValidityIndicator,
)
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.crypto_payloads import (
    DecryptRequest,
    EncryptRequest,
    HashRequest,
    MacRequest,
    MacVerifyRequest,
    RngRetrieveRequest,
    SignatureVerifyRequest,
    SignRequest,
)
from kmipd.protocol.objects import (
    KeyBlock,
    KeyValue,
    PrivateKey,
    PublicKey,
    RevocationReason,
    SecretData,
    SymmetricKey,
)
from kmipd.protocol.payloads import (
    GetAttributesRequest,
    QueryRequest,
    RegisterRequest,
    RevokeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import (
    BOOLEAN,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    LONG_INTEGER,
    STRUCTURE,
    Item,
)
from tests.unit.operations.conftest import NOW, EngineHarness

A = CryptographicAlgorithm
M = CryptographicUsageMask
OK = ResultStatus.SUCCESS
FAILED = ResultStatus.OPERATION_FAILED
AES_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")


def params(**fields: Any) -> Item:
    """A Cryptographic Parameters structure: params(block_cipher_mode=BlockCipherMode.GCM)."""
    types = {"random_iv": BOOLEAN}
    children = [
        Item(getattr(Tag, name.upper()), types.get(name, _type_of(name)), value)
        for name, value in fields.items()
    ]
    return Item(Tag.CRYPTOGRAPHIC_PARAMETERS, STRUCTURE, children)


def _type_of(name: str) -> int:
    return INTEGER if name.endswith(("_length", "_value")) else ENUMERATION


def register(
    kmip: EngineHarness,
    body: Any,
    object_type: ObjectType,
    mask: int,
    *extra: Attribute,
    activate: bool = True,
) -> str:
    attributes = [Attribute("Cryptographic Usage Mask", mask, None, INTEGER), *extra]
    result = kmip.call(
        Operation.REGISTER,
        RegisterRequest(object_type=object_type, attributes=attributes, managed_object=body),
    )
    assert result.result_status == OK, result.result_message
    uid = str(result.payload.unique_identifier)
    if activate:
        activated = kmip.call(Operation.ACTIVATE, UidRequest(unique_identifier=uid))
        assert activated.result_status == OK, activated.result_message
    return uid


def aes_key(
    kmip: EngineHarness,
    mask: int = M.ENCRYPT | M.DECRYPT,
    *extra: Attribute,
    material: bytes = AES_KEY,
    activate: bool = True,
) -> str:
    body = SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=material),
            cryptographic_algorithm=A.AES,
            cryptographic_length=len(material) * 8,
        )
    )
    return register(kmip, body, ObjectType.SYMMETRIC_KEY, mask, *extra, activate=activate)


def encrypt(kmip: EngineHarness, uid: str, data: bytes, **kwargs: Any) -> Any:
    version = kwargs.pop("version", (2, 1))
    request = EncryptRequest(unique_identifier=uid, data=data, **kwargs)
    return kmip.call(Operation.ENCRYPT, request, version=version)


def decrypt(kmip: EngineHarness, uid: str, data: bytes, **kwargs: Any) -> Any:
    version = kwargs.pop("version", (2, 1))
    request = DecryptRequest(unique_identifier=uid, data=data, **kwargs)
    return kmip.call(Operation.DECRYPT, request, version=version)


def expect_failure(result: Any, reason: ResultReason) -> None:
    assert result.result_status == FAILED, "the operation succeeded"
    assert result.result_reason == reason, result.result_message
    assert AES_KEY.hex() not in (result.result_message or "").lower()


# --- symmetric encryption --------------------------------------------------------------------


def test_gcm_matches_the_published_vector_and_checks_its_tag(kmip: EngineHarness) -> None:
    # McGrew & Viega GCM test case 2: zero key, zero IV, one zero block.
    uid = aes_key(kmip, material=bytes(16))
    gcm = params(block_cipher_mode=BlockCipherMode.GCM, tag_length=16)
    sealed = encrypt(kmip, uid, bytes(16), cryptographic_parameters=gcm, iv_counter_nonce=bytes(12))
    assert sealed.result_status == OK, sealed.result_message
    assert sealed.payload.data.hex() == "0388dace60b6a392f328c2b971b2fe78"
    assert sealed.payload.authenticated_encryption_tag.hex() == "ab6e47d42cec13bdf53a67b21257bddf"

    opened = decrypt(
        kmip,
        uid,
        sealed.payload.data,
        cryptographic_parameters=gcm,
        iv_counter_nonce=bytes(12),
        authenticated_encryption_tag=sealed.payload.authenticated_encryption_tag,
    )
    assert opened.payload.data == bytes(16)
    forged = decrypt(
        kmip,
        uid,
        sealed.payload.data,
        cryptographic_parameters=gcm,
        iv_counter_nonce=bytes(12),
        authenticated_encryption_tag=b"\x00" + sealed.payload.authenticated_encryption_tag[1:],
    )
    expect_failure(forged, ResultReason.CRYPTOGRAPHIC_FAILURE)


def test_gcm_with_random_iv_and_additional_data_round_trips(kmip: EngineHarness) -> None:
    uid = aes_key(
        kmip,
        M.ENCRYPT | M.DECRYPT,
        Attribute(
            "Cryptographic Parameters",
            params(block_cipher_mode=BlockCipherMode.GCM, random_iv=True),
            None,
            STRUCTURE,
        ),
    )
    aad = b"header"
    first = encrypt(kmip, uid, b"secret text", authenticated_encryption_additional_data=aad)
    second = encrypt(kmip, uid, b"secret text", authenticated_encryption_additional_data=aad)
    assert first.result_status == OK, first.result_message
    assert len(first.payload.iv_counter_nonce) == 12
    assert first.payload.iv_counter_nonce != second.payload.iv_counter_nonce
    # Reference: the same IV, key and AAD with cryptography directly.
    encryptor = Cipher(
        algorithms.AES(AES_KEY), modes.GCM(first.payload.iv_counter_nonce)
    ).encryptor()
    encryptor.authenticate_additional_data(aad)
    assert first.payload.data == encryptor.update(b"secret text") + encryptor.finalize()
    assert first.payload.authenticated_encryption_tag == encryptor.tag

    # Decrypting takes the IV back; with other additional data the tag does not match.
    no_random = params(block_cipher_mode=BlockCipherMode.GCM, random_iv=False)
    common = {
        "cryptographic_parameters": no_random,
        "iv_counter_nonce": first.payload.iv_counter_nonce,
        "authenticated_encryption_tag": first.payload.authenticated_encryption_tag,
    }
    opened = decrypt(
        kmip, uid, first.payload.data, authenticated_encryption_additional_data=aad, **common
    )
    assert opened.payload.data == b"secret text"
    tampered = decrypt(
        kmip, uid, first.payload.data, authenticated_encryption_additional_data=b"other", **common
    )
    expect_failure(tampered, ResultReason.CRYPTOGRAPHIC_FAILURE)


def test_cbc_pkcs5_ctr_and_xts_match_cryptography(kmip: EngineHarness) -> None:
    uid = aes_key(kmip)
    iv = bytes(range(16))
    data = b"seventeen bytes!!"
    cbc = params(block_cipher_mode=BlockCipherMode.CBC, padding_method=PaddingMethod.PKCS5)
    sealed = encrypt(kmip, uid, data, cryptographic_parameters=cbc, iv_counter_nonce=iv)
    encryptor = Cipher(algorithms.AES(AES_KEY), modes.CBC(iv)).encryptor()
    padded = data + bytes([15]) * 15
    assert sealed.payload.data == encryptor.update(padded) + encryptor.finalize()
    opened = decrypt(
        kmip, uid, sealed.payload.data, cryptographic_parameters=cbc, iv_counter_nonce=iv
    )
    assert opened.payload.data == data

    ctr = params(block_cipher_mode=BlockCipherMode.CTR)
    sealed = encrypt(kmip, uid, data, cryptographic_parameters=ctr, iv_counter_nonce=iv)
    encryptor = Cipher(algorithms.AES(AES_KEY), modes.CTR(iv)).encryptor()
    assert sealed.payload.data == encryptor.update(data) + encryptor.finalize()

    # XTS: a 512-bit key (two AES-256 keys), the IV is the tweak.
    xts_key = bytes(range(64))
    xts_uid = aes_key(kmip, material=xts_key)
    xts = params(block_cipher_mode=BlockCipherMode.XTS)
    sealed = encrypt(kmip, xts_uid, data, cryptographic_parameters=xts, iv_counter_nonce=iv)
    encryptor = Cipher(algorithms.AES(xts_key), modes.XTS(iv)).encryptor()
    assert sealed.payload.data == encryptor.update(data) + encryptor.finalize()
    opened = decrypt(
        kmip, xts_uid, sealed.payload.data, cryptographic_parameters=xts, iv_counter_nonce=iv
    )
    assert opened.payload.data == data


def test_bad_parameters_get_precise_reasons_per_version(kmip: EngineHarness) -> None:
    uid = aes_key(kmip)
    # No Block Cipher Mode anywhere.
    expect_failure(encrypt(kmip, uid, bytes(16)), ResultReason.BAD_CRYPTOGRAPHIC_PARAMETERS)
    expect_failure(encrypt(kmip, uid, bytes(16), version=(1, 4)), ResultReason.INVALID_FIELD)
    # A mode kmipd does not implement.
    cfb = params(block_cipher_mode=BlockCipherMode.CFB)
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=cfb),
        ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS,
    )
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=cfb, version=(1, 4)),
        ResultReason.FEATURE_NOT_SUPPORTED,
    )
    # ECB without padding on data that is not whole blocks.
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    expect_failure(
        encrypt(kmip, uid, bytes(15), cryptographic_parameters=ecb),
        ResultReason.BAD_CRYPTOGRAPHIC_PARAMETERS,
    )
    # CBC decryption without the IV: Invalid Message, as the CS-BC profile expects.
    cbc = params(block_cipher_mode=BlockCipherMode.CBC)
    expect_failure(
        decrypt(kmip, uid, bytes(16), cryptographic_parameters=cbc), ResultReason.INVALID_MESSAGE
    )
    # A wrong PKCS#5 padding after decryption.
    cbc_pkcs5 = params(block_cipher_mode=BlockCipherMode.CBC, padding_method=PaddingMethod.PKCS5)
    expect_failure(
        decrypt(
            kmip, uid, bytes(16), cryptographic_parameters=cbc_pkcs5, iv_counter_nonce=bytes(16)
        ),
        ResultReason.CRYPTOGRAPHIC_FAILURE,
    )
    # No Data at all.
    missing = kmip.call(
        Operation.ENCRYPT, EncryptRequest(unique_identifier=uid, cryptographic_parameters=ecb)
    )
    expect_failure(missing, ResultReason.INVALID_MESSAGE)


def test_multi_part_gcm_matches_one_shot_and_ends_its_stream(kmip: EngineHarness) -> None:
    uid = aes_key(kmip)
    gcm = params(block_cipher_mode=BlockCipherMode.GCM)
    iv, aad = bytes(range(12)), b"header"
    whole = encrypt(
        kmip,
        uid,
        b"first part|second part",
        cryptographic_parameters=gcm,
        iv_counter_nonce=iv,
        authenticated_encryption_additional_data=aad,
    )
    first = encrypt(
        kmip,
        uid,
        b"first part|",
        cryptographic_parameters=gcm,
        iv_counter_nonce=iv,
        authenticated_encryption_additional_data=aad,
        init_indicator=True,
    )
    assert first.result_status == OK, first.result_message
    correlation = first.payload.correlation_value
    assert correlation and first.payload.authenticated_encryption_tag is None
    last = encrypt(kmip, uid, b"second part", correlation_value=correlation, final_indicator=True)
    assert last.result_status == OK, last.result_message
    assert last.payload.correlation_value is None
    assert first.payload.data + last.payload.data == whole.payload.data
    assert last.payload.authenticated_encryption_tag == whole.payload.authenticated_encryption_tag
    # The stream is over: its Correlation Value is unknown now.
    again = encrypt(kmip, uid, b"more", correlation_value=correlation, final_indicator=True)
    expect_failure(again, ResultReason.INVALID_CORRELATION_VALUE)
    again_1_4 = encrypt(
        kmip, uid, b"more", correlation_value=correlation, final_indicator=True, version=(1, 4)
    )
    expect_failure(again_1_4, ResultReason.INVALID_FIELD)

    # Decrypting in parts, the tag with the last part.
    opened = decrypt(
        kmip,
        uid,
        whole.payload.data[:5],
        cryptographic_parameters=gcm,
        iv_counter_nonce=iv,
        authenticated_encryption_additional_data=aad,
        init_indicator=True,
    )
    rest = decrypt(
        kmip,
        uid,
        whole.payload.data[5:],
        correlation_value=opened.payload.correlation_value,
        final_indicator=True,
        authenticated_encryption_tag=whole.payload.authenticated_encryption_tag,
    )
    assert rest.result_status == OK, rest.result_message
    assert opened.payload.data + rest.payload.data == b"first part|second part"

    # A stream is the client's own: another instance does not find it.
    kmip.add_instance("other")
    begun = encrypt(
        kmip, uid, b"x", cryptographic_parameters=gcm, iv_counter_nonce=iv, init_indicator=True
    )
    stolen = kmip.call(
        Operation.ENCRYPT,
        EncryptRequest(
            data=b"y", correlation_value=begun.payload.correlation_value, final_indicator=True
        ),
        instance="other",
    )
    expect_failure(stolen, ResultReason.INVALID_CORRELATION_VALUE)
    # MAC has no multi-part form in kmipd: refused, not half-done.
    mac = kmip.call(
        Operation.MAC, MacRequest(unique_identifier=uid, data=b"x", init_indicator=True)
    )
    expect_failure(mac, ResultReason.FEATURE_NOT_SUPPORTED)


# --- who may use a key ---------------------------------------------------------------------


def test_usage_mask_is_enforced(kmip: EngineHarness) -> None:
    uid = aes_key(kmip, M.DECRYPT)
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb),
        ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
    )
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb, version=(1, 4)),
        ResultReason.PERMISSION_DENIED,
    )
    assert decrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb).result_status == OK
    mac = kmip.call(Operation.MAC, MacRequest(unique_identifier=uid, data=b"x"))
    expect_failure(mac, ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK)


def test_state_and_dates_are_enforced(kmip: EngineHarness) -> None:
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    pre_active = aes_key(kmip, activate=False)
    expect_failure(
        encrypt(kmip, pre_active, bytes(16), cryptographic_parameters=ecb),
        ResultReason.WRONG_KEY_LIFECYCLE_STATE,
    )
    expect_failure(
        encrypt(kmip, pre_active, bytes(16), cryptographic_parameters=ecb, version=(1, 4)),
        ResultReason.PERMISSION_DENIED,
    )

    # Deactivated (revoked, not compromised): may still decrypt, never encrypt.
    uid = aes_key(kmip)
    sealed = encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb)
    revoked = kmip.call(
        Operation.REVOKE,
        RevokeRequest(
            unique_identifier=uid,
            revocation_reason=RevocationReason(code=RevocationReasonCode.CESSATION_OF_OPERATION),
        ),
    )
    assert revoked.result_status == OK
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb),
        ResultReason.WRONG_KEY_LIFECYCLE_STATE,
    )
    opened = decrypt(kmip, uid, sealed.payload.data, cryptographic_parameters=ecb)
    assert opened.payload.data == bytes(16)

    # Protect Stop Date passed: no encryption; Process Start Date to come: no decryption.
    dated = aes_key(
        kmip,
        M.ENCRYPT | M.DECRYPT,
        Attribute("Protect Stop Date", NOW + 60, None, DATE_TIME),
        Attribute("Process Start Date", NOW + 60, None, DATE_TIME),
    )
    assert encrypt(kmip, dated, bytes(16), cryptographic_parameters=ecb).result_status == OK
    expect_failure(
        decrypt(kmip, dated, bytes(16), cryptographic_parameters=ecb),
        ResultReason.WRONG_KEY_LIFECYCLE_STATE,
    )
    kmip.advance(120)
    expect_failure(
        encrypt(kmip, dated, bytes(16), cryptographic_parameters=ecb),
        ResultReason.WRONG_KEY_LIFECYCLE_STATE,
    )
    assert decrypt(kmip, dated, bytes(16), cryptographic_parameters=ecb).result_status == OK


def test_usage_limits_are_counted_down_and_stored(kmip: EngineHarness) -> None:
    limits = Item(
        Tag.USAGE_LIMITS,
        STRUCTURE,
        [
            Item(Tag.USAGE_LIMITS_TOTAL, LONG_INTEGER, 32),
            Item(Tag.USAGE_LIMITS_UNIT, ENUMERATION, UsageLimitsUnit.BYTE),
        ],
    )
    uid = aes_key(kmip, M.ENCRYPT | M.DECRYPT, Attribute("Usage Limits", limits, None, STRUCTURE))
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    assert encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb).result_status == OK
    stored = (
        kmip.call(
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=uid, attribute_names=["Usage Limits"]),
        )
        .payload.attributes[0]
        .value
    )
    assert stored.find(Tag.USAGE_LIMITS_COUNT).value == 16
    # 32 bytes would go over what is left: refused, and nothing is consumed.
    expect_failure(
        encrypt(kmip, uid, bytes(32), cryptographic_parameters=ecb), ResultReason.PERMISSION_DENIED
    )
    assert encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb).result_status == OK
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb), ResultReason.PERMISSION_DENIED
    )


def test_secret_data_cannot_encrypt(kmip: EngineHarness) -> None:
    body = SecretData(
        secret_data_type=SecretDataType.PASSWORD,
        key_block=KeyBlock(
            key_format_type=KeyFormatType.OPAQUE, key_value=KeyValue(key_material=b"pw")
        ),
    )
    uid = register(kmip, body, ObjectType.SECRET_DATA, M.ENCRYPT)
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    expect_failure(
        encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb),
        ResultReason.INVALID_OBJECT_TYPE,
    )


# --- MAC, Hash, RNG --------------------------------------------------------------------------


def test_mac_and_mac_verify(kmip: EngineHarness) -> None:
    key = bytes(range(32))
    body = SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=key),
            cryptographic_algorithm=A.HMAC_SHA256,
            cryptographic_length=256,
        )
    )
    uid = register(kmip, body, ObjectType.SYMMETRIC_KEY, M.MAC_GENERATE | M.MAC_VERIFY)
    result = kmip.call(Operation.MAC, MacRequest(unique_identifier=uid, data=b"message"))
    assert result.result_status == OK, result.result_message
    assert result.payload.mac_data == hmac.new(key, b"message", hashlib.sha256).digest()

    def verify(data: bytes, mac: bytes) -> int:
        answer = kmip.call(
            Operation.MAC_VERIFY, MacVerifyRequest(unique_identifier=uid, data=data, mac_data=mac)
        )
        assert answer.result_status == OK, answer.result_message
        return int(answer.payload.validity_indicator)

    assert verify(b"message", result.payload.mac_data) == ValidityIndicator.VALID
    assert verify(b"massage", result.payload.mac_data) == ValidityIndicator.INVALID
    # SHA-512 asked for explicitly, on the same key.
    sha512 = params(cryptographic_algorithm=A.HMAC_SHA512)
    result = kmip.call(
        Operation.MAC,
        MacRequest(unique_identifier=uid, data=b"message", cryptographic_parameters=sha512),
    )
    assert result.payload.mac_data == hmac.new(key, b"message", hashlib.sha512).digest()
    # An AES key asked for a MAC: kmipd offers HMAC only.
    aes = aes_key(kmip, M.MAC_GENERATE)
    refused = kmip.call(Operation.MAC, MacRequest(unique_identifier=aes, data=b"message"))
    expect_failure(refused, ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS)
    # Not even when the request names an HMAC: the AES key's bytes are no HMAC key.
    as_hmac = kmip.call(
        Operation.MAC,
        MacRequest(
            unique_identifier=aes,
            data=b"message",
            cryptographic_parameters=params(cryptographic_algorithm=A.HMAC_SHA256),
        ),
    )
    expect_failure(as_hmac, ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS)
    # An AES key whose own Cryptographic Parameters name an HMAC is meant for it (CS-AC-M-4).
    declared = aes_key(
        kmip,
        M.MAC_GENERATE,
        Attribute(
            "Cryptographic Parameters",
            params(cryptographic_algorithm=A.HMAC_SHA256),
            None,
            STRUCTURE,
        ),
    )
    result = kmip.call(Operation.MAC, MacRequest(unique_identifier=declared, data=b"message"))
    assert result.payload.mac_data == hmac.new(AES_KEY, b"message", hashlib.sha256).digest()


def test_hash(kmip: EngineHarness) -> None:
    for algorithm, name in (
        (HashingAlgorithm.SHA_256, "sha256"),
        (HashingAlgorithm.SHA3_512, "sha3_512"),
    ):
        result = kmip.call(
            Operation.HASH,
            HashRequest(cryptographic_parameters=params(hashing_algorithm=algorithm), data=b"abc"),
        )
        assert result.result_status == OK, result.result_message
        assert result.payload.data == hashlib.new(name, b"abc").digest()
    md2 = kmip.call(
        Operation.HASH,
        HashRequest(
            cryptographic_parameters=params(hashing_algorithm=HashingAlgorithm.MD2), data=b"abc"
        ),
    )
    expect_failure(md2, ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS)
    none = kmip.call(Operation.HASH, HashRequest(cryptographic_parameters=params(), data=b"abc"))
    expect_failure(none, ResultReason.BAD_CRYPTOGRAPHIC_PARAMETERS)


def test_rng_retrieve(kmip: EngineHarness) -> None:
    first = kmip.call(Operation.RNG_RETRIEVE, RngRetrieveRequest(data_length=32))
    second = kmip.call(Operation.RNG_RETRIEVE, RngRetrieveRequest(data_length=32))
    assert first.result_status == OK
    assert len(first.payload.data) == 32
    assert first.payload.data != second.payload.data
    for bad in (0, -1, 1024 * 1024 + 1):
        refused = kmip.call(Operation.RNG_RETRIEVE, RngRetrieveRequest(data_length=bad))
        expect_failure(refused, ResultReason.INVALID_FIELD)


# --- asymmetric ------------------------------------------------------------------------------


def _rsa_pair(kmip: EngineHarness, private_mask: int, public_mask: int) -> tuple[str, str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )

    def block(material: bytes) -> KeyBlock:
        return KeyBlock(
            key_format_type=KeyFormatType.PKCS_1,
            key_value=KeyValue(key_material=material),
            cryptographic_algorithm=A.RSA,
            cryptographic_length=2048,
        )

    private = register(
        kmip, PrivateKey(key_block=block(private_der)), ObjectType.PRIVATE_KEY, private_mask
    )
    public = register(
        kmip, PublicKey(key_block=block(public_der)), ObjectType.PUBLIC_KEY, public_mask
    )
    return private, public, key


def test_rsa_sign_and_verify(kmip: EngineHarness) -> None:
    private, public, key = _rsa_pair(kmip, M.SIGN, M.VERIFY)
    pkcs1 = params(
        digital_signature_algorithm=DigitalSignatureAlgorithm.SHA_256_WITH_RSA_ENCRYPTION
    )
    signed = kmip.call(
        Operation.SIGN,
        SignRequest(unique_identifier=private, data=b"document", cryptographic_parameters=pkcs1),
    )
    assert signed.result_status == OK, signed.result_message
    # Verified independently of kmipd (raises if invalid).
    key.public_key().verify(
        signed.payload.signature_data, b"document", padding.PKCS1v15(), hashes.SHA256()
    )

    def verify(data: bytes, signature: bytes, parameters: Item) -> int:
        answer = kmip.call(
            Operation.SIGNATURE_VERIFY,
            SignatureVerifyRequest(
                unique_identifier=public,
                data=data,
                signature_data=signature,
                cryptographic_parameters=parameters,
            ),
        )
        assert answer.result_status == OK, answer.result_message
        return int(answer.payload.validity_indicator)

    assert verify(b"document", signed.payload.signature_data, pkcs1) == ValidityIndicator.VALID
    assert verify(b"documenT", signed.payload.signature_data, pkcs1) == ValidityIndicator.INVALID

    pss = params(
        padding_method=PaddingMethod.PSS,
        hashing_algorithm=HashingAlgorithm.SHA_256,
        cryptographic_algorithm=A.RSA,
    )
    signature = key.sign(
        b"document",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert verify(b"document", signature, pss) == ValidityIndicator.VALID

    # The private key cannot verify, the public key cannot sign.
    wrong = kmip.call(
        Operation.SIGN,
        SignRequest(unique_identifier=public, data=b"document", cryptographic_parameters=pkcs1),
    )
    expect_failure(wrong, ResultReason.INVALID_OBJECT_TYPE)


def test_rsa_oaep_encrypt_and_decrypt(kmip: EngineHarness) -> None:
    private, public, key = _rsa_pair(kmip, M.DECRYPT, M.ENCRYPT)
    oaep = params(
        padding_method=PaddingMethod.OAEP,
        hashing_algorithm=HashingAlgorithm.SHA_256,
        cryptographic_algorithm=A.RSA,
    )
    sealed = encrypt(kmip, public, b"wrapped secret", cryptographic_parameters=oaep)
    assert sealed.result_status == OK, sealed.result_message
    reference = padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )
    assert key.decrypt(sealed.payload.data, reference) == b"wrapped secret"
    opened = decrypt(kmip, private, sealed.payload.data, cryptographic_parameters=oaep)
    assert opened.payload.data == b"wrapped secret"
    garbage = decrypt(kmip, private, bytes(256), cryptographic_parameters=oaep)
    expect_failure(garbage, ResultReason.CRYPTOGRAPHIC_FAILURE)
    # PKCS#1 v1.5 decryption would be a padding oracle: refused whatever the ciphertext.
    pkcs1 = params(padding_method=PaddingMethod.PKCS1_V1_5, cryptographic_algorithm=A.RSA)
    sealed = encrypt(kmip, public, b"x", cryptographic_parameters=pkcs1)
    assert sealed.result_status == OK, sealed.result_message
    refused = decrypt(kmip, private, sealed.payload.data, cryptographic_parameters=pkcs1)
    expect_failure(refused, ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS)


def test_ecdsa_sign_verified_independently(kmip: EngineHarness) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = PrivateKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.PKCS_8,
            key_value=KeyValue(key_material=der),
            cryptographic_algorithm=A.ECDSA,
            cryptographic_length=256,
        )
    )
    uid = register(kmip, body, ObjectType.PRIVATE_KEY, M.SIGN)
    ecdsa = params(digital_signature_algorithm=DigitalSignatureAlgorithm.ECDSA_WITH_SHA256)
    signed = kmip.call(
        Operation.SIGN,
        SignRequest(unique_identifier=uid, data=b"document", cryptographic_parameters=ecdsa),
    )
    assert signed.result_status == OK, signed.result_message
    key.public_key().verify(signed.payload.signature_data, b"document", ec.ECDSA(hashes.SHA256()))


def test_kmip_1_1_has_no_crypto_operations(kmip: EngineHarness) -> None:
    result = kmip.call(Operation.RNG_RETRIEVE, RngRetrieveRequest(data_length=8), version=(1, 1))
    expect_failure(result, ResultReason.OPERATION_NOT_SUPPORTED)
    assert "KMIP 1.1" in (result.result_message or "")
    uid = aes_key(kmip)
    ecb = params(block_cipher_mode=BlockCipherMode.ECB)
    refused = encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb, version=(1, 1))
    expect_failure(refused, ResultReason.OPERATION_NOT_SUPPORTED)
    assert encrypt(kmip, uid, bytes(16), cryptographic_parameters=ecb, version=(1, 2)).payload


def test_query_reports_the_crypto_operations(kmip: EngineHarness) -> None:
    for version in ((1, 4), (2, 1)):
        result = kmip.call(
            Operation.QUERY,
            QueryRequest(query_functions=[QueryFunction.QUERY_OPERATIONS]),
            version=version,
        )
        reported = set(result.payload.operations)
        for operation in (
            Operation.ENCRYPT,
            Operation.DECRYPT,
            Operation.SIGN,
            Operation.SIGNATURE_VERIFY,
            Operation.MAC,
            Operation.MAC_VERIFY,
            Operation.HASH,
            Operation.RNG_RETRIEVE,
        ):
            assert operation in reported, (version, operation)
        # Not implemented, not claimed.
        assert Operation.RNG_SEED not in reported
