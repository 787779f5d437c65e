"""Hashing and HMAC."""

from __future__ import annotations

import hashlib
import hmac

from kmipd.protocol._generated import CryptographicAlgorithm, HashingAlgorithm

from .errors import bad_parameters, unsupported
from .params import CryptoParams

H = HashingAlgorithm
Alg = CryptographicAlgorithm

# Hashing Algorithm → hashlib name. MD2/MD4/Tiger/Whirlpool... are not offered.
HASHES: dict[int, str] = {
    H.MD5: "md5",
    H.SHA_1: "sha1",
    H.SHA_224: "sha224",
    H.SHA_256: "sha256",
    H.SHA_384: "sha384",
    H.SHA_512: "sha512",
    H.SHA_512_224: "sha512_224",
    H.SHA_512_256: "sha512_256",
    H.SHA3_224: "sha3_224",
    H.SHA3_256: "sha3_256",
    H.SHA3_384: "sha3_384",
    H.SHA3_512: "sha3_512",
}

# HMAC Cryptographic Algorithm → the Hashing Algorithm it uses.
HMACS: dict[int, int] = {
    Alg.HMAC_SHA1: H.SHA_1,
    Alg.HMAC_SHA224: H.SHA_224,
    Alg.HMAC_SHA256: H.SHA_256,
    Alg.HMAC_SHA384: H.SHA_384,
    Alg.HMAC_SHA512: H.SHA_512,
    Alg.HMAC_MD5: H.MD5,
    Alg.HMAC_SHA3_224: H.SHA3_224,
    Alg.HMAC_SHA3_256: H.SHA3_256,
    Alg.HMAC_SHA3_384: H.SHA3_384,
    Alg.HMAC_SHA3_512: H.SHA3_512,
}


def hash_name(algorithm: int | None) -> str:
    if algorithm is None:
        raise bad_parameters("no Hashing Algorithm given in Cryptographic Parameters")
    name = HASHES.get(algorithm)
    if name is None:
        raise unsupported("this Hashing Algorithm is not supported")
    return name


def digest(params: CryptoParams, data: bytes) -> bytes:
    return hashlib.new(hash_name(params.hashing_algorithm), data).digest()


def hmac_algorithm(key_algorithm: int | None, own: CryptoParams, params: CryptoParams) -> int:
    """The HMAC to compute: the request's Cryptographic Algorithm, else the key's.

    The key must be meant for HMAC: an HMAC key, or a key whose own Cryptographic Parameters
    attribute names an HMAC (the CS-AC profile MACs with such an AES key, CS-AC-M-4). A
    request alone cannot turn another key's bytes into an HMAC key.
    """
    if key_algorithm not in HMACS and own.cryptographic_algorithm not in HMACS:
        raise unsupported(
            "MAC needs an HMAC key, or a key whose Cryptographic Parameters name an HMAC"
        )
    algorithm = params.cryptographic_algorithm or own.cryptographic_algorithm or key_algorithm
    if algorithm not in HMACS:
        raise bad_parameters("the Cryptographic Algorithm asked for is not an HMAC")
    return algorithm


def mac(algorithm: int, key: bytes, data: bytes) -> bytes:
    if not key:
        raise bad_parameters("the MAC key is empty")
    return hmac.new(key, data, HASHES[HMACS[algorithm]]).digest()


def mac_matches(algorithm: int, key: bytes, data: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(mac(algorithm, key, data), expected)
