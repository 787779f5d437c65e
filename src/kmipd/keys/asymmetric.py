"""RSA and EC key pairs: generation, and conversion between the KMIP Key Format Types.

A Private Key is stored as generated or registered (RSA: PKCS#1, EC: PKCS#8) and converted
when a client asks for another format: PKCS#1 ↔ PKCS#8 ↔ Transparent RSA/EC Private Key (and
SEC1 ``ECPrivateKey`` for EC); a Public Key: PKCS#1 ↔ X.509 SubjectPublicKeyInfo ↔
Transparent RSA/EC Public Key. ``cryptography`` does the encoding.

Errors never carry key material: :class:`KeyMaterialError` says what is wrong with the
material, :class:`KeyFormatError` that a format cannot hold the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    RecommendedCurve,
    Tag,
)
from kmipd.protocol.objects import KeyBlock, KeyValue, PrivateKey, PublicKey
from kmipd.protocol.ttlv import BIG_INTEGER, BYTE_STRING, ENUMERATION, STRUCTURE, Item

A = CryptographicAlgorithm
F = KeyFormatType

PrivateKeyObject = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKeyObject = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_LENGTHS = frozenset((2048, 3072, 4096))
# The algorithms whose keys are EC keys (the curve says which).
EC_ALGORITHMS = frozenset((A.EC, A.ECDSA, A.ECDH))
CURVES: dict[RecommendedCurve, type[ec.EllipticCurve]] = {
    RecommendedCurve.P_256: ec.SECP256R1,
    RecommendedCurve.P_384: ec.SECP384R1,
    # Bitcoin's curve; the KMIP 1.3 CS-AC profile signs with it. Made only when asked for by
    # name (a length of 256 means P-256).
    RecommendedCurve.SECP256K1: ec.SECP256K1,
}
CURVE_FOR_LENGTH: dict[int, RecommendedCurve] = {
    256: RecommendedCurve.P_256,
    384: RecommendedCurve.P_384,
}

# Transparent EC structures (Recommended Curve + D / Q String) under each of their names.
_TRANSPARENT_EC_PRIVATE = frozenset(
    (
        F.TRANSPARENT_EC_PRIVATE_KEY,
        F.TRANSPARENT_ECDSA_PRIVATE_KEY,
        F.TRANSPARENT_ECDH_PRIVATE_KEY,
    )
)
_TRANSPARENT_EC_PUBLIC = frozenset(
    (
        F.TRANSPARENT_EC_PUBLIC_KEY,
        F.TRANSPARENT_ECDSA_PUBLIC_KEY,
        F.TRANSPARENT_ECDH_PUBLIC_KEY,
    )
)

_RSA_PRIVATE_FIELDS = (
    (Tag.MODULUS, "n"),
    (Tag.PRIVATE_EXPONENT, "d"),
    (Tag.PUBLIC_EXPONENT, "e"),
    (Tag.P, "p"),
    (Tag.Q, "q"),
    (Tag.PRIME_EXPONENT_P, "dmp1"),
    (Tag.PRIME_EXPONENT_Q, "dmq1"),
    (Tag.CRT_COEFFICIENT, "iqmp"),
)


class KeyMaterialError(ValueError):
    """The key material is not a key in the format its Key Format Type names."""


class KeyFormatError(ValueError):
    """The key cannot be given in (or read from) this Key Format Type."""


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """What the material itself says: the algorithm family and the length in bits."""

    is_rsa: bool
    length: int
    curve: RecommendedCurve | None = None


# --- Generation (RSA: kmipd.keys.rsa_worker, off the event loop) -----------------------------


def generate_ec(curve: RecommendedCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVES[curve]())


def describe(key: PrivateKeyObject | PublicKeyObject) -> KeyDescription:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyDescription(is_rsa=True, length=key.key_size)
    curve = _recommended_curve(key.curve)
    return KeyDescription(is_rsa=False, length=key.curve.key_size, curve=curve)


def algorithm_matches(algorithm: object, description: KeyDescription) -> bool:
    """Does the Cryptographic Algorithm ``algorithm`` name a key like ``description``?"""
    if description.is_rsa:
        return algorithm == A.RSA
    return algorithm in EC_ALGORITHMS


# --- KMIP objects from keys ------------------------------------------------------------------


def stored_private_format(key: PrivateKeyObject) -> F:
    """The format a generated private key is kept in: PKCS#1 for RSA (what the OASIS AKLC
    answers show), PKCS#8 for EC (PKCS#1 holds only RSA keys)."""
    return F.PKCS_1 if isinstance(key, rsa.RSAPrivateKey) else F.PKCS_8


def stored_public_format(key: PublicKeyObject) -> F:
    return F.PKCS_1 if isinstance(key, rsa.RSAPublicKey) else F.X_509


def private_key_object(key: PrivateKeyObject, algorithm: int, wanted: int) -> PrivateKey:
    return PrivateKey(key_block=_block(private_material(key, wanted), wanted, algorithm, key))


def public_key_object(key: PublicKeyObject, algorithm: int, wanted: int) -> PublicKey:
    return PublicKey(key_block=_block(public_material(key, wanted), wanted, algorithm, key))


def _block(
    material: bytes | Item, wanted: int, algorithm: int, key: PrivateKeyObject | PublicKeyObject
) -> KeyBlock:
    return KeyBlock(
        key_format_type=wanted,
        key_value=KeyValue(key_material=material, attributes=[]),
        cryptographic_algorithm=algorithm,
        cryptographic_length=describe(key).length,
    )


def private_material(key: PrivateKeyObject, wanted: int) -> bytes | Item:
    der = serialization.Encoding.DER
    none = serialization.NoEncryption()
    if wanted == F.PKCS_8:
        return key.private_bytes(der, serialization.PrivateFormat.PKCS8, none)
    if isinstance(key, rsa.RSAPrivateKey):
        if wanted == F.PKCS_1:
            return key.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL, none)
        if wanted == F.TRANSPARENT_RSA_PRIVATE_KEY:
            numbers = key.private_numbers()
            values = {
                "n": numbers.public_numbers.n,
                "e": numbers.public_numbers.e,
                "d": numbers.d,
                "p": numbers.p,
                "q": numbers.q,
                "dmp1": numbers.dmp1,
                "dmq1": numbers.dmq1,
                "iqmp": numbers.iqmp,
            }
            return _structure([Item(tag, BIG_INTEGER, values[n]) for tag, n in _RSA_PRIVATE_FIELDS])
    else:
        if wanted == F.ECPRIVATEKEY:
            return key.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL, none)
        if wanted in _TRANSPARENT_EC_PRIVATE:
            return _structure(
                [
                    Item(Tag.RECOMMENDED_CURVE, ENUMERATION, _recommended_curve(key.curve)),
                    Item(Tag.D, BIG_INTEGER, key.private_numbers().private_value),
                ]
            )
    raise KeyFormatError("the private key cannot be given in this Key Format Type")


def public_material(key: PublicKeyObject, wanted: int) -> bytes | Item:
    der = serialization.Encoding.DER
    if wanted == F.X_509:
        return key.public_bytes(der, serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, rsa.RSAPublicKey):
        if wanted == F.PKCS_1:
            return key.public_bytes(der, serialization.PublicFormat.PKCS1)
        if wanted == F.TRANSPARENT_RSA_PUBLIC_KEY:
            numbers = key.public_numbers()
            return _structure(
                [
                    Item(Tag.MODULUS, BIG_INTEGER, numbers.n),
                    Item(Tag.PUBLIC_EXPONENT, BIG_INTEGER, numbers.e),
                ]
            )
    elif wanted in _TRANSPARENT_EC_PUBLIC:
        point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _structure(
            [
                Item(Tag.RECOMMENDED_CURVE, ENUMERATION, _recommended_curve(key.curve)),
                Item(Tag.Q_STRING, BYTE_STRING, point),
            ]
        )
    raise KeyFormatError("the public key cannot be given in this Key Format Type")


def _structure(children: list[Item]) -> Item:
    return Item(Tag.KEY_MATERIAL, STRUCTURE, children)


def _recommended_curve(curve: ec.EllipticCurve) -> RecommendedCurve:
    for recommended, cls in CURVES.items():
        if isinstance(curve, cls):
            return recommended
    raise KeyFormatError(f"the curve {curve.name} is not supported")


# --- Keys from KMIP key blocks ---------------------------------------------------------------


def load_private(block: KeyBlock, *, checked: bool = False) -> PrivateKeyObject:
    """The private key a (plain, unwrapped) key block holds.

    ``checked``: skip OpenSSL's RSA consistency check, which holds the GIL for up to a second
    (4096 bits): the material was checked when it was stored (generated here, or registered
    and checked then; a sealed body cannot change undetected), or the caller checks it in a
    worker (:func:`kmipd.keys.rsa_worker.is_consistent`).
    """
    fmt = block.key_format_type
    material = _material(block)
    if isinstance(material, bytes) and fmt in (F.PKCS_1, F.PKCS_8, F.ECPRIVATEKEY):
        try:
            key = serialization.load_der_private_key(
                material, password=None, unsafe_skip_rsa_key_validation=checked
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyMaterialError("the key material is not a DER private key") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyFormatError("only RSA and EC private keys are supported")
        if fmt == F.PKCS_1 and not isinstance(key, rsa.RSAPrivateKey):
            raise KeyMaterialError("PKCS#1 holds RSA keys only")
        if fmt == F.ECPRIVATEKEY and not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyMaterialError("an ECPrivateKey holds EC keys only")
        _check_curve(key)
        return key
    if isinstance(material, Item) and fmt == F.TRANSPARENT_RSA_PRIVATE_KEY:
        return _transparent_rsa_private(material, checked)
    if isinstance(material, Item) and fmt in _TRANSPARENT_EC_PRIVATE:
        curve = _curve_of(material)
        d = _big(material, Tag.D)
        try:
            return ec.derive_private_key(d, curve())
        except ValueError:
            raise KeyMaterialError("D is not a private value on the curve") from None
    raise _unreadable(fmt, material)


def load_public(block: KeyBlock) -> PublicKeyObject:
    """The public key a (plain, unwrapped) key block holds."""
    fmt = block.key_format_type
    material = _material(block)
    if isinstance(material, bytes) and fmt in (F.PKCS_1, F.X_509):
        try:
            key = serialization.load_der_public_key(material)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyMaterialError("the key material is not a DER public key") from None
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyFormatError("only RSA and EC public keys are supported")
        if fmt == F.PKCS_1 and not isinstance(key, rsa.RSAPublicKey):
            raise KeyMaterialError("PKCS#1 holds RSA keys only")
        _check_curve(key)
        return key
    if isinstance(material, Item) and fmt == F.TRANSPARENT_RSA_PUBLIC_KEY:
        numbers = rsa.RSAPublicNumbers(
            _big(material, Tag.PUBLIC_EXPONENT), _big(material, Tag.MODULUS)
        )
        try:
            return numbers.public_key()
        except ValueError:
            raise KeyMaterialError("the modulus and exponent are not an RSA public key") from None
    if isinstance(material, Item) and fmt in _TRANSPARENT_EC_PUBLIC:
        curve = _curve_of(material)
        point = material.find(Tag.Q_STRING)
        if point is None or not isinstance(point.value, bytes):
            raise KeyMaterialError("the Transparent EC Public Key has no Q String")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), point.value)
        except ValueError:
            raise KeyMaterialError("the Q String is not a point on the curve") from None
    raise _unreadable(fmt, material)


def _material(block: KeyBlock) -> bytes | Item | None:
    value = block.key_value
    return value.key_material if isinstance(value, KeyValue) else None


def _unreadable(fmt: object, material: object) -> Exception:
    if material is None:
        return KeyMaterialError("the key block holds no key material")
    if fmt in (F.RAW, F.TRANSPARENT_SYMMETRIC_KEY, None):
        return KeyMaterialError("this Key Format Type is not one for an asymmetric key")
    return KeyFormatError("this Key Format Type is not supported for asymmetric keys")


def _check_curve(key: PrivateKeyObject | PublicKeyObject) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        _recommended_curve(key.curve)


def _curve_of(material: Item) -> type[ec.EllipticCurve]:
    found = material.find(Tag.RECOMMENDED_CURVE)
    if found is None:
        raise KeyMaterialError("the Transparent EC key has no Recommended Curve")
    curve = CURVES.get(found.value) if isinstance(found.value, int) else None
    if curve is None:
        raise KeyFormatError("only the curves P-256, P-384 and secp256k1 are supported")
    return curve


def _big(material: Item, tag: int) -> int:
    found = material.find(tag)
    if found is None or not isinstance(found.value, int) or found.value <= 0:
        raise KeyMaterialError(f"the transparent key lacks {Tag(tag).name}")
    return found.value


def _transparent_rsa_private(material: Item, checked: bool) -> rsa.RSAPrivateKey:
    """A Transparent RSA Private Key: the modulus with the CRT values, or with the private and
    public exponents (the primes are then recovered)."""
    values = {
        name: found.value
        for tag, name in _RSA_PRIVATE_FIELDS
        if (found := material.find(tag)) is not None and isinstance(found.value, int)
    }
    n, e, d = values.get("n"), values.get("e"), values.get("d")
    if n is None or e is None or d is None:
        raise KeyMaterialError("a Transparent RSA Private Key needs the Modulus and both exponents")
    if any(value <= 0 for value in values.values()):  # found by fuzzing: OverflowError
        raise KeyMaterialError("the numbers of an RSA private key are positive")
    try:
        p, q = values.get("p"), values.get("q")
        if p is None or q is None:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=values.get("dmp1") or rsa.rsa_crt_dmp1(d, p),
            dmq1=values.get("dmq1") or rsa.rsa_crt_dmq1(d, q),
            iqmp=values.get("iqmp") or rsa.rsa_crt_iqmp(p, q),
            public_numbers=rsa.RSAPublicNumbers(e, n),
        )
        return numbers.private_key(unsafe_skip_rsa_key_validation=checked)
    except (ValueError, OverflowError):
        raise KeyMaterialError("the numbers are not an RSA private key") from None


def convert(body: PrivateKey | PublicKey, wanted: int) -> PrivateKey | PublicKey:
    """``body`` (a stored object: its material was checked when stored) with its key
    material in the Key Format Type ``wanted``."""
    block = body.key_block
    if block is None:
        raise KeyMaterialError("the object has no key block")
    if block.key_format_type == wanted:
        return body
    algorithm = block.cryptographic_algorithm
    if isinstance(body, PrivateKey):
        private = load_private(block, checked=True)
        return private_key_object(private, _algorithm(algorithm, private), wanted)
    public = load_public(block)
    return public_key_object(public, _algorithm(algorithm, public), wanted)


def _algorithm(given: int | None, key: PrivateKeyObject | PublicKeyObject) -> int:
    if given is not None:
        return given
    return A.RSA if describe(key).is_rsa else A.EC
