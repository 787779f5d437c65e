"""RSA and elliptic-curve keys: signatures (RSA PKCS#1 v1.5 and PSS, ECDSA) and RSA
encryption (OAEP, PKCS#1 v1.5). Keys come as ``cryptography`` key objects
(:mod:`kmipd.keys.asymmetric` reads them from key blocks)."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    DigitalSignatureAlgorithm,
    HashingAlgorithm,
    MaskGenerator,
    PaddingMethod,
)

from .digest import hash_name
from .errors import bad_parameters, failed, unsupported
from .params import CryptoParams

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
Alg = CryptographicAlgorithm
DSA = DigitalSignatureAlgorithm
H = HashingAlgorithm

# Digital Signature Algorithm → (key algorithm, padding, hash); padding None for ECDSA.
_SIGNATURE_ALGORITHMS: dict[int, tuple[int, int | None, int | None]] = {
    DSA.MD5_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.MD5),
    DSA.SHA_1_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA_1),
    DSA.SHA_224_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA_224),
    DSA.SHA_256_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA_256),
    DSA.SHA_384_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA_384),
    DSA.SHA_512_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA_512),
    DSA.SHA3_256_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA3_256),
    DSA.SHA3_384_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA3_384),
    DSA.SHA3_512_WITH_RSA_ENCRYPTION: (Alg.RSA, PaddingMethod.PKCS1_V1_5, H.SHA3_512),
    DSA.RSASSA_PSS: (Alg.RSA, PaddingMethod.PSS, None),
    DSA.ECDSA_WITH_SHA_1: (Alg.ECDSA, None, H.SHA_1),
    DSA.ECDSA_WITH_SHA224: (Alg.ECDSA, None, H.SHA_224),
    DSA.ECDSA_WITH_SHA256: (Alg.ECDSA, None, H.SHA_256),
    DSA.ECDSA_WITH_SHA384: (Alg.ECDSA, None, H.SHA_384),
    DSA.ECDSA_WITH_SHA512: (Alg.ECDSA, None, H.SHA_512),
}
_EC_ALGORITHMS = frozenset({Alg.EC, Alg.ECDSA})


def sign(
    key: PrivateKey, params: CryptoParams, data: bytes | None, digested: bytes | None
) -> bytes:
    hashing, pad = _signature_scheme(key, params)
    message, algorithm = _message(hashing, data, digested)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(
            message, _rsa_signature_padding(pad, hashing, params, signing=True), algorithm
        )
    return key.sign(message, ec.ECDSA(algorithm))


def verify(
    key: PublicKey,
    params: CryptoParams,
    data: bytes | None,
    digested: bytes | None,
    signature: bytes,
) -> bool:
    hashing, pad = _signature_scheme(key, params)
    message, algorithm = _message(hashing, data, digested)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                signature,
                message,
                _rsa_signature_padding(pad, hashing, params, signing=False),
                algorithm,
            )
        else:
            key.verify(signature, message, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def _signature_scheme(key: PrivateKey | PublicKey, params: CryptoParams) -> tuple[int, int | None]:
    """(Hashing Algorithm, Padding Method) of a signature, from the Digital Signature
    Algorithm or from Cryptographic Algorithm + Padding Method + Hashing Algorithm."""
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    key_algorithm = Alg.RSA if is_rsa else Alg.ECDSA
    hashing = params.hashing_algorithm
    pad = params.padding_method
    if params.digital_signature_algorithm is not None:
        scheme = _SIGNATURE_ALGORITHMS.get(params.digital_signature_algorithm)
        if scheme is None:
            raise unsupported("this Digital Signature Algorithm is not supported")
        algorithm, pad, named_hash = scheme
        if algorithm != key_algorithm:
            raise bad_parameters("the Digital Signature Algorithm does not suit the key")
        hashing = named_hash if named_hash is not None else hashing
    else:
        wanted = params.cryptographic_algorithm
        if wanted is not None and not (
            wanted == key_algorithm or (not is_rsa and wanted in _EC_ALGORITHMS)
        ):
            raise bad_parameters("the Cryptographic Algorithm does not suit the key")
        if is_rsa and pad is None:
            pad = PaddingMethod.PKCS1_V1_5
    if hashing is None and not is_rsa:
        # ECDSA with no hash named (the KMIP 1.3 CS-AC profile signs so): the hash whose
        # strength matches the curve's, as SEC 1 and NIST SP 800-57 pair them.
        hashing = H.SHA_384 if key.curve.key_size > 256 else H.SHA_256
    if hashing is None:
        raise bad_parameters("no Hashing Algorithm (or Digital Signature Algorithm) given")
    if is_rsa and pad not in (PaddingMethod.PKCS1_V1_5, PaddingMethod.PSS):
        raise unsupported("RSA signatures support PKCS1 v1.5 and PSS padding")
    return hashing, pad


def _message(hashing: int, data: bytes | None, digested: bytes | None) -> tuple[bytes, Any]:
    algorithm = _hash(hashing)
    if (data is None) == (digested is None):
        raise bad_parameters("give either Data or Digested Data")
    if digested is not None:
        if len(digested) != algorithm.digest_size:
            raise bad_parameters("Digested Data is not the Hashing Algorithm's digest length")
        return digested, utils.Prehashed(algorithm)
    assert data is not None
    return data, algorithm


def _rsa_signature_padding(
    pad: int | None, hashing: int, params: CryptoParams, *, signing: bool
) -> padding.AsymmetricPadding:
    if pad == PaddingMethod.PSS:
        if params.salt_length is not None:
            salt: Any = params.salt_length
        else:
            salt = padding.PSS.DIGEST_LENGTH if signing else padding.PSS.AUTO
        return padding.PSS(mgf=padding.MGF1(_mgf_hash(params, hashing)), salt_length=salt)
    return padding.PKCS1v15()


def encrypt(key: PublicKey, params: CryptoParams, data: bytes) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey):
        raise unsupported("asymmetric encryption supports RSA keys only")
    try:
        return key.encrypt(data, _rsa_encryption_padding(params))
    except ValueError:
        raise bad_parameters("the data is too long for this key and padding") from None


def decrypt(key: PrivateKey, params: CryptoParams, data: bytes) -> bytes:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise unsupported("asymmetric decryption supports RSA keys only")
    if params.padding_method == PaddingMethod.PKCS1_V1_5:
        # A server that says whether PKCS#1 v1.5 padding was valid is a Bleichenbacher
        # oracle for every ciphertext under that key.
        raise unsupported("RSA decryption supports OAEP only (PKCS1 v1.5 is a padding oracle)")
    try:
        return key.decrypt(data, _rsa_encryption_padding(params))
    except ValueError:
        raise failed("decryption failed: wrong key, padding or corrupted data") from None


def _rsa_encryption_padding(params: CryptoParams) -> padding.AsymmetricPadding:
    wanted = params.cryptographic_algorithm
    if wanted is not None and wanted != Alg.RSA:
        raise bad_parameters("the Cryptographic Algorithm does not suit the RSA key")
    pad = params.padding_method
    if pad == PaddingMethod.PKCS1_V1_5:
        return padding.PKCS1v15()
    if pad != PaddingMethod.OAEP:
        raise unsupported("RSA encryption supports OAEP and PKCS1 v1.5 padding")
    hashing = params.hashing_algorithm if params.hashing_algorithm is not None else H.SHA_1
    return padding.OAEP(
        mgf=padding.MGF1(_mgf_hash(params, hashing)),
        algorithm=_hash(hashing),
        label=params.p_source or None,
    )


def _mgf_hash(params: CryptoParams, default: int) -> hashes.HashAlgorithm:
    if params.mask_generator not in (None, MaskGenerator.MGF1):
        raise unsupported("MGF1 is the only Mask Generator")
    chosen = params.mask_generator_hashing_algorithm
    return _hash(chosen if chosen is not None else default)


def _hash(algorithm: int) -> hashes.HashAlgorithm:
    hash_name(algorithm)  # refuses an unknown or unsupported Hashing Algorithm
    return _CRYPTOGRAPHY_HASHES[algorithm]()


_CRYPTOGRAPHY_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    H.MD5: hashes.MD5,
    H.SHA_1: hashes.SHA1,
    H.SHA_224: hashes.SHA224,
    H.SHA_256: hashes.SHA256,
    H.SHA_384: hashes.SHA384,
    H.SHA_512: hashes.SHA512,
    H.SHA_512_224: hashes.SHA512_224,
    H.SHA_512_256: hashes.SHA512_256,
    H.SHA3_224: hashes.SHA3_224,
    H.SHA3_256: hashes.SHA3_256,
    H.SHA3_384: hashes.SHA3_384,
    H.SHA3_512: hashes.SHA3_512,
}
