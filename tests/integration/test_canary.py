"""Key material never reaches disk or logs in the clear: canary keys through every operation.

Symmetric keys and a secret data object are registered with random canary bytes (new each
run); then every kind of operation runs over KMIP and the admin API (create, register, get,
add/modify/delete attribute with x- tags, rotate + re-wrap, revoke + destroy, admin delete).
The canaries are fetched back first, so the scan cannot pass vacuously. Then every file of
the data directory (SQLite database and its -wal/-shm, keyring, audit, the server's log) is
scanned, both as left while serving and after a stop, for each canary as raw bytes, lower and
upper hex and base64 (standard and urlsafe, at every alignment): zero hits.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kmipd.protocol._generated import (
    BlockCipherMode,
    DigitalSignatureAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    RevocationReasonCode,
    SecretDataType,
    Tag,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.crypto_payloads import (
    DecryptRequest,
    EncryptRequest,
    MacRequest,
    MacVerifyRequest,
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
    AddAttributeRequest,
    CreateKeyPairRequest,
    DeleteAttributeRequest,
    GetRequest,
    ModifyAttributeRequest,
    RegisterRequest,
    RevokeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item
from tests.support import kmip
from tests.support.admin import bearer, https_client
from tests.support.server import KmipdServer

AES = 3
RSA, EC = 4, 26  # Cryptographic Algorithm values


def register_aes(material: bytes) -> bytes:
    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
            Attribute("x-Purpose", "canary", None, TEXT_STRING),
        ]
    )
    key = SymmetricKey(
        KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=material),
            cryptographic_algorithm=AES,
            cryptographic_length=len(material) * 8,
        )
    )
    return kmip.request(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template, managed_object=key
        ),
    )


def register_secret(material: bytes) -> bytes:
    template = TemplateAttribute(
        attributes=[Attribute("Cryptographic Usage Mask", 0, None, INTEGER)]
    )
    secret = SecretData(
        secret_data_type=SecretDataType.PASSWORD,
        key_block=KeyBlock(
            key_format_type=KeyFormatType.OPAQUE, key_value=KeyValue(key_material=material)
        ),
    )
    return kmip.request(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SECRET_DATA, template_attribute=template, managed_object=secret
        ),
    )


def fetched(connection: Any, uid: str) -> bytes:
    """The key material of ``uid`` (symmetric key or secret data) as served."""
    return kmip.key_material(connection.call(kmip.get(uid)))


def encodings(canary: bytes) -> dict[str, bytes]:
    """Every form a leak could take: raw, hex, and base64 at each of the 3 alignments (the
    characters that depend only on the canary, so a canary inside a longer blob is found)."""
    forms = {"raw": canary, "hex": canary.hex().encode(), "HEX": canary.hex().upper().encode()}
    for shift in range(3):
        padded = b"\0" * shift + canary + b"\0" * 3
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            text = encode(padded)
            start = 4 if shift else 0
            end = (shift + len(canary)) // 3 * 4  # whole groups made of canary bytes only
            forms[f"{name}+{shift}"] = text[start:end]
    return forms


def scan(files: dict[str, bytes], canaries: dict[str, bytes]) -> list[str]:
    hits = []
    for label, canary in canaries.items():
        for form, needle in encodings(canary).items():
            assert len(needle) >= 16
            for path, content in files.items():
                if needle in content:
                    hits.append(f"{label} as {form} in {path}")
    return hits


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (read while the server may be writing)."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            try:
                files[str(path.relative_to(directory))] = path.read_bytes()
            except OSError:
                continue
    return files


def test_no_canary_bytes_on_disk_or_in_logs(kmipd_server: KmipdServer, tmp_path: Path) -> None:
    server = kmipd_server
    canaries = {f"aes-{i}": os.urandom(32) for i in range(3)}
    canaries["aes-128"] = os.urandom(16)
    canaries["secret"] = os.urandom(48)
    uids: dict[str, str] = {}
    headers = bearer(server.admin_api_key)
    with server.connect() as connection:
        for label, material in canaries.items():
            request = register_secret(material) if label == "secret" else register_aes(material)
            uids[label] = kmip.created_uid(connection.call(request))
        created = [kmip.created_uid(connection.call(kmip.create_aes())) for _ in range(5)]
        # Reads, and the attribute edits, with x- tags.
        for label, uid in uids.items():
            assert fetched(connection, uid) == canaries[label]
            kmip.ok(
                connection.call(
                    kmip.request(
                        Operation.ADD_ATTRIBUTE,
                        AddAttributeRequest(
                            unique_identifier=uid,
                            attribute=Attribute("x-Tag", f"tag-{label}", None, TEXT_STRING),
                        ),
                    )
                )
            )
            kmip.ok(
                connection.call(
                    kmip.request(
                        Operation.MODIFY_ATTRIBUTE,
                        ModifyAttributeRequest(
                            unique_identifier=uid,
                            attribute=Attribute("x-Tag", f"changed-{label}", 0, TEXT_STRING),
                        ),
                    )
                )
            )
            kmip.ok(
                connection.call(
                    kmip.request(
                        Operation.DELETE_ATTRIBUTE,
                        DeleteAttributeRequest(
                            unique_identifier=uid, attribute_name="x-Tag", attribute_index=0
                        ),
                    )
                )
            )
            kmip.ok(connection.call(kmip.request(Operation.ACTIVATE, UidRequest(uid))))
        for uid in created:
            assert len(fetched(connection, uid)) == 32

    with https_client(server) as http:
        http.headers.update(headers)
        listed = http.get("/admin/v1/instances/default/keys", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        shown = http.get(f"/admin/v1/instances/default/keys/{uids['aes-0']}")
        assert shown.status_code == 200, shown.text
        # Rotate the root key and wait for the re-wrap of every object.
        rotated = http.post("/admin/v1/instances/default/rotate")
        assert rotated.status_code == 200, rotated.text
        deadline = time.monotonic() + 60
        while True:
            job = http.get("/admin/v1/instances/default/rewrap").json()
            if job["state"] == "done":
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["error"] is None and job["objects_remaining"] == 0, job
        assert job["objects_on_target"] == len(canaries) + len(created), job

    with server.connect() as connection:
        # Still served after the re-wrap, with the same bytes.
        for label, uid in uids.items():
            assert fetched(connection, uid) == canaries[label]
        # Revoke + destroy one key over KMIP.
        doomed = uids["aes-1"]
        kmip.ok(
            connection.call(
                kmip.request(
                    Operation.REVOKE,
                    RevokeRequest(
                        unique_identifier=doomed,
                        revocation_reason=RevocationReason(
                            code=RevocationReasonCode.CESSATION_OF_OPERATION
                        ),
                    ),
                )
            )
        )
        kmip.ok(connection.call(kmip.request(Operation.DESTROY, UidRequest(doomed))))
        assert kmip.item(connection.call(kmip.get(doomed))).result_status != 0
    with https_client(server) as http:
        deleted = http.delete(f"/admin/v1/instances/default/keys/{uids['aes-2']}", headers=headers)
        assert deleted.status_code == 200, deleted.text
        assert "destroy" in str(deleted.json()["state"]).lower(), deleted.json()

    while_serving = snapshot(server.data_dir)
    assert any(name.endswith("-wal") for name in while_serving), sorted(while_serving)
    server.stop()
    after_stop = snapshot(server.data_dir)
    assert str(server.database.relative_to(server.data_dir)) in after_stop
    assert after_stop.get("serve.log")
    assert any(name.startswith("keyring") for name in after_stop), sorted(after_stop)
    files = {f"{name} (serving)": content for name, content in while_serving.items()}
    files.update({f"{name} (stopped)": content for name, content in after_stop.items()})
    assert scan(files, canaries) == []
    # The scan finds a canary where there is one (the test can fail).
    planted = {"planted": b"x" + base64.b64encode(b"\1" + canaries["aes-0"]) + b"y"}
    assert scan(planted, {"aes-0": canaries["aes-0"]})


# -- private keys ------------------------------------------------------------------------------


def _private_canaries(
    label: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> dict[str, bytes]:
    """The DER of ``key`` in each format kmipd serves, and the secret numbers inside it (any
    encoding of the key, DER or Transparent, holds them as big-endian bytes)."""
    none = serialization.NoEncryption()
    der = serialization.Encoding.DER
    forms = {
        f"{label} PKCS#8": key.private_bytes(der, serialization.PrivateFormat.PKCS8, none),
        f"{label} PKCS#1/SEC1": key.private_bytes(
            der, serialization.PrivateFormat.TraditionalOpenSSL, none
        ),
    }
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        forms[f"{label} d"] = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
        forms[f"{label} p"] = numbers.p.to_bytes((numbers.p.bit_length() + 7) // 8, "big")
    else:
        secret = key.private_numbers().private_value
        forms[f"{label} D"] = secret.to_bytes(32, "big")
    return forms


def _served_private_key(connection: Any, uid: str, fmt: KeyFormatType) -> Any:
    response = connection.call(
        kmip.request(Operation.GET, GetRequest(unique_identifier=uid, key_format_type=fmt))
    )
    der = kmip.key_material(response)
    return serialization.load_der_private_key(der, password=None)


def _private_key_request(material: bytes, fmt: KeyFormatType, *attributes: Attribute) -> bytes:
    key = PrivateKey(KeyBlock(key_format_type=fmt, key_value=KeyValue(key_material=material)))
    return kmip.request(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.PRIVATE_KEY,
            template_attribute=TemplateAttribute(attributes=list(attributes)),
            managed_object=key,
        ),
    )


def test_no_private_key_bytes_on_disk_in_logs_or_errors(kmipd_server: KmipdServer) -> None:
    """Private keys made by Create Key Pair and one registered: their DER (and the secret
    numbers in it) are in no file of the data directory and in no error answer."""
    server = kmipd_server
    registered = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    registered_der = registered.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    canaries = _private_canaries("registered", registered)
    errors: dict[str, bytes] = {}
    with server.connect() as connection:
        registered_uid = kmip.created_uid(
            connection.call(_private_key_request(registered_der, KeyFormatType.PKCS_8))
        )
        pairs = {}
        for label, attributes in (
            ("rsa pair", [Attribute("Cryptographic Algorithm", RSA, None, ENUMERATION)]),
            ("ec pair", [Attribute("Cryptographic Algorithm", EC, None, ENUMERATION)]),
        ):
            length = 2048 if label == "rsa pair" else 256
            request = CreateKeyPairRequest(
                common_template_attribute=TemplateAttribute(
                    attributes=[
                        *attributes,
                        Attribute("Cryptographic Length", length, None, INTEGER),
                    ]
                ),
                private_key_template_attribute=TemplateAttribute(
                    attributes=[Attribute("Cryptographic Usage Mask", 1, None, INTEGER)]
                ),
                public_key_template_attribute=TemplateAttribute(
                    attributes=[Attribute("Cryptographic Usage Mask", 2, None, INTEGER)]
                ),
            )
            payload = kmip.ok(connection.call(kmip.request(Operation.CREATE_KEY_PAIR, request)))
            pairs[label] = payload.private_key_unique_identifier
        # The canaries are what a client is served (so the scan cannot pass vacuously).
        for label, uid in pairs.items():
            key = _served_private_key(connection, uid, KeyFormatType.PKCS_8)
            canaries.update(_private_canaries(label, key))
        served = _served_private_key(connection, registered_uid, KeyFormatType.PKCS_1)
        assert served.private_numbers() == registered.private_numbers()

        # Refusals of requests that carry private key material, and of a Get in a format the
        # key cannot take: the answers must not echo the key.
        ec_der = canaries["ec pair PKCS#8"]
        for label, request_bytes in {
            "wrong length": _private_key_request(
                registered_der,
                KeyFormatType.PKCS_8,
                Attribute("Cryptographic Length", 4096, None, INTEGER),
            ),
            "EC key as PKCS#1": _private_key_request(ec_der, KeyFormatType.PKCS_1),
            "RSA key as ECPrivateKey": _private_key_request(
                canaries["registered PKCS#1/SEC1"], KeyFormatType.ECPRIVATEKEY
            ),
            "truncated DER": _private_key_request(registered_der[:-7], KeyFormatType.PKCS_8),
            "Get as EC": kmip.request(
                Operation.GET,
                GetRequest(
                    unique_identifier=registered_uid,
                    key_format_type=KeyFormatType.TRANSPARENT_EC_PRIVATE_KEY,
                ),
            ),
        }.items():
            response = connection.call(request_bytes)
            assert kmip.item(response).result_status != 0, label
            errors[f"error answer to {label}"] = response
        # The truncated DER is a canary of its own: the server saw it only in a refusal.
        canaries["truncated DER"] = registered_der[:-7]
        kmip.ok(connection.call(kmip.request(Operation.ACTIVATE, UidRequest(registered_uid))))

    while_serving = snapshot(server.data_dir)
    server.stop()
    after_stop = snapshot(server.data_dir)
    assert str(server.database.relative_to(server.data_dir)) in after_stop
    assert after_stop.get("serve.log")
    files = {f"{name} (serving)": content for name, content in while_serving.items()}
    files.update({f"{name} (stopped)": content for name, content in after_stop.items()})
    files.update(errors)
    assert scan(files, canaries) == []
    # The scan finds a private key where there is one (the test can fail).
    planted = {"planted": b"x" + canaries["rsa pair d"] + b"y"}
    assert scan(planted, {"rsa pair d": canaries["rsa pair d"]})


# -- server-side cryptography ------------------------------------------------------------------

HMAC_SHA256 = 9  # Cryptographic Algorithm value


def _parameters(**enums: int) -> Item:
    """Cryptographic Parameters with enumeration fields: block_cipher_mode=GCM..."""
    return Item(
        Tag.CRYPTOGRAPHIC_PARAMETERS,
        STRUCTURE,
        [Item(getattr(Tag, name.upper()), ENUMERATION, value) for name, value in enums.items()],
    )


def _register_key(
    object_type: ObjectType, body: Any, mask: int, algorithm: int | None = None
) -> bytes:
    attributes = [Attribute("Cryptographic Usage Mask", mask, None, INTEGER)]
    if algorithm is not None:
        attributes.append(Attribute("Cryptographic Algorithm", algorithm, None, ENUMERATION))
    return kmip.request(
        Operation.REGISTER,
        RegisterRequest(
            object_type=object_type,
            template_attribute=TemplateAttribute(attributes=attributes),
            managed_object=body,
        ),
    )


def test_no_key_or_plaintext_bytes_from_server_side_crypto(kmipd_server: KmipdServer) -> None:
    """Encrypt, Decrypt, MAC, MAC Verify, Sign and Signature Verify with canary keys, and
    refusals of each: neither the keys nor the plaintext given to Encrypt reach a file of
    the data directory (database, logs at debug level, audit) or an error answer."""
    server = kmipd_server
    aes_key, hmac_key, plaintext = os.urandom(32), os.urandom(32), os.urandom(48)
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    canaries = {"aes": aes_key, "hmac": hmac_key, "plaintext": plaintext}
    canaries.update(_private_canaries("signer", signer))
    signer_der = canaries["signer PKCS#1/SEC1"]
    public_der = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    errors: dict[str, bytes] = {}

    def raw(material: bytes, algorithm: int, fmt: KeyFormatType = KeyFormatType.RAW) -> KeyBlock:
        return KeyBlock(
            key_format_type=fmt,
            key_value=KeyValue(key_material=material),
            cryptographic_algorithm=algorithm,
            cryptographic_length=len(material) * 8 if fmt == KeyFormatType.RAW else 2048,
        )

    gcm = _parameters(block_cipher_mode=BlockCipherMode.GCM)
    pkcs1 = _parameters(
        digital_signature_algorithm=DigitalSignatureAlgorithm.SHA_256_WITH_RSA_ENCRYPTION
    )
    with server.connect() as connection:
        uids = {
            "aes": kmip.created_uid(connection.call(register_aes(aes_key))),
            "hmac": kmip.created_uid(
                connection.call(
                    _register_key(
                        ObjectType.SYMMETRIC_KEY,
                        SymmetricKey(raw(hmac_key, HMAC_SHA256)),
                        128 | 256,  # MAC Generate | MAC Verify
                    )
                )
            ),
            "private": kmip.created_uid(
                connection.call(
                    _register_key(
                        ObjectType.PRIVATE_KEY,
                        PrivateKey(raw(signer_der, RSA, KeyFormatType.PKCS_1)),
                        1,  # Sign
                    )
                )
            ),
            "public": kmip.created_uid(
                connection.call(
                    _register_key(
                        ObjectType.PUBLIC_KEY,
                        PublicKey(raw(public_der, RSA, KeyFormatType.PKCS_1)),
                        2,  # Verify
                    )
                )
            ),
        }
        for uid in uids.values():
            kmip.ok(connection.call(kmip.request(Operation.ACTIVATE, UidRequest(uid))))

        iv = os.urandom(12)
        sealed = kmip.ok(
            connection.call(
                kmip.request(
                    Operation.ENCRYPT,
                    EncryptRequest(
                        unique_identifier=uids["aes"],
                        cryptographic_parameters=gcm,
                        data=plaintext,
                        iv_counter_nonce=iv,
                    ),
                )
            )
        )
        opened = kmip.ok(
            connection.call(
                kmip.request(
                    Operation.DECRYPT,
                    DecryptRequest(
                        unique_identifier=uids["aes"],
                        cryptographic_parameters=gcm,
                        data=sealed.data,
                        iv_counter_nonce=iv,
                        authenticated_encryption_tag=sealed.authenticated_encryption_tag,
                    ),
                )
            )
        )
        assert opened.data == plaintext  # the canary really went through the server
        mac = kmip.ok(
            connection.call(
                kmip.request(
                    Operation.MAC, MacRequest(unique_identifier=uids["hmac"], data=plaintext)
                )
            )
        ).mac_data
        kmip.ok(
            connection.call(
                kmip.request(
                    Operation.MAC_VERIFY,
                    MacVerifyRequest(unique_identifier=uids["hmac"], data=plaintext, mac_data=mac),
                )
            )
        )
        signature = kmip.ok(
            connection.call(
                kmip.request(
                    Operation.SIGN,
                    SignRequest(
                        unique_identifier=uids["private"],
                        cryptographic_parameters=pkcs1,
                        data=plaintext,
                    ),
                )
            )
        ).signature_data
        kmip.ok(
            connection.call(
                kmip.request(
                    Operation.SIGNATURE_VERIFY,
                    SignatureVerifyRequest(
                        unique_identifier=uids["public"],
                        cryptographic_parameters=pkcs1,
                        data=plaintext,
                        signature_data=signature,
                    ),
                )
            )
        )

        # Refusals that hold the key or the plaintext in hand: none may echo them.
        for label, refused in {
            "tampered tag": DecryptRequest(
                unique_identifier=uids["aes"],
                cryptographic_parameters=gcm,
                data=sealed.data,
                iv_counter_nonce=iv,
                authenticated_encryption_tag=bytes(16),
            ),
            "no IV": EncryptRequest(
                unique_identifier=uids["aes"],
                cryptographic_parameters=_parameters(block_cipher_mode=BlockCipherMode.CBC),
                data=plaintext,
            ),
            "unsupported mode": EncryptRequest(
                unique_identifier=uids["aes"],
                cryptographic_parameters=_parameters(block_cipher_mode=BlockCipherMode.CFB),
                data=plaintext,
            ),
            "MAC with an AES key": MacRequest(unique_identifier=uids["aes"], data=plaintext),
            "sign with a public key": SignRequest(
                unique_identifier=uids["public"], cryptographic_parameters=pkcs1, data=plaintext
            ),
        }.items():
            operation = {
                DecryptRequest: Operation.DECRYPT,
                EncryptRequest: Operation.ENCRYPT,
                MacRequest: Operation.MAC,
                SignRequest: Operation.SIGN,
            }[type(refused)]
            response = connection.call(kmip.request(operation, refused))
            assert kmip.item(response).result_status != 0, label
            errors[f"error answer to {label}"] = response

    while_serving = snapshot(server.data_dir)
    server.stop()
    after_stop = snapshot(server.data_dir)
    assert after_stop.get("serve.log")
    files = {f"{name} (serving)": content for name, content in while_serving.items()}
    files.update({f"{name} (stopped)": content for name, content in after_stop.items()})
    files.update(errors)
    assert scan(files, canaries) == []
    # The scan finds the plaintext where there is one (the test can fail).
    planted = {"planted": b"x" + plaintext.hex().encode() + b"y"}
    assert scan(planted, {"plaintext": plaintext})
